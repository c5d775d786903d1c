"""The forkserver's zygote: ``python -m tractorish._forkserver``.

It imports trio, msgpack and tractorish once, then forks one child per
request from the actor that started it. A forked child drops everything
of the zygote's (its control socket, signal state, the SIGCHLD wake-up
pipe), takes the stderr pipe it was handed, and runs the ordinary child
bootstrap: its own ``trio.run``, its modules imported after the fork. The
zygote reaps its children and reports each exit status back.

The control socket is the zygote's stdin: a Unix SOCK_SEQPACKET socket, one
msgpack map per packet. Requests: ``{'fork': id, 'boot': {...}}`` with the
child's stderr write end attached (SCM_RIGHTS). Replies: ``{'ready': pid}``
once, ``{'forked': id, 'pid': pid}``, ``{'failed': id, 'error': text}``,
``{'exited': pid, 'code': status}``. When the control socket closes, the
zygote kills whatever children it still has, reaps them and exits.
"""
from __future__ import annotations

import gc
import os
import select
import signal
import socket

_MAX_PACKET = 1 << 20


def _send(ctrl: socket.socket, msg: dict) -> None:
    import msgpack
    try:
        ctrl.send(msgpack.packb(msg, use_bin_type=True))
    except OSError:
        pass  # the actor is gone; the loop sees EOF next


def _in_child(ctrl: socket.socket, wake_r: int, wake_w: int, stderr_fd: int,
              boot: dict, zygote_pid: int) -> None:
    """After the fork, in the child: shed the zygote, become an actor."""
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.close(wake_r)
        os.close(wake_w)
        ctrl.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(stderr_fd, 2)
        os.close(stderr_fd)
        gc.unfreeze()
        from tractorish import _child
    except BaseException:
        import traceback
        traceback.print_exc()
        os._exit(1)
    _child.run_and_exit(boot, zygote_pid)


def _serve(ctrl: socket.socket) -> None:
    import msgpack
    zygote_pid = os.getpid()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    children: 'set[int]' = set()
    _send(ctrl, {'ready': zygote_pid})
    while True:
        readable, _, _ = select.select([ctrl.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        while children:  # reap whoever exited
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            children.discard(pid)
            _send(ctrl, {'exited': pid, 'code': os.waitstatus_to_exitcode(status)})
        if ctrl.fileno() not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, _MAX_PACKET, 4)
        except OSError:
            data, fds = b'', []
        if not data:  # the actor that owns us is gone: so are our children
            for fd in fds:
                os.close(fd)
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in children:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            return
        request = msgpack.unpackb(data, raw=False)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            _send(ctrl, {'failed': request.get('fork'), 'error': 'no stderr pipe attached'})
            continue
        try:
            pid = os.fork()
        except OSError as err:
            os.close(fds[0])
            _send(ctrl, {'failed': request['fork'], 'error': f'fork failed: {err}'})
            continue
        if pid == 0:
            _in_child(ctrl, wake_r, wake_w, fds[0], request['boot'], zygote_pid)
        os.close(fds[0])
        children.add(pid)
        _send(ctrl, {'forked': request['fork'], 'pid': pid})


def main() -> None:
    ctrl = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    from tractorish._child import _die_with_parent
    _die_with_parent(int(os.environ.pop('TRACTORISH_FORKSERVER_PARENT', '0')))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # what every actor needs, imported once here and shared by every fork
    import msgpack  # noqa: F401
    import trio  # noqa: F401
    import tractorish  # noqa: F401
    import tractorish._child  # noqa: F401
    import tractorish.supervise  # noqa: F401  (for actors that spawn actors)
    gc.collect()
    gc.freeze()  # keep the shared pages shared: no gc writes to them in children
    _serve(ctrl)


if __name__ == '__main__':
    main()
