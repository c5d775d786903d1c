"""``Actor``: one process's runtime.

It listens, serves every channel with one reader task, runs each ``cmd`` as
a task of its own, routes replies to the calls waiting for them, and shuts
down gracefully on request. It does not spawn processes (that is the spawn
layer's job) and has no opinion on supervision.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from types import ModuleType
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, List, Optional,
                    Sequence, Tuple)

import trio

from .. import msg
from .._exceptions import ModuleNotExposed
from .._groups import collapsing_groups
from ..ipc import TLS, Address, Channel, addr_to_wire, connect, load_secret
from ..ipc import format_addr, normalize_addr, open_listener, serve_listener
from ._call import Call, ChanState, RpcTask, channel_gone
from ._config import RuntimeConfig
from ._services import installed_services
from ._resolve import load_main_module
from ._rpc import CallRunner
from ._serving import ChannelServer
from ._stackdump import DEFAULT_SIGNAL, dump_stacks_on_signal
from ._stats import ActorCounters, actor_stats

if TYPE_CHECKING:
    from ._portal import Portal

log = logging.getLogger('tractorish.runtime')

Uid = Tuple[str, str]

# The runtime's own methods a peer may call under the namespace 'self'.
SELF_METHODS = frozenset({'cancel', '_cancel_task', '_get_info', '_stats'})

def new_uid_tail() -> str:
    """A fresh random id for a uid: the hex of a version-4 UUID.

    Made here, not with :mod:`uuid`, whose import is a noticeable share of
    ``import tractorish`` (every spawned actor pays it) for one function.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return raw.hex()


