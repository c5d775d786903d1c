"""Entry point of a spawned actor: ``python -m tractorish._child``.

Reads its bootstrap (msgpack) from stdin, arranges to die with its parent,
imports its modules, connects back to the parent and serves until it is
cancelled or the parent goes away.
"""
from __future__ import annotations

import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


_prctl = None  # libc's prctl, looked up once (a forkserver's children share it)


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
    from .ipc import connect, normalize_addr
    from .msg import pack_error
    from .runtime import Actor, RuntimeConfig, set_current_actor

    config = RuntimeConfig.from_wire(boot['config'])
    parent_addr = normalize_addr(boot['parent_addr'])
    actor = Actor(boot['uid'][0], uid=boot['uid'], config=config,
                  enable_modules=boot['enable_modules'],
                  main_ref=boot['main_ref'], parent_addr=parent_addr,
                  parent_uid=boot.get('parent_uid'),
                  registry_addrs=boot['registry_addrs'])
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
                parent_addr, info=actor.hello_info(child_of=boot.get('parent_uid')),
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
    spawning actor, or the forkserver that forked us.
    """
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole foreground process group; the root handles it
    # and tears the tree down in order, so children ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path[:] = boot['sys_path']
    os.chdir(boot['cwd'])
    from ._log import configure_logging
    configure_logging(boot['config'].get('loglevel'), boot['uid'][0])
    import trio
    return trio.run(_run_child, boot)


def main() -> None:
    boot = _read_bootstrap()
    sys.exit(run(boot, boot['parent_pid']))


if __name__ == '__main__':
    main()
