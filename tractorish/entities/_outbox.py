"""``Outbox``: one side's sending on a session stream, several messages a send.

Each value on a session's stream is a list of messages. A task that sends
while no send is under way lets the other ready tasks run once (so that
those about to send queue their messages; unless it knows it is alone),
then sends everything queued;
messages queued meanwhile go with the next send, which the same task makes
when its own returns. So many tasks asking at once cost a few writes, not
one each, while a lone message still leaves from its own task, with no
hand-over to another.

What a send cannot take is handed back, message by message, to callbacks:
``on_unsent(messages, error)`` for messages that never left (the stream
broke, or their sender was cancelled with nobody left to send them: a
task of ``nursery`` then sends them), ``on_unencodable(message, error)``
for one that msgpack cannot carry (its batch is sent again without it).
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

import trio

from .._exceptions import MsgTypeError, ProtocolError, TransportClosed

SEND_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, TransportClosed)
ENCODE_ERRORS = (MsgTypeError, ProtocolError)  # unencodable, or over the size limit

# messages queued while a send is under way before senders wait for it
QUEUE_LIMIT = 4096

Unsent = Callable[[List[list], BaseException], None]
Unencodable = Callable[[list, BaseException], None]


class Outbox:
    """Messages to send on one stream, several at a time (see the module)."""

    def __init__(self, stream: Any, nursery: trio.Nursery, on_unsent: Unsent,
                 on_unencodable: Unencodable) -> None:
        self._stream = stream
        self._nursery = nursery
        self._on_unsent = on_unsent
        self._on_unencodable = on_unencodable
        self._queued: List[list] = []
        self._sending = False
        self._room: Optional[trio.Event] = None
        self.error: Optional[BaseException] = None

    async def send(self, messages: List[list], gather: bool = True) -> None:
        """Send ``messages`` now, or with the send under way.

        ``gather=False`` skips the scheduling round that lets other ready
        tasks add theirs: for a sender that knows it is alone.

        Raises the stream's error (``TransportClosed`` and the like) if the
        stream is broken; cancelling it leaves the messages queued (someone
        sends them). Waits while too many messages are queued.
        """
        if self.error is not None:
            raise self.error
        while len(self._queued) >= QUEUE_LIMIT:
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()
            if self.error is not None:
                raise self.error
        self._queued.extend(messages)
        if self._sending:
            await trio.lowlevel.checkpoint()
            return
        await self._send_queued(gather)

    def queue_nowait(self, message: list) -> None:
        """Add ``message`` to what the send under way sends next (for the
        ``on_unencodable`` callback, which may put a message in its place)."""
        self._queued.append(message)

    async def _send_queued(self, gather: bool = False) -> None:
        self._sending = True
        try:
            if gather:
                # one scheduling round first: the other tasks that are ready
                # to send now (woken by one read of replies, say) queue theirs
                try:
                    await trio.lowlevel.checkpoint()
                except BaseException:
                    self._nursery.start_soon(self._send_later)  # what is queued
                    raise
            while self._queued:
                batch, self._queued = self._queued, []
                self._wake()
                try:
                    await self._stream.send(batch)
                except ENCODE_ERRORS:
                    await self._send_each(batch)
                except BaseException as err:
                    self._not_sent(batch, err)
                    raise
        finally:
            self._sending = False

    async def _send_each(self, batch: List[list]) -> None:
        """A batch msgpack refused: send its messages one by one, handing back
        those it cannot carry."""
        for index, message in enumerate(batch):
            try:
                await self._stream.send([message])
            except ENCODE_ERRORS as err:
                self._on_unencodable(message, err)
            except BaseException as err:
                self._not_sent(batch[index:], err)
                raise

    def _not_sent(self, messages: List[list], error: BaseException) -> None:
        """``messages`` did not leave. If their sender was cancelled (nothing
        of a cancelled send leaves), a task of the nursery sends them; if the
        stream broke, they and all that is queued go to ``on_unsent``, and
        every later send raises the error."""
        self._queued[:0] = messages
        if isinstance(error, (trio.Cancelled, KeyboardInterrupt)):
            try:
                self._nursery.start_soon(self._send_later)
                return
            except RuntimeError:  # the nursery is closing: nobody will send
                pass
        self.error = error
        unsent, self._queued = self._queued, []
        self._wake()
        self._on_unsent(unsent, error)

    async def _send_later(self) -> None:
        if self._sending or self.error is not None:
            return
        try:
            await self._send_queued()
        except Exception:
            pass  # handed back already (to on_unsent)

    def _wake(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None
