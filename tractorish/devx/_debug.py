"""The tree debugger: ``debug_mode=True``.

Every actor of a tree opened with ``debug_mode=True`` runs a
:class:`Debugger` (started with its runtime, see ``_observe``). An error
that would end a remote task stops it first in a post-mortem REPL;
``breakpoint()``, :func:`pause` and :func:`pause_from_sync` stop where they
are called. Each REPL is a :class:`TreePdb` whose input and output travel
as messages of a context, ``_serve_repl``, opened on the actor's own
channel towards the root (the caller's channel for a call's task, else the
parent's; each actor on the way relays), and the root lends its terminal
to one REPL at a time, in the order they asked (:class:`Terminal`).

While a REPL is open the actor's event loop runs on: pdb's reads await
through greenback (a portal is given to every task in debug mode), so the
actor keeps answering its peers, and its cancellation waits for the REPL:
the REPL's I/O is shielded, the actor's shutdown and its parent's reaping
wait while :attr:`Debugger.busy` says a REPL is open here or below.

Nothing of this is imported unless ``debug_mode`` is on.
"""
from __future__ import annotations

import bdb
import logging
import os
import sys
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, Callable, Iterator, List, Optional

import trio

from .._compat import BaseExceptionGroup
from .._exceptions import ActorFailure, RemoteActorError, TransportClosed
from ..runtime import Actor, Portal, context, current_actor, current_ipc_ctx
from ._repl import (Terminal, TreePdb, bridge, in_trio_thread, post_mortem_target,
                    terminal_is_ours)

log = logging.getLogger('tractorish.devx')

MODULE = __name__
# how often a parent asks a child that outlived its grace period whether a
# REPL holds it (and how long it waits for the answer)
POLL_INTERVAL = 0.25
ASK_TIMEOUT = 2.0


class NoTerminal(RuntimeError):
    """No way from this actor to a terminal for its REPL."""


def _debuggable(err: BaseException) -> bool:
    """True for an error raised here, worth a post-mortem: not a
    cancellation, not a peer's error relayed or a peer gone, not the
    user's quitting."""
    if isinstance(err, (trio.Cancelled, KeyboardInterrupt, GeneratorExit, bdb.BdbQuit,
                        RemoteActorError, ActorFailure, TransportClosed)):
        return False
    if isinstance(err, BaseExceptionGroup):
        return any(_debuggable(e) for e in err.exceptions)
    return True


class _Request:
    __slots__ = ('kind', 'text', 'prompt', 'complete', 'reply')

    def __init__(self, kind: str, text: str, prompt: str = '',
                 complete: Optional[Callable[..., List[str]]] = None,
                 reply: Any = None) -> None:
        self.kind, self.text, self.prompt = kind, text, prompt
        self.complete, self.reply = complete, reply


class Session:
    """One REPL's line to the terminal. A task of its own keeps it open, so
    that no cancel scope of the runtime spans the user's code between two
    stops of a breakpoint; pdb talks to that task through this object."""

    def __init__(self) -> None:
        self._send, self._requests = trio.open_memory_channel[_Request](0)
        self.closed = False

    async def ask(self, text: str, prompt: str,
                  complete: Callable[..., List[str]]) -> Optional[str]:
        """Show ``text``, read a line at ``prompt``; None at the end of input
        (or if the terminal is gone: pdb then quits)."""
        reply_send, reply = trio.open_memory_channel[Optional[str]](1)
        try:
            await self._send.send(_Request('ask', text, prompt, complete, reply_send))
            return await reply.receive()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel):
            return None

    async def write(self, text: str) -> None:
        try:
            await self._send.send(_Request('write', text))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def close(self) -> None:
        """End the REPL: its task gives the terminal back."""
        if not self.closed:
            self.closed = True
            self._send.close()


async def _serve_local(terminal: Terminal, requests: Any) -> None:
    """Carry a REPL's requests to this process's terminal."""
    async for request in requests:
        terminal.write(request.text)
        if request.kind == 'ask':
            complete = request.complete

            async def completions(*where: Any) -> List[str]:
                return complete(*where)  # type: ignore[misc]

            line = await terminal.read_line(request.prompt, completions)
            request.reply.send_nowait(line)


