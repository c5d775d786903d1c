"""Serving a channel: the one reader of each channel the runtime holds.

``ChannelServer`` is the part of :class:`~tractorish.runtime.Actor` that
reads a channel, hands each message to the call it belongs to by call id
(or starts a call for a ``cmd``, see ``_rpc``), holds off a peer with too
many calls in flight, and drops the channel's calls when it goes. Which
task reads the channel when (its reader task, or the task of the one call
in flight) is the read turn, in ``_read_turn``.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import trio

from .. import msg
from .._exceptions import ProtocolError, TransportClosed
from ..ipc import Channel
from ._call import ChanState, channel_gone
from ._config import RuntimeConfig
from ._services import RuntimeServices
from ._state import CURRENT_CALL
from ._stats import ActorCounters

log = logging.getLogger('tractorish.runtime')

Uid = Tuple[str, str]

# How often a reader holding off a peer with too many calls in flight looks
# whether that peer has hung up (see ChannelServer._hold_reading).
HOLD_POLL_INTERVAL = 0.25


class ChannelServer:
    """Reading and routing: the serving half of ``Actor``'s runtime."""

    # (the Actor's, set in its __init__)
    uid: Uid
    config: RuntimeConfig
    counters: ActorCounters
    parent_chan: Optional[Channel]
    _states: Dict[Channel, ChanState]
    _peers: Dict[Uid, List[Channel]]
    _peer_lot: trio.lowlevel.ParkingLot
    _expected: Dict[Uid, Optional[Channel]]
    _services: RuntimeServices

    # (_rpc.CallRunner's)
    _start_rpc: Callable[[ChanState, dict], None]

    @trio.lowlevel.enable_ki_protection
    async def _serve_channel(self, chan: Channel, *, to_parent: bool = False,
                             task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The one reader of ``chan``: dispatch every message it carries."""
        state = ChanState(chan)
        self._states[chan] = state
        CURRENT_CALL.set(state)  # for the calls run inline in this task
        chan.spin_ns = self.config.spin_us * 1000
        assert chan.peer_uid is not None
        self._peers.setdefault(chan.peer_uid, []).append(chan)
        if to_parent:  # set before the first message is read: a call from
            self.parent_chan = chan  # the parent may use it at once
        cleanups = self._run_channel_hooks(chan)
        if (self._expected.get(chan.peer_uid, False) is None
                and chan.peer_info.get('child_of') == list(self.uid)):
            self._expected[chan.peer_uid] = chan  # a child we spawned, reporting
        self._peer_lot.unpark_all()
        task_status.started(chan)
        try:
            await state.run_reader(
                self._dispatch, hold=functools.partial(self._hold_reading, state),
                running=state.tasks, max_running=self.config.max_calls_in_flight)
        except ProtocolError as err:
            log.error('closing the channel to %r after a protocol error: %s',
                      chan.peer_uid, err)
        except TransportClosed as err:
            log.debug('channel to %r closed: %s', chan.peer_uid, err)
        except Exception as err:  # a peer's bad input never takes the actor down
            log.error('closing the channel to %r after a bad message: %r',
                      chan.peer_uid, err)
        finally:
            try:
                self._drop_channel(state)
            finally:
                for cleanup in cleanups:
                    self._run_hook(cleanup)
                await chan.aclose()

    async def _hold_reading(self, state: ChanState) -> None:
        """Read nothing more from a peer with ``max_calls_in_flight`` calls
        running here, until one ends: its further messages wait in the
        kernel's buffers, not in our memory (a caller that stops reading
        its replies holds up only itself). A peer that hangs up meanwhile
        is noticed all the same, and its calls cancelled."""
        chan = state.chan
        log.debug('%r: %d calls in flight: reading no more until one ends',
                  chan, len(state.tasks))
        while len(state.tasks) >= self.config.max_calls_in_flight:
            with trio.move_on_after(HOLD_POLL_INTERVAL):
                await state.wait_for_a_task_to_end()
            if chan.peer_hung_up():
                raise TransportClosed(f'{chan!r}: the peer hung up with '
                                      f'{len(state.tasks)} calls in flight')

    def _run_channel_hooks(self, chan: Channel) -> List[Callable[[], None]]:
        """Call every installed channel hook for ``chan`` (see
        ``_services``); return the cleanups they asked for."""
        cleanups = []
        for hook in self._services.channel_hooks:
            cleanup = self._run_hook(hook, self, chan)
            if cleanup is not None:
                cleanups.append(cleanup)
        return cleanups

    @staticmethod
    def _run_hook(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:  # a layer's bug must not cost the channel
            log.exception('channel hook %r failed', fn)
            return None

    @trio.lowlevel.enable_ki_protection
    def _dispatch(self, state: ChanState, batch: List[dict]) -> None:
        """Handle one read's messages: route replies, start (or answer) calls."""
        calls, tasks, direct = state.calls, state.tasks, state.direct_call
        corked = False
        try:
            for message in batch:
                cid = message.get('cid')
                if cid is None:
                    if not corked and len(batch) > 1:
                        # the replies to this read's calls: one write (a
                        # read of one message has one reply to write)
                        state.chan.cork()
                        corked = True
                    self._start_rpc(state, message)
                    continue
                end = calls.get(cid) or tasks.get(cid)
                if end is None:
                    log.debug('%r: dropped a late %r message for call %s',
                              state.chan, msg.message_kind(message), cid)
                elif end is direct and state.turn is None:
                    state.deliver_to_direct(end, message)
                else:
                    end.deliver(message)
        finally:
            if corked:
                state.chan.uncork()

    def _drop_channel(self, state: ChanState) -> None:
        chan = state.chan
        if self._states.pop(chan, None) is not None:
            self.counters.fold(state)
        peers = self._peers.get(chan.peer_uid, [])  # type: ignore[arg-type]
        if chan in peers:
            peers.remove(chan)
        if not peers:
            self._peers.pop(chan.peer_uid, None)  # type: ignore[arg-type]
        for call in state.calls.values():
            call.fail(channel_gone(chan))
        for task in state.tasks.values():  # nobody is left to report to
            task.fail(channel_gone(chan))
            task.cancel(chan.peer_uid)
        self._peer_lot.unpark_all()

