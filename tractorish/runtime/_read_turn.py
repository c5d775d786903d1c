"""The read turn: which task reads a served channel now.

Every channel the runtime serves has one *reader task*
(``ChannelServer._serve_channel``): it reads a batch of messages
(``Channel.receive(batch=True)``) and hands each to the call it belongs to
(``dispatch``). A reply reaching the task that waits for it then costs two
task switches, the reader's wake-up and the caller's. So, while one call
(either end of it) is all that is in flight on a channel that any task may
read (a plain socket: a read cancelled halfway loses nothing), the task
waiting for that call's next message reads the channel itself: it takes
the *read turn*. The rules, all kept by :class:`ReadTurn`:

- **One reader at a time.** The reader task reads only while no call's
  task holds the turn (``turn is None``); a call's task takes the turn only
  while the reader is not inside a read (``may_read``). Whoever does not
  read waits: the reader idle (``reader_idle``, woken by
  :meth:`ReadTurn.wake_reader`), a call's task on its inbox.
- **The direct call.** The one call whose task may read is
  ``direct_call`` (set by that call's :meth:`~ReadTurn.read_for` loop, and
  cleared by :meth:`~ReadTurn.stop_reading_for`, which gives the turn back
  to the reader before the task waits for anything else).
- **After the reader's read woke the direct call's task**, that task reads
  next: the reader idles (``idle_after_batch``) instead of starting a read
  that would race it (:meth:`~ReadTurn.deliver_to_direct`).
- **A failed read is the reader's to raise.** A call's task that finds the
  channel broken or closed stores why in ``read_error`` and wakes the
  reader, which raises it (or, at a clean end, stops) and closes the
  channel; the task itself then waits on its inbox, which the channel's
  end fails.
- **Dispatching happens in the reader's context** (its context variables),
  whichever task read.
"""
from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any, Awaitable, Callable, List, Optional, Sized

import trio

from .._exceptions import TransportClosed
from ..ipc import Channel
from ._woken import WOKEN

if TYPE_CHECKING:
    from ._call import _End

# a caller's read found the peer gone cleanly: the reader ends as at its own EOF
CLEAN_EOF = TransportClosed('the peer closed the connection')


