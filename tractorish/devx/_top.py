"""``tractorish top`` and ``tractorish stats``: the live counters of a tree.

``top`` asks the registry for every actor each refresh and each actor for
its counters (``Portal.stats``), over one connection per actor kept open
between refreshes, and shows one row per actor with the rates since the
last refresh. On a terminal it draws with ``rich`` when that is installed
(``pip install 'tractorish[top]'``); otherwise, or when standard output is
not a terminal, it prints plain text tables (on a terminal, clearing the
screen first). Nothing here is imported by an actor.
"""
from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

import trio

from .. import discovery
from .._exceptions import RemoteActorError, TransportClosed
from ..discovery import _registrar
from ..discovery._client import _portal_to
from ..ipc import Address, format_addr

Uid = Tuple[str, str]

COLUMNS = ('NAME', 'PID', 'UPTIME', 'RSS', 'CALLS', 'CALLS/S', 'FAILED', 'RUNNING',
           'STREAMS', 'CTXS', 'MSGS/S', 'IN/S', 'OUT/S', 'WAITS', 'RESTARTS')
# what a terminal too narrow for every column keeps, first things first
PRIORITY = ('NAME', 'CALLS/S', 'RUNNING', 'FAILED', 'PID', 'MSGS/S', 'IN/S', 'OUT/S',
            'RSS', 'UPTIME', 'CALLS', 'STREAMS', 'CTXS', 'WAITS', 'RESTARTS')
CLEAR_SCREEN = '\x1b[H\x1b[2J'


# --- formatting ----------------------------------------------------------------------

def human_bytes(count: Optional[float]) -> str:
    """``1536`` -> ``'1.5K'``; ``None`` -> ``'-'``."""
    if count is None:
        return '-'
    for unit in ('', 'K', 'M', 'G'):
        if abs(count) < 1024 or unit == 'G':
            return f'{count:.0f}{unit}' if unit == '' else f'{count:.1f}{unit}'
        count /= 1024
    return f'{count:.1f}T'  # pragma: no cover - the loop returns


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f'{hours}:{minutes:02}:{seconds:02}' if hours else f'{minutes}:{seconds:02}'


def _rate(now: dict, before: Optional[dict], keys: Sequence[str], elapsed: float) -> Optional[float]:
    if before is None or elapsed <= 0:
        return None
    return sum(now[k] - before[k] for k in keys) / elapsed


def _per_second(value: Optional[float], fmt: Callable[[float], str] = lambda v: f'{v:.0f}') -> str:
    return '-' if value is None else fmt(value)


def row_for(entry: dict, stats: Optional[dict], before: Optional[dict],
            elapsed: float) -> List[str]:
    """One actor's row; ``stats`` None: it did not answer this time."""
    if stats is None:
        return [entry['name'], str(entry.get('pid', '?')), '(no answer)',
                *([''] * (len(COLUMNS) - 3))]
    if before is not None and before.get('uid') != stats.get('uid'):
        before = None
    return [
        stats['name'], str(stats['pid']), duration(stats['uptime']), human_bytes(stats['rss']),
        str(stats['calls_served']), _per_second(_rate(stats, before, ['calls_served'], elapsed)),
        str(stats['calls_failed']), str(stats['calls_in_flight']),
        str(stats['streams_open']), str(stats['contexts_open']),
        _per_second(_rate(stats, before, ['messages_in', 'messages_out'], elapsed)),
        _per_second(_rate(stats, before, ['bytes_in'], elapsed), human_bytes),
        _per_second(_rate(stats, before, ['bytes_out'], elapsed), human_bytes),
        str(stats['credit_waits']), str(stats['restarts']),
    ]


