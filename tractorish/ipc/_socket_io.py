"""``SocketIO``: a channel's bytes, in and out, with its socket shortcuts.

:class:`~tractorish.ipc.Channel` speaks messages; this moves their bytes.
Writes go through one writer task per channel, which coalesces whatever is
queued into one write: a lone message is written at once, a burst costs
one write per batch, and a sender cancelled while waiting for room never
leaves half a message on the wire. Senders wait while more than
``high_water`` bytes are queued, so a slow peer slows its senders down
instead of growing this process.

On a plain socket (not TLS, not an in-memory stream) it takes shortcuts
that trio's ``SocketStream`` cannot, each explained where it is taken:

- a message sent while the writer is idle, outside a burst, is written
  straight to the socket (:meth:`SocketIO.write_soon` and its siblings),
  with no writer wake-up;
- reads use ``os.read`` and pass through the scheduler only when the socket
  is empty or after ``FAIR_READS`` reads in a row (:meth:`SocketIO.read`);
- a reader whose peer answered at once last time polls the socket for a
  moment before parking (``spin_ns``, :meth:`SocketIO._spin`), only while
  trio's public statistics say no other task is waiting to run, and only
  if its caller lets it (the runtime's reader task does; a call's task
  reading for its own reply parks at once).

Here, and only here in the package, the stream's and the OS's errors on
writing become :class:`TransportClosed`.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

import trio

from .._exceptions import TransportClosed

READ_SIZE = 256 * 1024
HIGH_WATER = 1024 * 1024
# a send within this long of the previous one is part of a burst: batch it
BURST_GAP_NS = 50_000
# queued bytes that a batched send hands to the kernel at once
BATCH_FLUSH = 1024
# a read at least this big (but short of READ_SIZE) is taken for part of a
# burst: the next read tries the socket before waiting for it
BURST_READ = 1024
# reads that found data, in a row, before the reader lets other tasks run
FAIR_READS = 16
# polling time after which a reader parks (lets the scheduler run timers
# and other sockets) even if it could poll again
SPIN_BUDGET_NS = 1_000_000
# what a reader that has not waited yet takes its last wait to have been
_NEVER_WAITED = 1 << 62
# after n polls in a row found nothing, the next 2**n (n at most this) waits
# park at once: on a machine short of CPU the peer answers late, and polling
# would take the CPU it needs
MAX_SPIN_BACKOFF_SHIFT = 10

STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def _nobody_else_to_run() -> bool:
    """True if no other task is queued to run: a reader may then poll its
    socket for a moment without holding anyone up."""
    return trio.lowlevel.current_statistics().tasks_runnable == 0


class SocketIO:
    """The bytes of one channel: its outgoing queue and writer, its reads.

    ``describe`` names the channel in errors. Not for use outside ``ipc``.
    """

    def __init__(self, stream: trio.abc.Stream, *, high_water: int,
                 describe: Callable[[], str]) -> None:
        self.stream = stream
        # a plain socket stream can be read and written without trio's
        # stream (its fileno() is asked each time: -1 once closed, never a
        # reused descriptor)
        self.direct: Any = getattr(stream, 'socket', None)
        self._describe = describe
        self.high_water = high_water
        # how much a batched send may find queued and still just join it
        self._batch_room = min(BATCH_FLUSH, high_water)
        self.pending = bytearray()
        self._last_direct = 0
        self._writer_lot = trio.lowlevel.ParkingLot()
        self._space_lot = trio.lowlevel.ParkingLot()
        self._flushed_lot = trio.lowlevel.ParkingLot()
        self._room_waiters = 0  # tasks parked in either lot
        self.corked = False  # writes are held until uncork() (see cork())
        self.writing = False
        self._writer_parked = False
        self.send_error: Optional[TransportClosed] = None
        self.closed = False
        self.bytes_in = self.bytes_out = 0
        # A reader that found the socket empty polls it for up to this long
        # before parking, if its last wait was no longer (a peer answering
        # at once): see read(). 0 (the default here) never polls.
        self.spin_ns = 0
        self._last_wait = _NEVER_WAITED
        self._spin_misses = 0  # polls in a row that found nothing
        self._spin_skips = 0   # waits left to park without polling
        self._spun = 0         # ns spent polling since the scheduler last ran
        self._reads_in_a_row = 0
        self._drained = False

    # --- writing --------------------------------------------------------------

    def why_closed(self) -> TransportClosed:
        """A fresh error saying why nothing more can be sent: each task that
        raises it gets its own (one object raised by many tasks grows one
        traceback without bound)."""
        if self.send_error is not None:
            return TransportClosed(str(self.send_error))
        return TransportClosed(f'{self._describe()} is closed')

    # Four ways to queue bytes (whole messages), one per kind of sender;
    # each raises TransportClosed if nothing can be written any more, and
    # none waits for room (a sender that must respect the high-water mark
    # waits for it first).

    def write_soon(self, data: bytes) -> None:
        """A message on its own (``Channel.send``): outside a burst, with the
        writer idle, it goes to the kernel now, behind anything queued; in a
        burst (a send within ``BURST_GAP_NS`` of the last) it waits for the
        writer, which sends many in one write."""
        now = time.perf_counter_ns()
        direct = now - self._last_direct > BURST_GAP_NS
        self._last_direct = now
        self.write_at_once(data, direct)

    def write_batched(self, data: bytes) -> None:
        """One of many messages sent at once (``Channel.send(batch=True)``):
        it joins the queued batch until that is big enough to keep the peer
        busy, and then the batch goes now: the peer works on it while we
        make the rest (two processes, both working)."""
        pending = self.pending
        if len(pending) < self._batch_room:  # the usual case in a burst
            if self.send_error is not None or self.closed:
                raise self.why_closed()
            pending += data
            if self._writer_parked:  # (_wake_writer, in line)
                self._writer_parked = False
                self._writer_lot.unpark()
            return
        self.write_at_once(data, len(pending) >= BATCH_FLUSH)

    def write_in_burst(self, data: bytes) -> None:
        """A producer's value (``Channel.send_nowait(stream=...)``): it joins
        a burst going on (bytes queued, or the writer writing) without a
        look at the clock, else goes as :meth:`write_soon` sends. If the
        high-water mark is reached, ``trio.WouldBlock``: nothing is queued."""
        pending = self.pending
        if len(pending) >= self.high_water:
            raise trio.WouldBlock
        if (pending or self.writing) and self.send_error is None and not self.closed:
            pending += data
            if self._writer_parked:  # (_wake_writer, in line)
                self._writer_parked = False
                self._writer_lot.unpark()
        else:
            self.write_soon(data)

    def write_at_once(self, data: bytes, direct: bool = True) -> None:
        """What must not wait (``Channel.send_nowait``: grants, a stream's
        end, a read's replies): to the kernel now, behind anything queued,
        unless the writer is writing (then with its next write). (With
        ``direct=False``, for the other ways above: queued for the writer.)
        """
        if self.send_error is not None or self.closed:
            raise self.why_closed()
        pending = self.pending
        if self.corked:  # held for uncork(): no write, no writer wake-up
            pending += data
            return
        if direct and self.direct is not None and not self.writing \
                and len(pending) < self.high_water:
            # with no writer wake-up; behind what is queued, nothing copied
            if pending:
                pending += data
                self._write_pending_now()
            else:
                # (_write_now and _os_write, in line: a lone message is the
                # per-call path)
                try:
                    sent = os.write(self.direct.fileno(), data)
                except BlockingIOError:
                    sent = 0
                except OSError as err:
                    raise self._write_failed(err) from err
                self.bytes_out += sent
                if sent < len(data):
                    pending += data[sent:]
            if not pending:
                if self._room_waiters:
                    self._room_made()
                return
        else:
            pending += data
        self._wake_writer()

    def cork(self) -> None:
        """Hold what would go to the kernel at once (:meth:`write_at_once`)
        until :meth:`uncork`, which writes it all in one go: a reader
        answering the calls of one read in place replies to them with one
        write."""
        self.corked = True

    def uncork(self) -> None:
        """Write what was held since :meth:`cork`, as :meth:`write_at_once`
        would have (never raises: a failed write marks the channel broken,
        and the next send says so)."""
        self.corked = False
        if self.pending:
            try:
                self.write_at_once(b'')
            except TransportClosed:
                pass

    def _room_made(self) -> None:
        # the queue is empty: a sender may be waiting for room, a drain()
        # for everything to be out
        if self._space_lot:
            self._space_lot.unpark_all()
        if self._flushed_lot:
            self._flushed_lot.unpark_all()

    async def wait_for_room(self) -> None:
        """Wait until a message may be queued under the high-water mark;
        :class:`TransportClosed` if the channel closes meanwhile."""
        while len(self.pending) >= self.high_water:
            if self.send_error is not None or self.closed:
                raise self.why_closed()
            # what is queued must go out for room to come
            self._wake_writer()
            await self._wait_in(self._space_lot)

    async def drain(self) -> None:
        """Wait until everything queued so far is handed to the OS (or the
        channel is broken)."""
        while (self.pending or self.writing) and self.send_error is None:
            self._wake_writer()
            await self._wait_in(self._flushed_lot)

    async def _wait_in(self, lot: trio.lowlevel.ParkingLot) -> None:
        """Park in one of the lots :meth:`_room_made` wakes, counted (so that
        a write that empties the queue looks at them only when somebody
        waits: a count read in line, not the lots' own ``__bool__``)."""
        self._room_waiters += 1
        try:
            await lot.park()
        finally:
            self._room_waiters -= 1

    def _wake_writer(self) -> None:
        """Wake the writer if it is parked (once: it is then on its way)."""
        if self._writer_parked:
            self._writer_parked = False
            self._writer_lot.unpark()

    def _write_pending_now(self) -> None:
        """Write what the kernel takes of the queue now; keep the rest queued.

        (Deleting from the front of a bytearray moves no bytes.)
        """
        del self.pending[:self._os_write(self.pending)]

    def _write_now(self, data: Any) -> Any:
        """Write what the kernel takes of ``data`` (bytes or a memoryview)
        now; return the rest."""
        sent = self._os_write(data)
        return data[sent:] if sent < len(data) else b''

    def _os_write(self, data: Any) -> int:
        """One write to the socket; how much the kernel took (0 when full).

        A failed write marks the channel broken and raises TransportClosed.
        """
        try:
            sent = os.write(self.direct.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError as err:
            raise self._write_failed(err) from err
        self.bytes_out += sent
        return sent

    def _write_failed(self, err: OSError) -> TransportClosed:
        """Mark the channel broken by a failed write; the error to raise."""
        self.send_error = TransportClosed(f'{self._describe()}: send failed: {err!r}')
        # nothing will make room now: whoever waits for it learns why
        self._space_lot.unpark_all()
        self._flushed_lot.unpark_all()
        return self.why_closed()

    @trio.lowlevel.enable_ki_protection
    async def write_loop(self) -> None:
        """The writer task: write what is queued until closed and drained."""
        # Shielded: queued messages still go out while the scope that owns
        # the channel is being cancelled (e.g. a cancel request to a peer).
        # It ends once the channel is closed and drained, or the stream broke;
        # the channel closes the stream under a stuck send_all to guarantee that.
        with trio.CancelScope(shield=True):
            while True:
                while not self.pending:
                    if self.closed:
                        self._flushed_lot.unpark_all()
                        return
                    self._writer_parked = True
                    try:
                        await self._writer_lot.park()
                    finally:
                        self._writer_parked = False  # (if not woken by us)
                batch, self.pending = self.pending, bytearray()
                self._space_lot.unpark_all()
                self.writing = True
                try:
                    if self.direct is not None:
                        await self._write_direct(batch)
                    else:
                        await self.stream.send_all(batch)
                        self.bytes_out += len(batch)
                except TransportClosed:
                    return  # _os_write has said why
                except STREAM_ERRORS as err:
                    self.send_error = TransportClosed(
                        f'{self._describe()}: send failed: {err!r}')
                    return
                finally:
                    self.writing = False
                    self._flushed_lot.unpark_all()
                    self._space_lot.unpark_all()

    async def _write_direct(self, data: bytearray) -> None:
        """``send_all`` on the plain socket, without its scheduler pass after
        each write: the writer waits only when the kernel's buffer is full."""
        rest: Any = memoryview(data)
        while rest:
            rest = self._write_now(rest)
            if rest:
                await trio.lowlevel.wait_writable(self.direct)

    def close(self) -> None:
        """No more writing: the writer ends once it has drained the queue."""
        self.closed = True
        self._writer_lot.unpark_all()
        self._space_lot.unpark_all()

    # --- reading --------------------------------------------------------------

    async def read(self, poll: bool = True) -> 'bytes | bytearray':
        """The next bytes from the peer (``b''`` at its end); the stream's
        errors as they are (the channel translates them).

        A plain socket is read with no scheduler pass when data is waiting:
        ``SocketStream.receive_some`` yields to the scheduler after every
        successful read, which on the per-message path is a whole extra
        scheduler pass per round trip. This yields only when the socket is
        empty (waiting for it) or after ``FAIR_READS`` reads in a row that
        found data, so a peer that never pauses cannot starve other tasks.
        ``poll=False``: an empty socket is waited for at once, never polled
        (see ``_spin``).
        """
        if self.direct is None:
            received = await self.stream.receive_some(READ_SIZE)
            self.bytes_in += len(received)
            return received
        sock = self.direct
        data: Optional[bytes] = None
        if self._drained:
            # the last read took less than it could: the socket is most
            # likely empty, so wait for it rather than ask it (and fail);
            # the wait is the cancellation point
            self._drained = False
            fd = sock.fileno()
            if fd < 0:
                # closed since (by aclose): trio would take -1 for a
                # descriptor and fail with a ValueError
                raise trio.ClosedResourceError(f'{self._describe()} is closed')
            start = time.perf_counter_ns()
            if poll and self._last_wait <= self.spin_ns:
                if self._spin_skips:
                    self._spin_skips -= 1
                elif (self._reads_in_a_row < FAIR_READS and self._spun < SPIN_BUDGET_NS
                        and _nobody_else_to_run()):
                    await trio.lowlevel.checkpoint_if_cancelled()  # (as the wait would)
                    data = self._spin(fd, start)
            if data is None:
                await trio.lowlevel.wait_readable(sock)
                self._last_wait = time.perf_counter_ns() - start
                self._reads_in_a_row = self._spun = 0  # other tasks ran while we waited
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._reads_in_a_row >= FAIR_READS:
                self._reads_in_a_row = self._spun = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
        while data is None:
            try:
                data = os.read(sock.fileno(), READ_SIZE)
            except BlockingIOError:
                self._reads_in_a_row = self._spun = 0
                start = time.perf_counter_ns()
                await trio.lowlevel.wait_readable(sock)
                self._last_wait = time.perf_counter_ns() - start
        self._reads_in_a_row += 1
        # a short read most likely emptied the socket, unless it was part of
        # a burst: a peer streaming to us has likely written more by the
        # time we have handled this much
        self._drained = len(data) < BURST_READ
        self.bytes_in += len(data)
        return data

    def _spin(self, fd: int, start: int) -> Optional[bytes]:
        """Poll the socket for up to ``spin_ns``: what it read, or None.

        For a reader whose peer answered within the spin last time: parking
        costs a wake-up when the answer comes (and, on a virtual machine,
        caches gone cold), which can take longer than the answer itself.
        Only while no other task is queued to run (see read).
        """
        end = start + self.spin_ns
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                if time.perf_counter_ns() < end:
                    continue
                # not this time: park, and poll less until a poll finds data
                self._spin_misses = min(self._spin_misses + 1, MAX_SPIN_BACKOFF_SHIFT)
                self._spin_skips = 1 << self._spin_misses
                return None
            self._last_wait = time.perf_counter_ns() - start
            self._spun += self._last_wait
            self._spin_misses = 0
            return data
