"""Spawning an actor: its bootstrap, the way its process starts, its first
connection back.

Two ways: a fresh interpreter (``python -m tractorish._child``, the
``trio`` backend's way, and an ``infect_asyncio`` actor's on either
backend), or a fork of the spawning actor's zygote (the ``forkserver``
backend). Everything the child needs (uid, parent address, modules,
settings, the secret) travels out of band, never on its command line. It
connects back to its parent, whose listener hands us the channel.

A zygote takes an interpreter's start and tractorish's imports to be
ready, so an actor's first ``forkserver`` spawn does not wait for one: it
starts a fresh interpreter, and the zygote is launched once that child has
connected. The spawns after it are forked, queued until the zygote is
ready if they come before.

This module starts processes; it does not decide when (that is the
supervise layer's job).
"""
from __future__ import annotations

import logging
import os
import sys
import weakref
from typing import Any, Awaitable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import msgpack
import trio

from ..ipc import Address, addr_to_wire
from ..msg import unpack_error
from ..runtime import Actor, Portal, current_actor, new_uid_tail
from ..runtime._config import usable_cpus
from ._child_process import KILL_WAIT, ChildProcess
from ._process import ActorProcess, child_env
from ._zygote_client import ForkedProcess, ZygoteClient

log = logging.getLogger('tractorish.spawn')


class SpawnStatistics(NamedTuple):
    """How an actor's children started so far (:func:`spawn_statistics`)."""

    forked: int  # forked by its zygote
    fresh: int  # started as a fresh interpreter
    zygote_pid: Optional[int]  # its zygote, if it has one (started or starting)
    zygote_ready: bool  # whether that zygote can fork now


