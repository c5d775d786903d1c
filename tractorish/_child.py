"""Entry point of a spawned actor: ``python -m tractorish._child``.

Reads its bootstrap (msgpack) from stdin, arranges to die with its parent,
imports its modules, connects back to the parent and serves until it is
cancelled or the parent goes away. A child forked by a zygote
(:func:`run_spare`) does the same with a bootstrap it waits for in a
``trio.run`` of its own.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any, Callable, NoReturn

_PR_SET_PDEATHSIG = 1
# not a secret: a spare's rehearsal talks to itself over a socket pair
_REHEARSAL_SECRET = b'rehearsal, not a secret'
_REHEARSAL_TIMEOUT = 5.0  # s; it takes milliseconds


_prctl = None  # libc's prctl, looked up once (a zygote's children share it)


def _die_with_parent(parent_pid: int) -> None:
    """Second line against orphans: the kernel kills us when the parent dies."""
    global _prctl
    if sys.platform.startswith('linux'):
        if _prctl is None:
            import ctypes
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took hold
        os._exit(1)


def _read_bootstrap() -> dict:
    import msgpack
    data = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return msgpack.unpackb(data, raw=False)


async def _run_child(boot: dict) -> int:
    from .discovery._service import registration_for_parent
    from .ipc import connect, normalize_addr
    from .msg import pack_error
    from .runtime import Actor, RuntimeConfig, set_current_actor

    config = RuntimeConfig.from_wire(boot['config'])
    parent_addr = normalize_addr(boot['parent_addr'])
    actor = Actor(boot['uid'][0], uid=boot['uid'], config=config,
                  enable_modules=boot['enable_modules'],
                  main_ref=boot['main_ref'], parent_addr=parent_addr,
                  parent_uid=boot.get('parent_uid'),
                  registry_addrs=boot['registry_addrs'],
                  parent_registrar_addr=(normalize_addr(boot['parent_registrar_addr'])
                                         if boot.get('parent_registrar_addr') else None),
                  bind_addrs=boot.get('bind_addrs') or (),
                  root_addrs=boot.get('root_addrs') or ())
    actor.infected_asyncio = bool(boot.get('infect_asyncio'))
    set_current_actor(actor)
    try:
        actor.load_modules()
    except Exception as err:  # report it to the parent, then leave
        async with connect(parent_addr, uid=actor.uid, secret=actor.secret, tls=actor.tls,
                           info=actor.hello_info(child_of=boot.get('parent_uid'),
                                                 startup_error=pack_error(err, actor.uid))):
            pass
        return 1

    async def serve_parent(task_status: object) -> None:
        try:
            await actor.connect_and_serve(
                parent_addr, info=actor.hello_info(child_of=boot.get('parent_uid'),
                                                   **registration_for_parent(actor)),
                to_parent=True, task_status=task_status)
        finally:
            actor.cancel_soon()  # no parent, no reason to live

    async with actor.open_runtime():
        await actor.start_service(serve_parent)  # sets actor.parent_chan
        await actor.wait_for_shutdown()
    return 0


def run(boot: dict, parent_pid: int) -> int:
    """Become the actor ``boot`` describes; return the exit status.

    ``parent_pid`` is the process whose death must take us down too: the
    spawning actor, or the zygote that forked us.
    """
    _bind_to_parent(parent_pid)
    _adopt(boot)
    if boot.get('infect_asyncio'):
        from .to_asyncio import run_as_asyncio_guest
        return run_as_asyncio_guest(_run_child, boot)
    import trio
    return trio.run(_run_child, boot)


def _bind_to_parent(parent_pid: int) -> None:
    """Die with ``parent_pid``, and leave Ctrl-C to the root: it reaches the
    whole foreground process group, and the root tears the tree down in
    order."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _adopt(boot: dict) -> None:
    """What of the spawning actor's a child takes before it starts."""
    sys.path[:] = boot['sys_path']
    os.chdir(boot['cwd'])
    from ._log import configure_logging
    configure_logging(boot['config'].get('loglevel'), boot['uid'][0])


def run_spare(sock: socket.socket, zygote_pid: int, rehearse: bool) -> int:
    """A zygote's child: its own ``trio.run`` starts, then (if
    ``rehearse``: a spare forked ahead of any request) a rehearsal of an
    actor's start (:func:`rehearsal`), then it waits on ``sock`` for its
    request, a ``fork`` message (``_zygote_protocol``) with its stderr pipe
    attached. From there on it starts as :func:`run` does: sys.path, working
    directory and logging from the bootstrap, then its modules imported.
    Returns the exit status; ends the process at once, unused, if ``sock``
    closes without a request.

    Nothing done before the request depends on it: ``trio.run`` takes no
    argument from the bootstrap, and the rehearsal closes all it opened.
    """
    _bind_to_parent(zygote_pid)
    import trio
    return trio.run(_await_bootstrap, sock, rehearse)