class ReadTurn:
    """Who may read one served channel now (see the module doc)."""

    __slots__ = ('chan', 'context', 'reader', 'reader_idle', 'reader_reading', 'turn',
                 'direct_call', 'direct_waiter', 'idle_after_batch', 'read_error',
                 'dispatch')

    def __init__(self, chan: Channel) -> None:
        self.chan = chan
        self.context = contextvars.copy_context()  # the reader's
        self.reader: Optional[trio.lowlevel.Task] = None
        self.reader_idle = False      # parked, not reading, until woken
        self.reader_reading = False   # inside a read (owns the socket)
        self.turn: Optional[trio.lowlevel.Task] = None  # a call's task reading
        self.direct_call: Optional['_End'] = None  # the end that may read
        self.direct_waiter: Optional[trio.lowlevel.Task] = None  # its task
        # the handling of one read's messages (set by the reader)
        self.dispatch: Optional[Callable[[Any, List[dict]], None]] = None
        self.idle_after_batch = False  # the direct call's task will read next
        self.read_error: Optional[BaseException] = None  # for the reader to raise

    # --- the reader task ----------------------------------------------------------

    @trio.lowlevel.enable_ki_protection
    async def run_reader(self, dispatch: Callable[[Any, List[dict]], None], *,
                         running: Sized, max_running: int,
                         hold: Callable[[], Awaitable[None]]) -> None:
        """The reader task's loop: read and ``dispatch`` until the channel
        ends (returns) or fails (raises: the peer's bad input, or a call's
        task's failed read). While ``running`` (the peer's calls running in
        tasks here) holds ``max_running``, it reads nothing and awaits
        ``hold()`` instead."""
        self.reader = trio.lowlevel.current_task()
        self.dispatch = dispatch
        chan = self.chan
        try:
            while True:
                if self.read_error is not None:  # a call's task's read failed
                    error, self.read_error = self.read_error, None
                    if error is CLEAN_EOF:
                        return
                    raise error
                if self.turn is not None or self.idle_after_batch:
                    # a call's task reads (or is about to): wait for the turn back
                    self.idle_after_batch = False
                    self.reader_idle = True
                    await trio.lowlevel.wait_task_rescheduled(self._abort_idle)
                    continue
                if len(running) >= max_running:
                    await hold()
                    continue
                self.reader_reading = True
                try:
                    batch = await chan.receive(batch=True)
                finally:
                    self.reader_reading = False
                if not batch:
                    return
                dispatch(self, batch)
        finally:
            self.reader = None
            self.reader_idle = False

    def _abort_idle(self, _: Any) -> Any:
        """Abort function for the reader's idle wait (when it is cancelled)."""
        self.reader_idle = False
        return trio.lowlevel.Abort.SUCCEEDED

    def wake_reader(self) -> None:
        """Give the read turn back to the reader task (if it is idle)."""
        if self.reader_idle and self.reader is not None:
            self.reader_idle = False
            trio.lowlevel.reschedule(self.reader, WOKEN)

    def deliver_to_direct(self, end: '_End', message: dict) -> None:
        """The reader's read brought ``message`` for the direct call: hand it
        over, and if that woke the call's task reading for itself, idle: it
        reads the next message itself, or hands back the turn."""
        waiter = end.inbox.waiter
        end.deliver(message)
        if waiter is not None and waiter is self.direct_waiter \
                and end.inbox.waiter is None:
            # (not credit, which wakes nobody, nor another task reading the
            # same inbox)
            self.idle_after_batch = True

    # --- a call's task ------------------------------------------------------------

    def may_read(self) -> bool:
        """True if a call's task may take the read turn now."""
        return (self.turn is None and not self.reader_reading and self.reader is not None
                and self.read_error is None and self.dispatch is not None
                and self.chan.reads_directly and not self.chan.closed)

    def reading_for(self, end: '_End') -> bool:
        """True while ``end``'s task holds the turn, reading for it."""
        return self.direct_call is end and self.turn is not None

    @trio.lowlevel.enable_ki_protection
    async def read_for(self, end: '_End') -> dict:
        """The next message for ``end``, read from the channel by this task
        itself whenever the turn is free; else waited for on its inbox.

        ``end`` becomes the direct call; the caller must call
        :meth:`stop_reading_for` (in a ``finally``) before it waits for
        anything else, so that the reader task takes over again.
        """
        self.direct_call = end
        inbox = end.inbox
        while not len(inbox):
            if inbox.error is not None:
                raise inbox.error
            me = trio.lowlevel.current_task()
            if not self.may_read():
                if self.turn is None:
                    self.wake_reader()  # somebody must read: the reader task
                # wait once, then decide again: another task reading this
                # inbox may take what woke us, and then we must read or wake
                # the reader
                self.direct_waiter = me
                try:
                    await inbox.wait()
                finally:
                    self.direct_waiter = None
                continue
            self.turn = me
            try:
                # (parking at once: a task waiting for its own call's reply
                # waits as long as the remote function runs, and its polling
                # would take the CPU the callee needs; the reader task, which
                # waits for what a peer in conversation sends next, polls)
                batch = await self.chan.receive(batch=True, poll=False)
            except (trio.Cancelled, KeyboardInterrupt):
                raise
            except Exception as err:  # for the reader to raise: it closes the channel
                self.read_error = err
            else:
                if not batch:
                    self.read_error = CLEAN_EOF
                else:
                    assert self.dispatch is not None
                    try:  # in the reader's context, as the reader would
                        self.context.run(self.dispatch, self, batch)
                    except BaseException as err:  # the peer's, not ours: as above
                        self.read_error = err
            finally:
                if self.turn is me:
                    self.turn = None
                if self.read_error is not None:
                    self.wake_reader()
        message = inbox.get_nowait()
        assert message is not None
        return message

    @trio.lowlevel.enable_ki_protection
    def stop_reading_for(self, end: '_End') -> None:
        """``end`` no longer reads for itself: the reader task reads again."""
        if self.direct_call is end:
            self.direct_call = None
            self.direct_waiter = None
            self.idle_after_batch = False
            self.wake_reader()