class _Spawns:
    """One actor's way of starting children: its zygote, and the count of
    each way taken."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.zygote: Optional[ZygoteClient] = None
        self.forked = 0
        self.fresh = 0
        # a fresh interpreter's start is CPU-bound: many at once only make
        # each one slower, until they miss their handshake deadlines
        self.interpreter_starts = trio.CapacityLimiter(max(2, 2 * usable_cpus()))

    async def spawn(self, uid: Tuple[str, str], boot: dict, *, fork: bool) -> ChildProcess:
        """Start the child ``boot`` describes: forked by the zygote if
        ``fork``, else as a fresh interpreter. A ``fork`` that finds no
        zygote (or a broken one) starts fresh, and a new zygote after it."""
        if not fork:
            return await self._start_fresh(uid, boot)
        zygote = self.zygote
        if zygote is not None and zygote.broken is None:
            try:
                child = await _start(self.actor, uid, zygote.fork(boot))
            except RuntimeError as err:
                if err is not zygote.broken:
                    raise
                # the zygote went while it was asked: fresh, and a new zygote
                log.warning('forking %r failed (%s): starting it fresh', uid[0], err)
            else:
                self.forked += 1
                return child
        # the zygote starts once this child has: side by side, each would
        # take a CPU from the other (see docs/performance.md)
        zygote = ZygoteClient(self.actor)
        zygote.start()
        self.zygote = zygote
        try:
            return await self._start_fresh(uid, boot)
        finally:
            zygote.launch()

    async def _start_fresh(self, uid: Tuple[str, str], boot: dict) -> ChildProcess:
        async with self.interpreter_starts:
            child = await _start(self.actor, uid, _fresh(boot))
        self.fresh += 1
        return child

    def statistics(self) -> SpawnStatistics:
        zygote = self.zygote
        return SpawnStatistics(
            forked=self.forked, fresh=self.fresh,
            zygote_pid=zygote.pid if zygote is not None and zygote.broken is None else None,
            zygote_ready=zygote is not None and zygote.ready)


_SPAWNS: 'weakref.WeakKeyDictionary[Actor, _Spawns]' = weakref.WeakKeyDictionary()


def _spawns_of(actor: Actor) -> _Spawns:
    spawns = _SPAWNS.get(actor)
    if spawns is None:
        spawns = _SPAWNS[actor] = _Spawns(actor)
    return spawns


def spawn_statistics(actor: Optional[Actor] = None) -> SpawnStatistics:
    """How the children of ``actor`` (default: this process's actor) started:
    how many were forked by its zygote and how many are fresh
    interpreters, and whether its zygote is ready. Never blocks."""
    return _spawns_of(actor or current_actor()).statistics()


def main_module_ref(actor: Actor) -> Optional[Dict[str, str]]:
    """How a child can load this program's main module, if it can."""
    if not actor.is_root:
        return actor.main_ref
    main = sys.modules.get('__main__')
    spec = getattr(main, '__spec__', None)
    if spec is not None and spec.name not in ('__main__', None):
        return {'spec': spec.name}
    path = getattr(main, '__file__', None)
    if path:
        return {'path': os.path.abspath(path)}
    return None


async def spawn_actor(parent: Actor, name: str, *,
                      enable_modules: Sequence[str] = (),
                      loglevel: Optional[str] = None,
                      bind_addrs: Optional[Sequence[Address]] = None,
                      transport: Optional[str] = None,
                      inherit_main: bool = True,
                      infect_asyncio: bool = False) -> ChildProcess:
    """Start an actor process and wait until it has connected back.

    ``bind_addrs`` are where the child listens (default: its transport's
    default); ``transport`` overrides the parent's; ``inherit_main=False``
    gives it no way to load this program's main module; ``infect_asyncio``
    makes it run asyncio with trio as its guest, which takes a fresh
    interpreter on either backend (a forked child runs trio already). Raises
    :class:`RemoteActorError` if the child could not import its modules or
    bind its addresses, :class:`ActorCrashed` if it died before connecting.
    Cancelling this kills the half-started child.
    """
    if not isinstance(name, str) or not name:  # (what the child's Actor would refuse)
        raise ValueError(f'an actor name must be a non-empty string, not {name!r}')
    if not parent.listen_addrs:
        raise RuntimeError(f'{parent!r} is not listening: open its runtime first')
    uid = (name, new_uid_tail())
    boot = _bootstrap(parent, uid, enable_modules, loglevel, bind_addrs, transport,
                      inherit_main, infect_asyncio)
    log.info('spawning actor %r (%s backend)', name,
             'trio' if infect_asyncio else parent.config.start_method)
    return await _spawns_of(parent).spawn(
        uid, boot, fork=parent.config.start_method == 'forkserver' and not infect_asyncio)


def _bootstrap(parent: Actor, uid: Tuple[str, str], enable_modules: Sequence[str],
               loglevel: Optional[str], bind_addrs: Optional[Sequence[Address]],
               transport: Optional[str], inherit_main: bool, infect_asyncio: bool) -> dict:
    """What a child is told before it starts (``_child.py`` reads it)."""
    config = parent.config.to_wire()
    if loglevel is not None:
        config['loglevel'] = loglevel
    if transport is not None:
        config['transport'] = transport
    if config['discovery'] == 'serve':  # one registrar per tree: the root
        config['discovery'] = 'auto'
    config['metrics_port'] = None  # a port serves one actor: its parent's
    return {
        'uid': list(uid),
        'parent_addr': addr_to_wire(parent.listen_addrs[0]),
        'parent_pid': os.getpid(),
        'parent_uid': list(parent.uid),
        'enable_modules': list(enable_modules),
        'config': config,
        'sys_path': list(sys.path),
        'cwd': os.getcwd(),
        'main_ref': main_module_ref(parent) if inherit_main else None,
        'bind_addrs': [addr_to_wire(a) for a in bind_addrs or ()],
        'root_addrs': [addr_to_wire(a) for a in parent.root_addrs],
        'infect_asyncio': bool(infect_asyncio),
        'registry_addrs': [addr_to_wire(a) for a in parent.registry_addrs],
        'parent_registrar_addr': (addr_to_wire(parent.registrar_addr)
                                  if parent.registrar_addr is not None else None),
    }


async def _fresh(boot: dict) -> ActorProcess:
    """A fresh interpreter running ``python -m tractorish._child``."""
    return ActorProcess([sys.executable, '-m', 'tractorish._child'],
                        stdin_data=msgpack.packb(boot, use_bin_type=True), env=child_env())


async def _start(parent: Actor, uid: Tuple[str, str],
                 starting: Awaitable[Union[ActorProcess, ForkedProcess]]) -> ChildProcess:
    """Start the process (``starting`` gives it) and wait until the child
    has connected back."""
    parent.expect_peer(uid)
    try:
        proc = await starting
    except BaseException:
        parent.forget_expected(uid)
        raise
    try:
        child = ChildProcess(uid[0], uid, proc, parent)
    except BaseException:  # (the runtime is closing): the process must not outlive it
        parent.forget_expected(uid)
        await _kill_unwatched(proc)
        raise
    try:
        chan = await _wait_connected(child, parent.config.start_timeout)
        error = chan.peer_info.get('startup_error')
        if error:
            raise unpack_error(error)
        child.portal = Portal(parent, chan)
        log.info('actor %r started (pid %d)', uid[0], child.pid)
        return child
    except BaseException:
        await child.reap(graceful=False)
        raise


async def _kill_unwatched(proc: Union[ActorProcess, ForkedProcess]) -> None:
    """Kill a process no :class:`ChildProcess` watches, wait for its end
    (bounded: a forked one's is reported by its zygote) and close its
    stderr pipe."""
    with trio.CancelScope(shield=True):
        proc.kill()
        with trio.move_on_after(KILL_WAIT):
            await proc.wait()
    os.close(proc.stderr_fd)


async def _wait_connected(child: ChildProcess, timeout: float) -> Any:
    chan = None
    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            async def watch_exit() -> None:
                await child.proc.wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(watch_exit)
            chan = await child.parent.wait_for_expected(child.uid)
            nursery.cancel_scope.cancel()
    if chan is None:  # it died first: say how, with the last of its stderr
        raise await child.exit_report()
    return chan