async def _await_bootstrap(sock: socket.socket, rehearse: bool) -> int:
    import trio

    from . import _zygote_protocol as protocol
    if rehearse:
        # a head start only: the real start says what is wrong, if anything
        with trio.move_on_after(_REHEARSAL_TIMEOUT):
            try:
                await rehearsal()
            except Exception:
                pass
    await trio.lowlevel.wait_readable(sock)
    try:
        data, fds, _, _ = socket.recv_fds(sock, protocol.REQUEST_MAX, 1)
    except OSError:
        data, fds = b'', []
    sock.close()
    if not data or len(fds) != 1:  # the zygote is done with us, unused
        os._exit(0)
    os.dup2(fds[0], 2)
    os.close(fds[0])
    boot = protocol.unpack(data, protocol.REQUEST)[1]['boot']
    _adopt(boot)
    return await _run_child(boot)


async def rehearsal() -> None:
    """Two channels over a socket pair, the handshake between them, a call
    and its answer; everything closed after.

    A spare runs it while it waits: right after a fork every page a process
    writes to is copied first, and reading a Python object writes its
    reference count. Walking the channel, handshake and message code once
    takes those copies off the critical path of the start that follows.
    """
    import functools

    import trio

    from .ipc._channel import open_channel
    from .ipc._transport import handshake

    left, right = trio.socket.socketpair()
    async with open_channel(trio.SocketStream(left)) as one, \
            open_channel(trio.SocketStream(right)) as other:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(
                handshake, one, uid=('spare', '1'), secret=_REHEARSAL_SECRET, initiator=True))
            await handshake(other, uid=('spare', '2'), secret=_REHEARSAL_SECRET,
                            initiator=False)
        await one.send({'cmd': ['rehearsal', 'echo', {'x': 1}, ['spare', '1'], 'c1']})
        await other.receive()
        await other.send({'cid': 'c1', 'return': 1})
        await one.receive()


def run_and_exit(boot: dict, parent_pid: int) -> NoReturn:
    """:func:`run`, then end the process (see :func:`_exit_after`)."""
    _exit_after(run, boot, parent_pid)


def run_spare_and_exit(sock: socket.socket, zygote_pid: int, rehearse: bool) -> NoReturn:
    """:func:`run_spare`, then end the process (see :func:`_exit_after`)."""
    _exit_after(run_spare, sock, zygote_pid, rehearse)


def _exit_after(main: Callable[..., int], *args: Any) -> NoReturn:
    """``main(*args)``, then end the process the same way on either backend.

    An interpreter's exit is kept, except the teardown of every object
    still alive: threading's exit hooks run and non-daemon threads are
    joined, then the ``atexit`` handlers, then the standard streams are
    flushed, and the process ends with ``os._exit``. Freeing every module
    and object one by one took the longest part of an actor's exit (see
    docs/performance.md); Python never promised ``__del__`` at exit, and a
    forked child must not run the zygote's teardown anyway. Files an actor
    left open are not flushed for it: close them (``with open(...)``).
    """
    code = 1
    try:
        code = main(*args)
    except SystemExit as exit:
        code = _exit_status(exit.code)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            _interpreter_exit_hooks()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError, AttributeError):
                    pass  # closed, or replaced by something that cannot flush
            os._exit(code)


def _exit_status(code: object) -> int:
    """The status ``sys.exit(code)`` gives: None is 0, an int itself, and
    anything else is printed to stderr and gives 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _interpreter_exit_hooks() -> None:
    """What ``Py_FinalizeEx`` runs before it tears objects down.

    ``threading._shutdown`` runs threading's exit hooks (an executor tells
    its workers to stop) and joins non-daemon threads; ``atexit`` has no
    public way to run its handlers. Both have existed under these names
    since Python 3.0; without them, the joins and handlers are skipped.
    """
    import atexit
    import threading
    import traceback
    shutdown = getattr(threading, '_shutdown', None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        try:
            shutdown()
        except BaseException:  # say so, and still run the handlers
            traceback.print_exc()
    run_handlers = getattr(atexit, '_run_exitfuncs', None)
    if run_handlers is not None:
        try:
            run_handlers()  # (it reports a failing handler itself)
        except BaseException:
            traceback.print_exc()


def main() -> None:
    boot = _read_bootstrap()
    run_and_exit(boot, boot['parent_pid'])


if __name__ == '__main__':
    main()