async def _serve_stream(requests: Any, stream: Any) -> None:
    """Carry a REPL's requests over a ``_serve_repl`` stream."""
    async for request in requests:
        if request.kind == 'write':
            await stream.send({'out': request.text})
            continue
        await stream.send({'out': request.text, 'ask': request.prompt})
        while True:
            message = await stream.receive()
            if 'complete' in message:
                await stream.send({'matches': request.complete(*message['complete'])})
                continue
            request.reply.send_nowait(message.get('line'))
            break


async def _terminal_from_stream(terminal: Terminal, stream: Any) -> None:
    """The root's side of a ``_serve_repl`` stream: show, read, complete."""
    async for message in stream:
        if not isinstance(message, dict):
            raise TypeError(f'unexpected REPL message {message!r}')
        terminal.write(str(message.get('out', '')))
        if 'ask' in message:
            async def completions(text: str, line: str, begidx: int,
                                  endidx: int) -> List[str]:
                await stream.send({'complete': [text, line, begidx, endidx]})
                reply = await stream.receive()
                return [str(m) for m in reply.get('matches', [])]

            line = await terminal.read_line(str(message['ask']), completions)
            await stream.send({'line': line})


async def _pump(source: Any, sink: Any) -> None:
    async for message in source:
        await sink.send(message)


