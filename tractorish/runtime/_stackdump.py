"""A dump of every trio task's stack, on a signal (tractor's ``enable_stack_on_sig``).

``kill -USR1 <pid>`` makes an actor print its task tree, with where each
task waits, to its stderr (which its parent relays); the actor passes the
signal on to its own children, so one signal shows a whole tree. Nothing
runs until the signal comes.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from types import FrameType
from typing import Any, Callable, Iterable, Iterator, List

import trio

DEFAULT_SIGNAL = signal.SIGUSR1


def _frames(coro: Any) -> Iterator[FrameType]:
    """The frames of a coroutine chain, outermost first."""
    while coro is not None:
        frame = getattr(coro, 'cr_frame', None) or getattr(coro, 'ag_frame', None) \
            or getattr(coro, 'gi_frame', None)
        if frame is not None:
            yield frame
        coro = getattr(coro, 'cr_await', None) or getattr(coro, 'ag_await', None) \
            or getattr(coro, 'gi_yieldfrom', None)


def _task_lines(task: trio.lowlevel.Task, depth: int) -> List[str]:
    pad = '  ' * depth
    lines = [f'{pad}task {task.name!r}']
    for frame in _frames(task.coro):
        summary = traceback.extract_stack(frame, limit=1)[-1]
        lines.append(f'{pad}  {summary.filename}:{summary.lineno} in {summary.name}')
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            lines.extend(_task_lines(child, depth + 1))
    return lines


def format_task_tree(header: str = '') -> str:
    """Every task of this trio run, as a tree, with where each one waits.

    Call it from inside ``trio.run``.
    """
    root = trio.lowlevel.current_root_task()
    lines = [header] if header else []
    if root is not None:
        lines.extend(_task_lines(root, 0))
    return '\n'.join(lines) + '\n'


async def dump_stacks_on_signal(header: Callable[[], str],
                                children: Callable[[], Iterable[int]],
                                sig: int = DEFAULT_SIGNAL,
                                task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Print :func:`format_task_tree` to stderr at each ``sig``, and pass
    ``sig`` on to the pids ``children()`` names. Runs until cancelled."""
    with trio.open_signal_receiver(sig) as signals:
        task_status.started()
        async for _ in signals:
            sys.stderr.write(format_task_tree(header()))
            sys.stderr.flush()
            for pid in children():
                try:
                    os.kill(pid, sig)
                except OSError:  # gone meanwhile
                    pass
