"""An actor's live counters, and the snapshot ``Portal.stats()`` returns.

Nothing here runs per call. A snapshot is derived from what the runtime
keeps anyway: the tasks and calls of each channel (in flight, streams,
contexts, by functype), each channel's own message and byte counts (see
``Channel.statistics``), and the handful of counters below, which are
bumped off the per-call path (a failure, a sender out of credit, a
restart) or once per served call (``ChanState.served``).
"""
from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ._state import current_actor

if TYPE_CHECKING:
    from ._actor import Actor
    from ._call import ChanState

# the per-channel totals a snapshot adds up, closed channels included
_CHANNEL_TOTALS = ('messages_in', 'messages_out', 'bytes_in', 'bytes_out')


class ActorCounters:
    """What an actor counts besides what it can derive from its state.

    ``restarts`` is for the supervisors and pools running in the actor
    (they know when they restart a child); the rest is the runtime's.
    """

    __slots__ = ('calls_failed', 'credit_waits', 'restarts', 'closed')

    def __init__(self) -> None:
        self.calls_failed = 0   # calls served here that ended in an error
        self.credit_waits = 0   # sends that waited for the receiver's credit
        self.restarts = 0       # children restarted by supervisors here
        # what channels that have closed since counted: served calls, and
        # messages and bytes each way
        self.closed: Dict[str, int] = dict.fromkeys(('calls_served', *_CHANNEL_TOTALS), 0)

    def fold(self, state: 'ChanState') -> None:
        """Keep the counts of a channel being dropped in the actor's totals."""
        closed = self.closed
        closed['calls_served'] += state.served
        for key, value in _channel_counts(state).items():
            closed[key] += value


def count_credit_wait() -> None:
    """A sender found no credit and waits (off the per-message path)."""
    actor = current_actor(err_on_no_runtime=False)
    if actor is not None:
        actor.counters.credit_waits += 1


def _channel_counts(state: 'ChanState', queued: bool = False) -> Dict[str, int]:
    stats = state.chan.statistics()
    counts = {'messages_in': stats.messages_received, 'messages_out': stats.messages_sent,
              'bytes_in': stats.bytes_received, 'bytes_out': stats.bytes_sent}
    if queued:
        counts['bytes_queued'] = stats.bytes_queued
    return counts


def resident_memory() -> Optional[int]:
    """This process's resident set size in bytes (None where unknown)."""
    try:
        with open('/proc/self/statm', 'rb') as statm:
            return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:  # elsewhere, the peak: the best the standard library knows
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == 'darwin' else peak * 1024
    except (ImportError, OSError):
        return None


def actor_stats(actor: 'Actor', asking: Any = None) -> Dict[str, Any]:
    """A snapshot of ``actor``'s counters (see docs/observability.md).

    ``asking`` is the task serving the stats call, if any: it is not
    counted in flight. The runtime's own calls (cancel, stats) never are.
    """
    counters = actor.counters
    totals = dict(counters.closed)
    running = waiting = streams = contexts = 0
    channels: List[Dict[str, Any]] = []
    for state in list(actor._states.values()):
        tasks = [t for t in state.tasks.values() if not t.is_runtime_call and t is not asking]
        calls = [c for c in state.calls.values() if c.ns != 'self']
        kinds = [t.functype for t in tasks] + [c.functype for c in calls]
        counts = _channel_counts(state, queued=True)
        for key in _CHANNEL_TOTALS:
            totals[key] += counts[key]
        totals['calls_served'] += state.served
        running += len(tasks)
        waiting += len(calls)
        streams += sum(kind == 'asyncgen' for kind in kinds)
        contexts += sum(kind == 'context' for kind in kinds)
        peer = state.chan.peer_uid
        channels.append({'peer': list(peer) if peer else None,
                         'calls_served': state.served, 'calls_in_flight': len(tasks),
                         'calls_waiting': len(calls), **counts})
    return {
        'name': actor.name, 'uid': list(actor.uid), 'pid': os.getpid(),
        'started_at': actor.started_at, 'uptime': max(0.0, time.time() - actor.started_at),
        'rss': resident_memory(),
        'calls_served': totals.pop('calls_served'), 'calls_failed': counters.calls_failed,
        'calls_in_flight': running, 'calls_waiting': waiting,
        'streams_open': streams, 'contexts_open': contexts,
        'credit_waits': counters.credit_waits, 'restarts': counters.restarts,
        **totals,
        'channels': channels,
    }