class Debugger:
    """One actor's part of the tree debugger."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.token = trio.lowlevel.current_trio_token()
        # the root's terminal (made when first needed: only the root, or a
        # separate program's root with no way further up, ever uses one)
        self._terminal: Optional[Terminal] = None
        # REPLs open or asked for here, relayed through here, or awaited in a
        # child being reaped: while any, cancellation waits
        self._busy = 0
        self._idle = trio.Event()
        self._idle.set()

    @property
    def terminal(self) -> Terminal:
        if self._terminal is None:
            self._terminal = Terminal()
        return self._terminal

    @property
    def busy(self) -> bool:
        """True while a REPL is open or asked for here or below."""
        return self._busy > 0

    @contextmanager
    def _held(self) -> Iterator[None]:
        if not self._busy:  # (waiters on the current event stay woken by it)
            self._idle = trio.Event()
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def route(self, call_chan: Any = None) -> Any:
        """The channel a REPL of this actor travels on (None: this process's
        terminal): the root's own terminal, else the caller's channel, else
        the parent's, whichever reaches an actor in debug mode."""
        actor = self.actor
        if actor.is_root and terminal_is_ours():
            return None
        for chan in (call_chan, actor.parent_chan):
            if chan is not None and not chan.closed and chan.peer_info.get('debug'):
                return chan
        if actor.is_root:
            return None  # the program's own stdin, terminal or not
        raise NoTerminal(f'no actor in debug mode between {actor.name!r} and a terminal')

    # --- sessions ------------------------------------------------------------

    async def open_session(self, header: str, call_chan: Any = None) -> Session:
        """A REPL's line to the terminal, once the terminal is ours (REPLs
        of the tree wait for it in turn)."""
        session = Session()
        await self.actor.start_service(self._keep, session, header, call_chan)
        return session

    async def _keep(self, session: Session, header: str, call_chan: Any,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        started = ended = False
        who = self.actor.name
        with trio.CancelScope(shield=True), self._held():
            try:
                chan = self.route(call_chan)
                if chan is None:
                    terminal = self.terminal
                    async with terminal.lent():
                        task_status.started()
                        started = True
                        terminal.write(header)
                        await _serve_local(terminal, session._requests)
                    return
                portal = Portal(self.actor, chan)
                async with portal.open_context(_serve_repl, who=who) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        task_status.started()
                        started = True
                        await stream.send({'out': header})
                        await _serve_stream(session._requests, stream)
                        ended = True
            except Exception as err:
                if not started:
                    raise
                if ended:  # (its context's result, which nobody needs)
                    log.debug('%r: after a REPL: %s', self.actor, err)
                else:
                    log.error('%r: the REPL lost its terminal: %s', self.actor, err)
            finally:
                session._requests.close()

    # --- what the runtime calls ----------------------------------------------

    async def post_mortem(self, err: BaseException, call_chan: Any = None) -> None:
        """Stop in a REPL at the frame that raised ``err`` (an error raised
        here: nothing for cancellations or peers' errors); return when the
        user goes on ('c' or 'q')."""
        if not _debuggable(err):
            return
        while isinstance(err, BaseExceptionGroup):  # the first error raised here
            err = next(e for e in err.exceptions if _debuggable(e))
        what = f'{type(err).__name__}: {err}' if str(err) else type(err).__name__
        header = (f"\n[tractorish] actor {self.actor.name!r} (pid {os.getpid()}) crashed "
                  f"with {what}\n[tractorish] 'c' or 'q' lets the error go on\n")
        await self.interact(header, post_mortem_target(err), call_chan)

    async def interact(self, header: str, target: Any, call_chan: Any = None) -> None:
        """A post-mortem REPL on ``target`` (what ``Pdb.interaction`` takes:
        a traceback, or an error from Python 3.13)."""
        try:
            session = await self.open_session(header, call_chan)
        except Exception as problem:
            log.error('%r: no REPL for %s: %s', self.actor, header.strip(), problem)
            return
        repl = TreePdb(session, self.actor.name, self.token)
        try:
            repl.reset()
            repl.interaction(None, target)
        finally:
            repl.end()

    def stop_here(self, frame: FrameType, header: str, call_chan: Any = None) -> None:
        """Open a REPL that stops at ``frame``'s next line (a breakpoint), from
        synchronous code in a task or in a thread of this actor."""
        self.trace(bridge(self.token, self.open_session, header, call_chan), frame)

    def trace(self, session: Session, frame: FrameType) -> None:
        """Stop at ``frame``'s next line with a REPL on ``session``."""
        TreePdb(session, self.actor.name, self.token, traced=True).set_trace(frame)

    async def wait_for_child(self, portal: Portal, exited: Callable[[], bool]) -> None:
        """While a child that should have ended says a REPL holds it (its
        own or a descendant's), wait: the user ends it, not a timeout."""
        with self._held():
            while not exited():
                held = False
                with trio.move_on_after(ASK_TIMEOUT):
                    try:
                        held = await portal.run_from_ns(MODULE, 'debugging')
                    except Exception:  # gone, or not answering: not in a REPL
                        pass
                if not held:
                    return
                await trio.sleep(POLL_INTERVAL)


def _call_chan() -> Any:
    ctx = current_ipc_ctx()
    return ctx.chan if ctx is not None else None


def debugger_here(what: str) -> Debugger:
    """This actor's debugger; a clear error outside debug mode."""
    actor = current_actor(err_on_no_runtime=False)
    if actor is None:
        raise RuntimeError(f'{what} needs an actor runtime in debug mode: open the '
                           f'tree with open_nursery(debug_mode=True)')
    if actor.debugger is None:
        raise RuntimeError(f'{what} needs the tree debugger: open the tree with '
                           f'debug_mode=True (this one runs without it)')
    return actor.debugger  # type: ignore[no-any-return]


# --- the context each REPL opens towards the root -------------------------------

@context
async def _serve_repl(ctx: Any, who: str) -> None:
    """Serve a REPL of actor ``who`` (below us): on this process's terminal
    once it is free, or relayed one step further towards the root."""
    debugger = debugger_here('a REPL')
    ended = False
    with trio.CancelScope(shield=True), debugger._held():
        try:
            chan = debugger.route()
            if chan is None:
                terminal = debugger.terminal
                async with terminal.lent():
                    await ctx.started()
                    async with ctx.open_stream() as stream:
                        await _terminal_from_stream(terminal, stream)
                        ended = True
                return
            portal = Portal(debugger.actor, chan)
            async with portal.open_context(_serve_repl, who=who) as (upper, _):
                await ctx.started()
                async with ctx.open_stream() as down, upper.open_stream() as up:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_pump, up, down)
                        await _pump(down, up)
                        ended = True
                        nursery.cancel_scope.cancel()
        except TransportClosed as err:
            # the REPL's actor went: after its REPL ended, as it should
            # (its teardown may close the channel before our reply)
            if not ended:
                raise
            log.debug('%r: after the REPL of %r: %s', debugger.actor, who, err)


