"""The zygote of the ``forkserver`` backend: ``python -m tractorish._zygote``.

It imports trio, msgpack and tractorish once, then forks one child per
request from the actor that started it (``spawn/_zygote_client.py``). A
forked child drops everything of the zygote's (its control socket, signal
state, the SIGCHLD wake-up pipe), takes the stderr pipe it was handed, and
runs the ordinary child bootstrap in its own ``trio.run``, its modules
imported after the fork. The zygote reaps its children and reports each
exit status back.

The zygote keeps one child forked ahead, a *spare*: it has shed the
zygote's state, started its ``trio.run``, rehearsed an actor's start
(``_child.rehearsal``) and waits on a socket of its own. A request (its
packet and its stderr pipe) is handed to the spare, or, if there is none,
to a child forked there and then, which does not rehearse. A spare is
forked whenever the zygote is idle without one: once it is ready (unless a
request waits already) and after each request. The fork, the shedding,
trio's start and most of the pages a child copies after the fork are thus
off the critical path of a start. The actor learns of a child only when a
request is handed to it: a spare that dies unused is reaped unreported,
and replaced only after the next request (a spare that cannot live is not
forked in a loop).

The control socket is the zygote's stdin; its messages are defined in
``_zygote_protocol.py``. When the control socket closes, the zygote kills
whatever children it still has, spare included, reaps them and exits.
"""
from __future__ import annotations

import gc
import os
import select
import signal
import socket
from typing import Any, List, Optional, Set, Tuple

from tractorish import _zygote_protocol as protocol


def _send(ctrl: socket.socket, kind: str, **fields: Any) -> None:
    try:
        ctrl.send(protocol.pack(kind, **fields))
    except OSError:
        pass  # the actor is gone; the loop sees EOF next


