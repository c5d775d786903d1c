"""Spawning actors: the ``trio`` backend (a fresh interpreter per actor)
and the common handling for the ``forkserver`` backend too.

The child runs ``python -m tractorish._child``; everything it needs (uid,
parent address, modules, settings, the secret) is written to its stdin and
never appears on its command line. It connects back to its parent, whose
listener hands us the channel. This module starts and reaps processes; it
does not decide when (that is the supervise layer's job).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from collections import deque
import weakref
from typing import Any, Deque, Dict, Optional, Sequence, Tuple, Union

import msgpack
import trio

from .._exceptions import ActorCrashed
from ..ipc import Address, addr_to_wire
from ..msg import unpack_error
from ..runtime import Actor, Portal, new_uid_tail
from ..runtime._config import usable_cpus
from ._forkserver import ForkedProcess, forkserver_for
from ._process import ActorProcess

log = logging.getLogger('tractorish.spawn')

STDERR_TAIL_LINES = 20
KILL_WAIT = 10.0

# the directory holding the tractorish package, so a child can import it
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def _write_stderr(data: bytes) -> None:
    try:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
    except (AttributeError, ValueError, OSError):  # no real stderr: keep the tail only
        pass


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    paths = env.get('PYTHONPATH', '').split(os.pathsep) if env.get('PYTHONPATH') else []
    if _PACKAGE_PARENT not in paths:
        env['PYTHONPATH'] = os.pathsep.join([_PACKAGE_PARENT, *paths])
    return env


class ChildProcess:
    """One spawned actor: its process, and its portal once it connected."""

    def __init__(self, name: str, uid: Sequence[str],
                 proc: 'Union[ActorProcess, ForkedProcess]',
                 parent: Actor) -> None:
        self.name = name
        self.uid = (uid[0], uid[1])
        self.proc = proc
        self.parent = parent
        self.portal: Optional[Portal] = None
        self.cancel_requested = False
        self._reap_lock = trio.Lock()
        self.stderr_tail: Deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.stderr_closed = trio.Event()
        parent.start_service_task(self._relay_stderr)

    async def _relay_stderr(self) -> None:
        """Copy the child's stderr to ours, keeping its last lines."""
        partial = b''
        try:
            async with trio.lowlevel.FdStream(self.proc.stderr_fd) as stream:
                while True:
                    try:
                        chunk = await stream.receive_some(65536)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        break
                    if not chunk:
                        break
                    _write_stderr(chunk)
                    *lines, partial = (partial + chunk).split(b'\n')
                    self.stderr_tail.extend(
                        line.decode(errors='replace') for line in lines)
            if partial:
                self.stderr_tail.append(partial.decode(errors='replace'))
        finally:
            self.stderr_closed.set()

    def __repr__(self) -> str:
        return f'<ChildProcess {self.name!r} pid={self.proc.pid}>'

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    def crashed_error(self) -> ActorCrashed:
        """The error telling how this actor died (call once it has exited)."""
        code = self.proc.returncode
        how = (f'was killed by signal {signal.Signals(-code).name}'
               if code is not None and code < 0 else f'exited with code {code}')
        tail = '\n'.join(self.stderr_tail)
        text = f'actor {self.name!r} (pid {self.pid}) {how}'
        if tail:
            text += f'; the end of its stderr:\n{tail}'
        return ActorCrashed(text, name=self.name, pid=self.pid, returncode=code,
                            stderr_tail=tail)

    async def exit_report(self, timeout: float = 1.0) -> ActorCrashed:
        """Wait for the exit (and the last of stderr); return :meth:`crashed_error`."""
        with trio.move_on_after(timeout):
            await self.proc.wait()
            await self.stderr_closed.wait()
        return self.crashed_error()

    async def reap(self, *, graceful: bool = True) -> int:
        """End the process and wait for it: cancel, then SIGTERM, then SIGKILL.

        Shielded from cancellation and bounded by the config's timeouts, so
        it always returns with the process gone. Safe to call concurrently.
        """
        config = self.parent.config
        self.cancel_requested = True
        with trio.CancelScope(shield=True):
            async with self._reap_lock:
                if self.proc.returncode is None and graceful and self.portal:
                    await self.portal.cancel_actor(timeout=config.cancel_timeout)
                    with trio.move_on_after(config.grace_period):
                        await self.proc.wait()
                    debugger = self.parent.debugger
                    if self.proc.returncode is None and debugger is not None:
                        # a REPL open in the child (or below): the user ends it
                        await debugger.wait_for_child(self.portal,
                                                      lambda: self.proc.returncode is not None)
                        with trio.move_on_after(config.grace_period):
                            await self.proc.wait()
                if self.proc.returncode is None and graceful:
                    log.warning('%r did not exit after cancel; sending SIGTERM', self)
                    self.proc.terminate()
                    with trio.move_on_after(config.term_timeout):
                        await self.proc.wait()
                if self.proc.returncode is None:
                    if graceful:
                        log.warning('%r ignored SIGTERM; sending SIGKILL', self)
                    self.proc.kill()
                with trio.move_on_after(KILL_WAIT) as scope:
                    await self.proc.wait()
                if scope.cancelled_caught:  # SIGKILL cannot fail: only its report can
                    log.error('%r: no exit status %ss after SIGKILL', self, KILL_WAIT)
        log.info('actor %r (pid %d) exited with code %s', self.name, self.pid,
                 self.proc.returncode)
        return self.proc.returncode  # type: ignore[return-value]


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
    if not parent.listen_addrs:
        raise RuntimeError(f'{parent!r} is not listening: open its runtime first')
    uid = (name, new_uid_tail())
    config = parent.config.to_wire()
    if loglevel is not None:
        config['loglevel'] = loglevel
    if transport is not None:
        config['transport'] = transport
    if config['discovery'] == 'serve':  # one registrar per tree: the root
        config['discovery'] = 'auto'
    config['metrics_port'] = None  # a port serves one actor: its parent's
    log.info('spawning actor %r (%s backend)', name,
             'trio' if infect_asyncio else parent.config.start_method)
    boot = {
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
    if parent.config.start_method == 'forkserver' and not infect_asyncio:
        return await _start(parent, name, uid, boot)
    # a fresh interpreter's start is CPU-bound: many at once only make each
    # one slower, until they miss their handshake deadlines; the others wait
    async with _interpreter_starts(parent):
        return await _start(parent, name, uid, boot)


_STARTS: 'weakref.WeakKeyDictionary[Actor, trio.CapacityLimiter]' = weakref.WeakKeyDictionary()


def _interpreter_starts(parent: Actor) -> trio.CapacityLimiter:
    """How many fresh interpreters ``parent`` starts at once: two per CPU."""
    limiter = _STARTS.get(parent)
    if limiter is None:
        limiter = _STARTS[parent] = trio.CapacityLimiter(max(2, 2 * usable_cpus()))
    return limiter


async def _start(parent: Actor, name: str, uid: Tuple[str, str], boot: dict) -> ChildProcess:
    parent.expect_peer(uid)
    try:
        proc: Union[ActorProcess, ForkedProcess]
        if parent.config.start_method == 'forkserver' and not boot['infect_asyncio']:
            proc = await (await forkserver_for(parent)).fork(boot)
        else:
            proc = ActorProcess([sys.executable, '-m', 'tractorish._child'],
                                stdin_data=msgpack.packb(boot, use_bin_type=True),
                                env=_child_env())
    except BaseException:
        parent.forget_expected(uid)
        raise
    child = ChildProcess(name, uid, proc, parent)
    try:
        chan = await _wait_connected(child, parent.config.start_timeout)
        error = chan.peer_info.get('startup_error')
        if error:
            raise unpack_error(error)
        child.portal = Portal(parent, chan)
        log.info('actor %r started (pid %d)', name, child.pid)
        return child
    except BaseException:
        await child.reap(graceful=False)
        raise


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
    if chan is None:
        raise child.crashed_error()
    return chan