async def debugging() -> bool:
    """Whether a REPL is open (or asked for) in this actor or below it."""
    actor = current_actor()
    return actor.debugger is not None and actor.debugger.busy


# --- turning it on ----------------------------------------------------------------

class _PortalForEveryTask(trio.abc.Instrument):
    """Lets any task's synchronous code (pdb, ``breakpoint()``) await."""

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        import greenback
        greenback.bestow_portal(task)


def _breakpoint_hook(*args: Any, **kwargs: Any) -> None:
    pause_from_sync(sys._getframe(1))


async def serve(actor: Actor, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Turn the tree debugger on in ``actor`` for the runtime's life."""
    import greenback
    debugger = Debugger(actor)
    instrument = _PortalForEveryTask()
    trio.lowlevel.add_instrument(instrument)
    # the tasks that opened the runtime (the root's main task among them)
    # are already running: give them portals too, for a breakpoint() there
    task, top = trio.lowlevel.current_task(), trio.lowlevel.current_root_task()
    while task.parent_nursery is not None and task.parent_nursery.parent_task is not top:
        task = task.parent_nursery.parent_task
        greenback.bestow_portal(task)
    actor.expose_module(MODULE)
    previous_hook = sys.breakpointhook
    sys.breakpointhook = _breakpoint_hook
    actor.debugger = debugger
    try:
        task_status.started()
        await trio.sleep_forever()
    finally:
        actor.debugger = None
        if sys.breakpointhook is _breakpoint_hook:
            sys.breakpointhook = previous_hook
        trio.lowlevel.remove_instrument(instrument)


# --- the public API's work (devx's pause, pause_from_sync, post_mortem) ------------

async def pause(frame: FrameType, *, hide_tb: bool = True) -> None:
    """Stop at ``frame``'s next line in a REPL on the root's terminal."""
    __tracebackhide__ = hide_tb
    debugger = debugger_here('pause()')
    import greenback
    await greenback.ensure_portal()  # (every task has one in debug mode; cheap)
    debugger.trace(await debugger.open_session(_breakpoint_header(debugger), _call_chan()),
                   frame)


def pause_from_sync(frame: FrameType, *, hide_tb: bool = True) -> None:
    """:func:`pause` from synchronous code: a function of a task, or any
    thread of the actor. ``breakpoint()`` calls this in debug mode."""
    __tracebackhide__ = hide_tb
    debugger = debugger_here('pause_from_sync()')
    chan = _call_chan() if in_trio_thread() else None
    debugger.stop_here(frame, _breakpoint_header(debugger), chan)


async def post_mortem(tb: Optional[TracebackType] = None, *, hide_tb: bool = True) -> None:
    """A REPL on the error being handled (in an ``except`` block), or on
    ``tb``: for an error the code caught itself."""
    __tracebackhide__ = hide_tb
    debugger = debugger_here('post_mortem()')
    err = sys.exc_info()[1]
    target: Any = tb
    if tb is None:
        if err is None:
            raise ValueError('post_mortem() needs an error being handled, or tb=')
        target = post_mortem_target(err)
    what = f'{type(err).__name__}: {err}' if err is not None else 'a traceback'
    header = (f'\n[tractorish] actor {debugger.actor.name!r} (pid {os.getpid()}): '
              f'post-mortem of {what}\n')
    await debugger.interact(header, target, _call_chan())


def _breakpoint_header(debugger: Debugger) -> str:
    return (f'\n[tractorish] actor {debugger.actor.name!r} (pid {os.getpid()}) '
            f"stopped at a breakpoint; 'c' goes on\n")