class _Forked:
    """A forked child waiting for its request on the other end of ``sock``."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    def hand_over(self, packet: bytes, stderr_fd: int) -> bool:
        """Send it a request's packet and stderr pipe; False if it is gone.
        Either way the socket is closed: a child takes one request."""
        try:
            socket.send_fds(self.sock, [packet], [stderr_fd])
            return True
        except OSError:
            return False
        finally:
            self.sock.close()


class Zygote:
    """The zygote's state: its control socket, its children and its spare
    (if ``spare``, one is kept forked ahead)."""

    def __init__(self, ctrl: socket.socket, spare: bool) -> None:
        self.ctrl = ctrl
        self.keep_spare = spare
        self.pid = os.getpid()
        self.wake_r, self.wake_w = os.pipe()
        self.children: Set[int] = set()  # every child, the spare too
        self.spare: Optional[_Forked] = None

    def fork(self, rehearse: bool, request_fd: Optional[int] = None) -> _Forked:
        """A new child, waiting for its request; raises OSError if the fork
        fails. ``request_fd``: the stderr pipe of the request being handled,
        which the child is handed again (it closes the copy it inherits)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            ours.close()
            if request_fd is not None:
                os.close(request_fd)
            self._become_child(theirs, rehearse)
        theirs.close()
        self.children.add(pid)
        return _Forked(pid, ours)

    def _become_child(self, sock: socket.socket, rehearse: bool) -> None:
        """After the fork, in the child: shed the zygote, wait for a request,
        become an actor. Never returns."""
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(self.wake_r)
            os.close(self.wake_w)
            self.ctrl.close()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            gc.unfreeze()
            from tractorish import _child
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
        _child.run_spare_and_exit(sock, self.pid, rehearse)

    def serve(self) -> None:
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        ctrl = self.ctrl.fileno()
        # fork the next spare once idle: at the start and after a request
        # (not after a spare died unused, until the next request). Not
        # later: waiting for the child just handed a request to start
        # first left the next spawn without a spare more often than it saved.
        spare_wanted = self.keep_spare
        _send(self.ctrl, 'ready', ready=self.pid)
        while True:
            readable, _, _ = select.select([ctrl, self.wake_r], [], [], 0)
            if not readable:
                if spare_wanted and self.spare is None:
                    spare_wanted = False
                    try:
                        self.spare = self.fork(rehearse=True)
                    except OSError:
                        pass  # out of processes: a request forks (or fails) itself
                readable, _, _ = select.select([ctrl, self.wake_r], [], [])
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
            if self._reap():
                spare_wanted = False
            if ctrl not in readable:
                continue
            try:
                data, fds, _, _ = socket.recv_fds(self.ctrl, protocol.REQUEST_MAX, 4)
            except OSError:
                data, fds = b'', []
            if not data:  # the actor that owns us is gone: so are our children
                for fd in fds:
                    os.close(fd)
                self._kill_all()
                return
            try:
                kind, fields = self._serve_request(data, fds)
            finally:
                for fd in fds:
                    os.close(fd)
            _send(self.ctrl, kind, **fields)
            spare_wanted = self.keep_spare

    def _serve_request(self, packet: bytes, fds: List[int]) -> Tuple[str, dict]:
        """Serve one request packet (``fds``: what came with it); the reply."""
        try:
            _, request = protocol.unpack(packet, protocol.REQUEST)
        except protocol.ControlMessageError as err:
            return 'failed', {'failed': protocol.request_id(packet), 'error': str(err)}
        if len(fds) != 1:
            return 'failed', {'failed': request['fork'], 'error': 'no stderr pipe attached'}
        return self._start(request['fork'], packet, fds[0])

    def _start(self, request: int, packet: bytes, stderr_fd: int) -> Tuple[str, dict]:
        """Hand a request to the spare, or to a child forked now if there is
        none or it is gone; the reply for the actor (its kind and fields)."""
        for _ in range(2):
            child, self.spare = self.spare, None
            if child is None:
                try:  # the request waits: no rehearsal
                    child = self.fork(rehearse=False, request_fd=stderr_fd)
                except OSError as err:
                    return 'failed', {'failed': request, 'error': f'fork failed: {err}'}
            if child.hand_over(packet, stderr_fd):
                return 'forked', {'forked': request, 'pid': child.pid}
            self._forget(child.pid)  # it died before it was handed anything
        return 'failed', {'failed': request, 'error': 'the forked child died at once'}

    def _reap(self) -> bool:
        """Reap whoever exited and report it; True if that was an unused spare
        (which nobody knew of)."""
        spare_died = False
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                break
            if pid == 0:
                break
            self.children.discard(pid)
            if self.spare is not None and pid == self.spare.pid:
                self.spare.sock.close()
                self.spare = None
                spare_died = True
                continue
            _send(self.ctrl, 'exited', exited=pid, code=os.waitstatus_to_exitcode(status))
        return spare_died

    def _forget(self, pid: int) -> None:
        """Make sure ``pid`` is dead and reaped, unreported."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.children.discard(pid)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def _kill_all(self) -> None:
        if self.spare is not None:
            self.spare.sock.close()
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def main() -> None:
    ctrl = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    from tractorish._child import _bind_to_parent
    _bind_to_parent(int(os.environ.pop(protocol.PARENT_ENV, '0')))
    spare = os.environ.pop(protocol.SPARE_ENV, '1') == '1'
    # what every actor needs, imported once here and shared by every fork
    import msgpack  # noqa: F401
    import trio  # noqa: F401
    import tractorish  # noqa: F401
    import tractorish._child  # noqa: F401
    import tractorish.supervise  # noqa: F401  (for actors that spawn actors)
    import tractorish.discovery._client  # noqa: F401  (for actors that look others up)
    try:  # each actor names its process with it, if installed (devx._observe)
        import setproctitle  # noqa: F401
    except ImportError:
        pass
    # a function's second call asks whether it ever suspends, by
    # reading its source: the first such read in a process costs several
    # times the next (linecache, tokenize, the parser), so do one here
    from tractorish.runtime._resolve import never_suspends
    never_suspends(tractorish._child.rehearsal)
    gc.collect()
    gc.freeze()  # keep the shared pages shared: no gc writes to them in children
    with ctrl:
        Zygote(ctrl, spare).serve()


if __name__ == '__main__':
    main()