class Actor(ChannelServer, CallRunner):
    """The runtime of one process: a name, a uid, exposed modules, channels.

    Built by :func:`open_root_actor` in the root and by the child bootstrap
    in spawned actors; user code reaches it through :func:`current_actor`.
    """

    def __init__(self, name: str, *, enable_modules: Sequence[str] = (),
                 config: Optional[RuntimeConfig] = None, is_root: bool = False,
                 uid: Optional[Sequence[str]] = None,
                 main_ref: Optional[dict] = None,
                 parent_addr: Optional[Address] = None,
                 parent_uid: Optional[Sequence[str]] = None,
                 registry_addrs: Sequence[Address] = (),
                 parent_registrar_addr: Optional[Address] = None,
                 bind_addrs: Sequence[Address] = (),
                 root_addrs: Sequence[Address] = ()) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f'an actor name must be a non-empty string, not {name!r}')
        self.config = config or RuntimeConfig()
        if self.config.secret is None:
            self.config.secret = load_secret()
        self.secret: bytes = self.config.secret
        self.tls = TLS.from_paths(self.config.tls_cert, self.config.tls_key,
                                  self.config.tls_ca)
        self.name = name
        self.uid: Uid = (uid[0], uid[1]) if uid else (name, new_uid_tail())
        self.is_root = is_root
        # a child knows its parent's script as __mp_main__; it is '__main__' here
        self.enable_modules: List[str] = [
            '__main__' if m == msg.MAIN_ALIAS else m for m in enable_modules]
        self.main_ref = main_ref
        self.parent_addr = parent_addr
        self.parent_uid: Optional[Uid] = (parent_uid[0], parent_uid[1]) if parent_uid else None
        self.registry_addrs = [normalize_addr(a) for a in registry_addrs]
        # the registry address this actor serves, if it is the registrar;
        # and the one its parent served when it spawned us (set by discovery)
        self.registrar_addr: Optional[Address] = None
        self.parent_registrar_addr = parent_registrar_addr
        self.listen_addrs: List[Address] = []
        # where open_runtime listens (none given: the transport's default)
        self.bind_addrs = [normalize_addr(a) for a in bind_addrs]
        # the root actor's addresses (the root's own, once it listens)
        self._root_addrs = [normalize_addr(a) for a in root_addrs]
        self._hello: dict = {'addrs': [], 'pid': os.getpid()}
        if self.config.debug_mode:  # peers route their REPLs through us
            self._hello['debug'] = True
        self.started_at = time.time()
        self._modules: Dict[str, ModuleType] = {}
        # (ns, func) -> (function, functype): modules do not change under us
        self._resolved: Dict[Tuple[str, str], Tuple[Callable[..., Any], str]] = {}
        self._states: Dict[Channel, ChanState] = {}
        self._peers: Dict[Uid, List[Channel]] = {}
        self._peer_lot = trio.lowlevel.ParkingLot()
        self._expected: Dict[Uid, Optional[Channel]] = {}
        self._service: Optional[trio.Nursery] = None
        self._shutdown_requested = trio.Event()
        self._shutdown_done = trio.Event()
        self._canceller: Optional[Uid] = None
        self.parent_chan: Optional[Channel] = None
        self.infected_asyncio = False  # trio runs as asyncio's guest here
        # what stats() cannot derive from the state above (supervisors here
        # count their restarts in it too)
        self.counters = ActorCounters()
        # the tree debugger's part in this actor (devx; debug mode only): an
        # error ending a remote task stops in its REPL before it is sent
        self.debugger: Any = None
        # what the layers above run in every actor (discovery, devx)
        self._services = installed_services()

    def __repr__(self) -> str:
        return f'<Actor {self.name!r} {self.uid[1][:8]}>'

    # --- identity, as tractor names it -------------------------------------

    @property
    def aid(self) -> msg.Aid:
        """This actor's id: ``name``, ``uuid``, ``pid`` (and ``uid``, the pair)."""
        return msg.Aid(self.uid[0], self.uid[1], os.getpid())

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def is_registrar(self) -> bool:
        """True if this actor serves the registry (it listens on a registry
        address and exposes the registrar's functions)."""
        return self.registrar_addr is not None

    @property
    def is_arbiter(self) -> bool:
        """tractor's older name of :attr:`is_registrar`."""
        return self.is_registrar

    @property
    def accept_addrs(self) -> List[Address]:
        """The addresses this actor accepts connections on."""
        return list(self.listen_addrs)

    @property
    def accept_addr(self) -> Optional[Address]:
        """The first of :attr:`accept_addrs` (None before the runtime listens)."""
        return self.listen_addrs[0] if self.listen_addrs else None

    @property
    def reg_addrs(self) -> List[Address]:
        """The registry addresses this actor registers with (tractor's name)."""
        return list(self.registry_addrs)

    @property
    def root_addrs(self) -> List[Address]:
        """The addresses of the root actor of this tree."""
        return list(self.listen_addrs) if self.is_root else list(self._root_addrs)

    @property
    def loglevel(self) -> Optional[str]:
        return self.config.loglevel

    def is_infected_aio(self) -> bool:
        """True if this actor runs trio as a guest of asyncio (``infect_asyncio``)."""
        return self.infected_asyncio

    async def dump_stacks_on_signal(self, sig: int = DEFAULT_SIGNAL,
                                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """At each ``sig`` (SIGUSR1), print this actor's task tree to stderr
        and pass the signal on to its children. Runs until cancelled."""
        await dump_stacks_on_signal(
            lambda: f'--- tasks of actor {self.name!r} (pid {os.getpid()}) ---',
            self._children_pids, sig, task_status=task_status)

    def _children_pids(self) -> List[int]:
        return [chan.peer_info['pid'] for chans in self._peers.values() for chan in chans
                if chan.peer_info.get('child_of') == list(self.uid)
                and isinstance(chan.peer_info.get('pid'), int)]

    async def cancel(self, req_chan: Optional[Channel] = None) -> bool:
        """Shut this actor's runtime down gracefully and wait until it is.

        ``req_chan`` is the channel of whoever asked (``None``: this actor
        itself). Remote tasks are cancelled, each telling its caller. A
        task of this actor that calls this is among them: it is cancelled
        before this returns. Returns True once shut down.
        """
        self.cancel_soon(req_chan.peer_uid if req_chan is not None else None)
        await self.wait_for_shutdown()
        return True

    # --- modules ------------------------------------------------------------

    def load_modules(self) -> None:
        """Import every module in ``enable_modules`` (``'__main__'`` included)."""
        for name in self.enable_modules:
            if name in self._modules:
                continue
            if name == '__main__':
                self._modules[name] = (
                    sys.modules['__main__'] if self.is_root
                    else load_main_module(self.main_ref))
            else:
                self._modules[name] = importlib.import_module(name)

    def expose_module(self, name: str) -> None:
        """Add ``name`` to the exposed modules, importing it now."""
        name = '__main__' if name == msg.MAIN_ALIAS else name
        if name not in self.enable_modules:
            self.enable_modules.append(name)
        self.load_modules()

    def _resolve(self, ns: str, func_name: str) -> Callable[..., Any]:
        """The function a ``cmd`` names; never imports anything."""
        if ns == 'self':
            if func_name not in SELF_METHODS:
                raise AttributeError(f'the runtime has no method {func_name!r}')
            return getattr(self, '_rpc' + (func_name if func_name[0] == '_' else '_' + func_name))
        module = self._modules.get(ns)
        if module is None:
            raise ModuleNotExposed(
                f'module {ns!r} is not exposed by actor {self.name!r} '
                f'(enable_modules={self.enable_modules})')
        fn = getattr(module, func_name, None)
        if fn is None:
            raise AttributeError(f'module {ns!r} has no function {func_name!r}')
        if getattr(fn, '__module__', None) != module.__name__:
            raise ModuleNotExposed(
                f'{ns}.{func_name} is defined in module '
                f'{getattr(fn, "__module__", "?")!r}, which is not exposed')
        return fn

    # --- serving ------------------------------------------------------------

    @asynccontextmanager
    async def open_runtime(self) -> AsyncIterator['Actor']:
        """Listen and serve until the block exits or shutdown is requested.

        On exit, remote tasks are cancelled gracefully and channels closed.
        """
        with collapsing_groups():
            async with trio.open_nursery() as service:
                self._service = service
                for addr in self.bind_addrs or [self._default_listen_addr()]:
                    await self.listen_on(addr)
                service.start_soon(self._watch_shutdown, service.cancel_scope)
                log.info('%r up (pid %d): listening on %s%s', self, os.getpid(),
                         ', '.join(map(format_addr, self.listen_addrs)),
                         f'; child of {self.parent_uid[0]!r}' if self.parent_uid else '')
                if self.config.stack_on_signal:
                    await service.start(self.dump_stacks_on_signal)
                # the layers above plug in here (see _services)
                for start_service in self._services.startup:
                    await service.start(start_service, self)
                try:
                    yield self
                finally:
                    with trio.CancelScope(shield=True):
                        await self._shutdown(self._canceller)
                    service.cancel_scope.cancel()

    def _default_listen_addr(self) -> Address:
        if self.config.transport == 'uds':
            base = self.config.uds_dir or os.path.join(
                tempfile.gettempdir(), f'tractorish-{os.getuid()}')
            os.makedirs(base, mode=0o700, exist_ok=True)
            info = os.lstat(base)
            if info.st_uid != os.getuid() or info.st_mode & 0o077 or os.path.islink(base):
                raise PermissionError(
                    f'refusing the socket directory {base}: it must be a directory '
                    f'of ours with mode 0700 (others could swap our sockets)')
            return os.path.join(base, f'{self.name[:40]}-{self.uid[1][:12]}.sock')
        return (self.config.host, 0)

    async def listen_on(self, addr: Address) -> Address:
        """Accept connections at ``addr`` too; return the bound address.

        Raises ``OSError`` if it cannot be bound.
        """
        assert self._service is not None, 'runtime not running'
        listener, bound = await open_listener(addr)
        self.listen_addrs.append(bound)
        self._hello['addrs'] = [addr_to_wire(a) for a in self.listen_addrs]
        await self._service.start(functools.partial(
            serve_listener, listener, bound, self._serve_channel, uid=self.uid,
            secret=self.secret, info=self._hello, tls=self.tls,
            max_msg_size=self.config.max_msg_size))
        return bound

    def hello_info(self, **extra: Any) -> dict:
        return {**self._hello, **extra}

    @asynccontextmanager
    async def connect_to(self, addr: Address,
                         uid: Optional[Uid] = None) -> AsyncIterator[Channel]:
        """A served channel to the actor at ``addr`` for the block's duration.

        Reuses a channel we already have to ``uid`` (say, to a child);
        otherwise connects, and closes that connection on exit.
        """
        # (not one that is closing: say, our last lookup's, still being dropped)
        existing = [c for c in self._peers.get(uid, ())
                    if not c.closed] if uid is not None else []
        if existing:
            yield existing[0]
            return
        chan = await self.open_channel_to(addr)
        try:
            yield chan
        finally:
            await chan.aclose()

    async def connect_and_serve(self, addr: Address, *,
                                info: Optional[dict] = None, to_parent: bool = False,
                                task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Connect to ``addr`` and serve the channel until it closes.

        ``to_parent``: this is the channel to our parent (``parent_chan``).
        """
        async with connect(addr, uid=self.uid, secret=self.secret, tls=self.tls,
                           info=info or self.hello_info(),
                           max_msg_size=self.config.max_msg_size) as chan:
            await self._serve_channel(chan, to_parent=to_parent, task_status=task_status)

    async def open_channel_to(self, addr: Address) -> Channel:
        """A served channel to the actor at ``addr``, lasting as the runtime."""
        assert self._service is not None, 'runtime not running'
        return await self._service.start(self.connect_and_serve, addr)

    # --- calling ------------------------------------------------------------

    async def start_call(self, chan: Channel, ns: str, func_name: str,
                         kwargs: dict, meta: Optional[dict] = None) -> Call:
        """Send a ``cmd`` on ``chan``; return the :class:`Call` for its replies.

        ``meta``: the message's optional metadata (a trace context).
        """
        state = self._states.get(chan)
        if state is None:
            raise channel_gone(chan)
        cid = state.next_cid()
        call = Call(self, state, cid, ns, func_name)
        state.calls[cid] = call
        try:
            # with other calls in flight, more are likely to come at once:
            # let the writer send them together
            await chan.send(msg.cmd(ns, func_name, kwargs, self.uid, cid, meta),
                            batch=len(state.calls) > 1)
        except BaseException:
            call.forget()
            raise
        return call

    async def start_service(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start ``fn(*args, task_status=...)`` in the runtime's nursery; return
        what it reports as started."""
        assert self._service is not None, 'runtime not running'
        return await self._service.start(fn, *args)

    def start_service_task(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the runtime's nursery, for the runtime's life."""
        assert self._service is not None, 'runtime not running'
        self._service.start_soon(fn, *args)

    def expect_peer(self, uid: Uid) -> None:
        """Keep the first channel ``uid`` opens to us for :meth:`wait_for_expected`."""
        self._expected[uid] = None

    def forget_expected(self, uid: Uid) -> None:
        self._expected.pop(uid, None)

    async def wait_for_expected(self, uid: Uid) -> Channel:
        """The first channel of an expected peer, even if it closed since."""
        try:
            while self._expected.get(uid) is None:
                await self._peer_lot.park()
            return self._expected[uid]  # type: ignore[return-value]
        finally:
            self.forget_expected(uid)

    # --- the runtime's own methods ('self' namespace) -----------------------

    async def _rpc_cancel(self, task: RpcTask) -> bool:
        self.cancel_soon(task.caller_uid)
        return True

    async def _rpc_cancel_task(self, task: RpcTask, cid: str) -> bool:
        target = task.state.tasks.get(cid)
        if target is None or target is task:
            return False
        log.debug('%r: cancelling call %s at the request of %r', self, cid, task.caller_uid[0])
        target.cancel(task.caller_uid)
        await target.wait_finished()
        return True

    def stats(self) -> Dict[str, Any]:
        """A snapshot of this actor's live counters (what
        :meth:`Portal.stats` returns; see docs/observability.md)."""
        return actor_stats(self)

    async def _rpc_stats(self, task: RpcTask) -> Dict[str, Any]:
        return actor_stats(self, asking=task)

    async def _rpc_get_info(self, task: RpcTask) -> dict:
        return {'uid': list(self.uid), 'pid': os.getpid(),
                'addrs': [addr_to_wire(a) for a in self.listen_addrs],
                'modules': list(self.enable_modules),
                'parent': list(self.parent_chan.peer_uid)
                if self.parent_chan and self.parent_chan.peer_uid else None,
                'started_at': self.started_at}

    # --- shutdown -----------------------------------------------------------

    def cancel_soon(self, requester: Optional[Uid] = None) -> None:
        """Ask the runtime to shut down gracefully; never blocks."""
        if not self._shutdown_requested.is_set():
            log.info('%r: cancel requested by %s', self,
                     repr(requester[0]) if requester else 'itself')
            self._canceller = requester
            self._shutdown_requested.set()

    @property
    def cancel_requested(self) -> bool:
        return self._shutdown_requested.is_set()

    @property
    def cancel_called(self) -> bool:
        """True once someone asked this actor to shut down (tractor's name)."""
        return self._shutdown_requested.is_set()

    @property
    def cancel_complete(self) -> bool:
        """True once the runtime has shut down (tractor's name)."""
        return self._shutdown_done.is_set()

    def get_parent(self) -> 'Portal':
        """A portal to this actor's parent; ``RuntimeError`` in the root."""
        from ._portal import Portal
        if self.parent_chan is None:
            raise RuntimeError(f'{self!r} has no parent: it is the root of its tree')
        return Portal(self, self.parent_chan)

    @property
    def cancel_caller(self) -> Optional[msg.Aid]:
        """Who asked this actor to shut down, if it was asked by a peer."""
        if self._canceller is None:
            return None
        return msg.Aid(self._canceller[0], self._canceller[1])

    async def wait_for_shutdown(self) -> None:
        await self._shutdown_done.wait()

    async def _watch_shutdown(self, scope: trio.CancelScope) -> None:
        await self._shutdown_requested.wait()
        with trio.CancelScope(shield=True):
            await self._shutdown(self._canceller)
        scope.cancel()

    async def _shutdown(self, requester: Optional[Uid]) -> None:
        """Cancel every remote task (each tells its caller), then close channels."""
        if self._shutdown_done.is_set():
            return
        self._shutdown_requested.set()
        tasks = [t for s in list(self._states.values()) for t in s.tasks.values()]
        log.info('%r shutting down: cancelling %d remote task(s), closing %d channel(s)',
                 self, sum(not t.is_runtime_call for t in tasks), len(self._states))
        for task in tasks:
            if not task.is_runtime_call:  # let 'cancel' itself answer
                task.cancel(requester)
        while True:
            with trio.move_on_after(self.config.cancel_timeout) as waited:
                for task in tasks:
                    await task.wait_finished()
            # a REPL open here or below holds us: the user ends it, not a timeout
            if not (waited.cancelled_caught and self.debugger is not None
                    and self.debugger.busy):
                break
            await self.debugger.wait_idle()
        if waited.cancelled_caught:
            log.warning('%r: remote tasks still running after %gs; closing anyway',
                        self, self.config.cancel_timeout)
        for state in list(self._states.values()):
            await state.chan.aclose()
        self._shutdown_done.set()
        log.debug('%r: runtime shut down', self)
