"""Ctrl-C in a tree whose actors are busy: say what is waited for, and let
a second Ctrl-C end them at once.

The first Ctrl-C cancels every actor gracefully, which an actor busy with
CPU-bound work answers only after the grace periods run out (then SIGTERM,
then SIGKILL). Meanwhile the program would seem stuck; instead it says
which actors it waits for, and a second Ctrl-C kills them (SIGKILL) now.
"""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple

import trio

from ..spawn import ChildProcess

# how long a teardown may take before the program says what it waits for
NOTICE_AFTER = 1.0


@contextmanager
def interrupts_as_events() -> Iterator[Optional[Any]]:
    """Ctrl-Cs as a stream of events instead of KeyboardInterrupt, for the
    block (None off the main thread, where Python lets only the main
    thread handle signals)."""
    try:
        receiver = trio.open_signal_receiver(signal.SIGINT)
        signals = receiver.__enter__()
    except (RuntimeError, ValueError):
        yield None
        return
    try:
        yield signals
    finally:
        receiver.__exit__(None, None, None)


def _say(text: str) -> None:
    try:
        sys.stderr.write(f'tractorish: {text}\n')
        sys.stderr.flush()
    except (OSError, ValueError):  # no stderr to speak to
        pass


async def watch_interrupted_teardown(children: Dict[Tuple[str, str], ChildProcess],
                                     all_reaped: trio.Event) -> None:
    """Run while the children of an interrupted nursery are ended: after
    ``NOTICE_AFTER`` s say which are still running, and SIGKILL them all
    at the next Ctrl-C. Returns once all are gone."""
    with trio.CancelScope(shield=True), interrupts_as_events() as signals:
        async with trio.open_nursery() as nursery:
            async def notice() -> None:
                await trio.sleep(NOTICE_AFTER)
                busy = [c.name for c in children.values() if c.returncode is None]
                if busy:
                    shown = ', '.join(busy[:8]) + (' ...' if len(busy) > 8 else '')
                    _say(f'interrupted: waiting for {len(busy)} busy actor(s) to end '
                         f'({shown}); press Ctrl-C again to kill them now')

            async def kill_at_second_interrupt() -> None:
                if signals is None:
                    return
                async for _ in signals:
                    busy = [c for c in children.values() if c.returncode is None]
                    _say(f'interrupted again: killing {len(busy)} actor(s)')
                    for child in busy:
                        child.proc.kill()
                    return

            nursery.start_soon(notice)
            nursery.start_soon(kill_at_second_interrupt)
            await all_reaped.wait()
            nursery.cancel_scope.cancel()
