"""What the runtime wakes a task it parked by hand with.

``trio.lowlevel.reschedule(task)`` sends the parked task a fresh
``outcome.Value(None)``, which its ``wait_task_rescheduled`` unwraps once.
The runtime parks and wakes a task per message (a call's task waiting for
its reply, the reader waiting for the read turn), so it sends
:data:`WOKEN` instead: the same ``None``, from one object made once.
"""
from __future__ import annotations

from typing import Any

import outcome


class _Woken(outcome.Outcome):  # type: ignore[type-arg]
    """An outcome of ``None`` that may be unwrapped any number of times (an
    ``outcome.Value`` may be unwrapped once: each is made for one use)."""

    __slots__ = ()

    def unwrap(self) -> None:
        return None

    def send(self, gen: Any) -> Any:
        return gen.send(None)

    async def asend(self, agen: Any) -> Any:
        return await agen.asend(None)


WOKEN = _Woken()
"""Pass as ``reschedule(task, WOKEN)``: the task's wait returns ``None``."""