def plain_table(rows: List[List[str]], header: Sequence[str] = COLUMNS) -> str:
    widths = [max(len(r[i]) for r in [list(header), *rows]) for i in range(len(header))]
    return '\n'.join('  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in [list(header), *rows])


def title(addr: Address, count: int) -> str:
    return (f'tractorish top: registry {format_addr(addr)}, {count} actor'
            f'{"" if count == 1 else "s"}, {time.strftime("%H:%M:%S")} (Ctrl-C quits)')


def format_stats(stats: dict) -> str:
    """``tractorish stats NAME`` without ``--json``: a few lines and a table."""
    lines = [
        f"actor {stats['name']} [{stats['uid'][1][:8]}] pid {stats['pid']}, "
        f"up {duration(stats['uptime'])}, rss {human_bytes(stats['rss'])}",
        f"calls: {stats['calls_served']} served, {stats['calls_failed']} failed, "
        f"{stats['calls_in_flight']} running, {stats['calls_waiting']} waiting for replies",
        f"open: {stats['streams_open']} streams, {stats['contexts_open']} contexts; "
        f"credit waits {stats['credit_waits']}, restarts {stats['restarts']}",
        f"messages: {stats['messages_in']} in, {stats['messages_out']} out; bytes: "
        f"{human_bytes(stats['bytes_in'])} in, {human_bytes(stats['bytes_out'])} out",
    ]
    header = ('PEER', 'CALLS', 'RUNNING', 'WAITING', 'MSGS IN', 'MSGS OUT', 'BYTES IN',
              'BYTES OUT', 'QUEUED')
    rows = [[f"{c['peer'][0]} [{c['peer'][1][:8]}]" if c['peer'] else '?',
             str(c['calls_served']), str(c['calls_in_flight']), str(c['calls_waiting']),
             str(c['messages_in']), str(c['messages_out']), human_bytes(c['bytes_in']),
             human_bytes(c['bytes_out']), human_bytes(c['bytes_queued'])]
            for c in stats['channels']]
    return '\n'.join(lines) + '\n\nchannels:\n' + plain_table(rows, header)


# --- views -------------------------------------------------------------------------------

class PlainView:
    """Text tables: on a terminal each frame replaces the last (the screen
    is cleared); elsewhere frames follow each other, a blank line apart."""

    def __init__(self, out: TextIO, terminal: bool) -> None:
        self.out = out
        self.terminal = terminal
        self.frames = 0

    def show(self, heading: str, rows: List[List[str]]) -> None:
        prefix = CLEAR_SCREEN if self.terminal else ('\n' if self.frames else '')
        self.out.write(f'{prefix}{heading}\n{plain_table(rows)}\n')
        self.out.flush()
        self.frames += 1

    def close(self) -> None:
        pass


class RichView:
    """A ``rich`` live table, redrawn in place."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live
        self._live = Live(console=Console(file=out), auto_refresh=False, transient=False)
        self._live.start()

    def show(self, heading: str, rows: List[List[str]]) -> None:
        from rich.table import Table
        shown = fitting_columns(rows, self._live.console.width)
        if len(shown) < len(COLUMNS):
            heading += f'; {len(COLUMNS) - len(shown)} columns hidden (a wider terminal shows them)'
        table = Table(title=heading, title_justify='left', expand=False)
        for column in shown:
            table.add_column(column, justify='left' if column == 'NAME' else 'right',
                             no_wrap=True)
        for row in rows:
            cells = dict(zip(COLUMNS, row))
            table.add_row(*(cells[c] for c in shown),
                          style='dim' if row[2] == '(no answer)' else None)
        self._live.update(table, refresh=True)

    def close(self) -> None:
        self._live.stop()


def fitting_columns(rows: List[List[str]], width: int) -> List[str]:
    """The columns a table ``width`` wide can show whole, by
    :data:`PRIORITY`, in their usual order (rich's borders and padding take
    3 characters a column, and one more)."""
    need = {column: max([len(column), *(len(row[i]) for row in rows)]) + 3
            for i, column in enumerate(COLUMNS)}
    kept: set = set()
    used = 1
    for column in PRIORITY:
        if used + need[column] <= width or not kept:
            kept.add(column)
            used += need[column]
    return [column for column in COLUMNS if column in kept]


def make_view(out: TextIO, plain: bool = False) -> Any:
    """``rich`` on a terminal if it is installed (and ``plain`` is not
    asked for), else text."""
    terminal = bool(getattr(out, 'isatty', lambda: False)())
    if terminal and not plain:
        try:
            return RichView(out)
        except ImportError:
            pass
    return PlainView(out, terminal)


# --- gathering -----------------------------------------------------------------------------

class Connections:
    """One portal per actor, kept open between refreshes."""

    def __init__(self) -> None:
        self._open: Dict[Uid, Tuple[AsyncExitStack, Any]] = {}

    async def stats_of(self, entry: dict, timeout: float) -> Optional[dict]:
        """``entry``'s actor's counters, or None if it did not answer in time."""
        uid = (entry['uid'][0], entry['uid'][1])
        with trio.move_on_after(timeout):
            try:
                if uid not in self._open:
                    stack = AsyncExitStack()
                    portal = await stack.enter_async_context(_portal_to(entry))
                    self._open[uid] = (stack, portal)
                return await self._open[uid][1].stats()
            except (TransportClosed, OSError, RemoteActorError):
                pass  # gone, or not answering stats: shown as such
        await self.forget(uid)
        return None

    async def forget(self, uid: Uid) -> None:
        stack, _ = self._open.pop(uid, (None, None))
        if stack is not None:
            with trio.CancelScope(shield=True):
                await stack.aclose()

    async def keep_only(self, uids: Sequence[Uid]) -> None:
        for uid in [u for u in self._open if u not in uids]:
            await self.forget(uid)

    async def aclose(self) -> None:
        await self.keep_only([])


async def gather(entries: List[dict], connections: Connections,
                 timeout: float) -> Dict[Uid, Optional[dict]]:
    """Each registered actor's counters, asked all at once, each bounded
    by ``timeout`` (None for an actor that did not answer)."""
    uids = [(e['uid'][0], e['uid'][1]) for e in entries]
    await connections.keep_only(uids)
    results: Dict[Uid, Optional[dict]] = {}

    async def ask(entry: dict, uid: Uid) -> None:
        results[uid] = await connections.stats_of(entry, timeout)
    async with trio.open_nursery() as nursery:
        for entry, uid in zip(entries, uids):
            nursery.start_soon(ask, entry, uid)
    return results


async def top_loop(addr: Address, view: Any, *, interval: float = 1.0,
                   iterations: Optional[int] = None, timeout: float = 5.0) -> None:
    """Refresh ``view`` every ``interval`` seconds, ``iterations`` times
    (None: until cancelled). Runs inside a root actor."""
    connections = Connections()
    before: Dict[Uid, Tuple[float, dict]] = {}
    shown = 0
    try:
        async with AsyncExitStack() as stack:
            registry = None
            with trio.move_on_after(timeout):  # connecting is bounded by it too
                registry = await stack.enter_async_context(discovery.get_registry(addr))
            if registry is None:
                raise TransportClosed(f'the registry at {format_addr(addr)} did not '
                                      f'answer within {timeout:g} s')
            while iterations is None or shown < iterations:
                started = trio.current_time()
                entries: List[dict] = []
                with trio.move_on_after(timeout) as waited:
                    entries = await registry.run(_registrar.list_actors)
                if waited.cancelled_caught:
                    raise TransportClosed(f'the registry at {format_addr(addr)} did not '
                                          f'answer within {timeout:g} s')
                results = await gather(entries, connections, timeout)
                now = time.monotonic()
                rows = []
                for entry in entries:
                    uid = (entry['uid'][0], entry['uid'][1])
                    stats = results.get(uid)
                    then, previous = before.get(uid, (now, None))
                    rows.append(row_for(entry, stats, previous, now - then))
                    if stats is not None:
                        before[uid] = (now, stats)
                view.show(title(addr, len(entries)), rows)
                shown += 1
                if iterations is None or shown < iterations:
                    await trio.sleep_until(started + interval)
    finally:
        await connections.aclose()
        view.close()
