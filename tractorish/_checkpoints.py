"""A cancellation check for the per-message paths that needs no await.

``trio.lowlevel.checkpoint_if_cancelled()`` is an awaited coroutine that
looks up the current task: on a stream's per-value path it was about a
sixth of the consumer's time. :func:`nothing_to_raise` answers the same
question from the task's cancel status, with no coroutine; only when a
cancellation (or a KeyboardInterrupt for the main task) may be pending does
the caller await trio's own check, which then raises it::

    if not nothing_to_raise():
        await trio.lowlevel.checkpoint_if_cancelled()

It reads the fields trio's own check reads (trio >= 0.25 has them all);
if a trio release renamed them, :func:`nothing_to_raise` always answers
False, and every check is trio's own again. :func:`free_to_spin` also
looks at trio's run queue, for a reader deciding whether to poll its
socket for a moment (see ``Channel``).
"""
from __future__ import annotations

from typing import Any

import trio


def _run_context() -> Any:
    """trio's run context (what ``current_task()`` reads), if the fields
    read here are where trio keeps them; else None."""
    try:
        from trio._core._run import CancelStatus, Runner
        from trio._core._run_context import GLOBAL_RUN_CONTEXT
    except ImportError:  # pragma: no cover - a trio that moved its core
        return None
    task_type = trio.lowlevel.Task
    present = (all(hasattr(task_type, name)
                   for name in ('_cancel_status', '_runner', '_cancel_points'))
               and hasattr(CancelStatus, 'effectively_cancelled')
               and all(hasattr(Runner, name) for name in ('ki_pending', 'main_task', 'runq')))
    return GLOBAL_RUN_CONTEXT if present else None


_RUN_CONTEXT = _run_context()
FAST = _RUN_CONTEXT is not None


def nothing_to_raise() -> bool:
    """True if ``checkpoint_if_cancelled()`` here would raise nothing, and
    count this as the cancellation point it stands for; False if it might
    raise (or the fast check is unavailable): then await it."""
    if not FAST:
        return False
    task = _RUN_CONTEXT.task
    if task._cancel_status.effectively_cancelled:
        return False
    runner = task._runner
    if runner.ki_pending and task is runner.main_task:
        return False
    task._cancel_points += 1  # as trio's check counts itself
    return True


def free_to_spin() -> bool:
    """True if this task may poll for a moment instead of parking: nothing
    is pending for it to raise (counted as a cancellation point, as
    :func:`nothing_to_raise`) and no other task is queued to run.

    Tasks already taken off the run queue for this scheduler pass are not
    seen; they wait at most the spin. False when the fast check is
    unavailable.
    """
    return FAST and not _RUN_CONTEXT.runner.runq and nothing_to_raise()
