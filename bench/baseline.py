"""The bare-socket baseline: msgpack over one trio TCP or Unix socket connection.

Two processes, as with tractorish: the benchmark starts this file as a plain
Python subprocess (``python bench/baseline.py --serve [--uds PATH]``). The
server listens on ``127.0.0.1`` port 0 (and on the Unix socket ``PATH`` if
given), writes ``PORT <n>`` on stdout, and exits when its stdin reaches EOF
(the parent closed it, or the parent died). The client side
(:func:`echo_server`, :func:`measure_round_trips`,
:func:`measure_multiplexed` and :func:`measure_stream`) runs in the
benchmark process; each takes an address: a TCP port (an int) or a Unix
socket path (a str).

Each connection is one of two kinds, chosen by its first message:

* ``{'stream': n, 'size': s}``: the server sends ``n`` msgpack values as
  fast as it can, packing many into each ``send_all`` (batches of about
  ``STREAM_BATCH`` bytes): the ints ``0 .. n-1`` if ``s`` is 0, else ``n``
  byte strings of ``s`` bytes. It then waits for the client to close.
* anything else: the server echoes that message and every later one; the
  replies to all the messages that one read brought are written together.

No framing beyond msgpack itself: the reader feeds whatever bytes arrive to
a ``msgpack.Unpacker`` and takes whole messages from it, as tractorish's own
decoder does.
"""
from __future__ import annotations

import os
import reprlib
import signal
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple, Union

import msgpack
import trio

HOST = '127.0.0.1'
READ_SIZE = 64 * 1024
STREAM_BATCH = 64 * 1024
STOP_TIMEOUT = 2.0
_EOF = object()

Addr = Union[int, str]  # a TCP port on HOST, or a Unix socket path


# --- server (runs in the subprocess) ---------------------------------------

async def _first_message(stream: trio.SocketStream, unpacker: msgpack.Unpacker) -> Any:
    """The connection's first message, or ``_EOF`` if it closed before one."""
    while True:
        for msg in unpacker:
            return msg
        data = await stream.receive_some(READ_SIZE)
        if not data:
            return _EOF
        unpacker.feed(data)


async def _echo(stream: trio.SocketStream, unpacker: msgpack.Unpacker) -> None:
    """Echo every message; the replies to one read's messages go out in one write.

    A sequential client sends one message per read, so this is one write per
    message for it; concurrent requests on one connection share writes.
    """
    packb = msgpack.packb
    while True:
        out = [packb(msg, use_bin_type=True) for msg in unpacker]
        if out:
            await stream.send_all(out[0] if len(out) == 1 else b''.join(out))
        data = await stream.receive_some(READ_SIZE)
        if not data:
            return
        unpacker.feed(data)


async def _stream_values(stream: trio.SocketStream, n: int, size: int) -> None:
    """Send ``n`` values, packed one by one, written in ~64 KiB batches."""
    pack = msgpack.Packer(use_bin_type=True).pack
    blob = b'x' * size
    parts: List[bytes] = []
    pending = 0
    for i in range(n):
        data = pack(blob if size else i)
        parts.append(data)
        pending += len(data)
        if pending >= STREAM_BATCH:
            await stream.send_all(b''.join(parts))
            parts.clear()
            pending = 0
    if parts:
        await stream.send_all(b''.join(parts))


async def _connection(stream: trio.SocketStream) -> None:
    unpacker = msgpack.Unpacker(raw=False)
    try:
        first = await _first_message(stream, unpacker)
        if first is _EOF:
            return
        if isinstance(first, dict) and 'stream' in first:
            await _stream_values(stream, int(first['stream']), int(first.get('size', 0)))
            async for _ in stream:  # until the client closes
                pass
            return
        # the first message goes back alone; any others that arrived with it
        # go back in _echo's first write
        await stream.send_all(msgpack.packb(first, use_bin_type=True))
        await _echo(stream, unpacker)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _wait_stdin_eof() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        while await stdin.receive_some(4096):
            pass


async def _unix_listener(path: str) -> trio.SocketListener:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(128)
    return trio.SocketListener(sock)


async def _serve(uds_path: Optional[str]) -> None:
    listeners: List[Any] = list(await trio.open_tcp_listeners(0, host=HOST))
    port = listeners[0].socket.getsockname()[1]
    if uds_path:
        listeners.append(await _unix_listener(uds_path))
    sys.stdout.write(f'PORT {port}\n')
    sys.stdout.flush()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, _connection, listeners)
        await _wait_stdin_eof()
        nursery.cancel_scope.cancel()


def serve_main(uds_path: Optional[str] = None) -> None:
    # Ctrl-C goes to the whole process group; the parent owns the teardown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        trio.run(_serve, uds_path)
    finally:
        if uds_path:
            try:
                os.unlink(uds_path)
            except OSError:
                pass


# --- client (runs in the benchmark process) --------------------------------

@asynccontextmanager
async def echo_server(uds_path: Optional[str] = None) -> AsyncIterator[Tuple[int, trio.Process]]:
    """Start the server subprocess (echo and stream); yield ``(port, process)``.

    With ``uds_path`` it also listens on that Unix socket (which it removes
    when it exits). The process is always reaped on the way out: stdin is
    closed so it exits by itself, and if it has not within a moment it is
    killed. The cleanup is shielded, so it also runs on cancellation and
    Ctrl-C.
    """
    args = [sys.executable, os.path.abspath(__file__), '--serve']
    if uds_path:
        args += ['--uds', uds_path]
    proc = await trio.lowlevel.open_process(args, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE)
    try:
        port = await _read_port(proc)
        yield port, proc
    finally:
        await stop_helper(proc)


async def stop_helper(proc: trio.Process) -> None:
    """Close a helper's stdin so it exits; kill it if it has not in a moment.

    Shielded, so it also runs on cancellation and Ctrl-C; always reaps.
    """
    with trio.CancelScope(shield=True):
        try:
            if proc.stdin is not None:
                await proc.stdin.aclose()
            if proc.returncode is None:
                with trio.move_on_after(STOP_TIMEOUT):
                    await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()


async def _read_port(proc: trio.Process) -> int:
    assert proc.stdout is not None
    buf = b''
    with trio.fail_after(30):  # a startup bound, not a timed measurement
        while b'\n' not in buf:
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f'baseline server exited before reporting its '
                                   f'port (returncode {await proc.wait()})')
            buf += chunk
    line = buf.split(b'\n', 1)[0].decode()
    word, _, port = line.partition(' ')
    if word != 'PORT' or not port.isdigit():
        raise RuntimeError(f'baseline server said {line!r}, expected "PORT <n>"')
    return int(port)


async def connect(addr: Addr) -> trio.SocketStream:
    """A stream to the server: TCP to ``HOST:addr``, or the Unix socket ``addr``."""
    if isinstance(addr, str):
        return await trio.open_unix_socket(addr)
    return await trio.open_tcp_stream(HOST, addr)


async def measure_round_trips(addr: Addr, calls: int, warmup: int) -> Tuple[List[int], float]:
    """Sequential request/reply round trips to the echo server.

    Returns the per-call latencies in nanoseconds and the wall time of the
    measured calls in seconds.
    """
    stream = await connect(addr)
    async with stream:
        unpacker = msgpack.Unpacker(raw=False)
        packb = msgpack.packb
        perf = time.perf_counter_ns

        async def call(i: int) -> None:
            await stream.send_all(packb({'x': i}, use_bin_type=True))
            while True:
                for reply in unpacker:
                    if reply != {'x': i}:
                        raise RuntimeError(f'baseline echo mismatch: sent {i}, got {reply!r}')
                    return
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise RuntimeError('baseline server closed the connection')
                unpacker.feed(data)

        for i in range(warmup):
            await call(i)
        latencies = [0] * calls
        start = perf()
        for i in range(calls):
            t0 = perf()
            await call(i)
            latencies[i] = perf() - t0
        elapsed = (perf() - start) / 1e9
    return latencies, elapsed


async def measure_multiplexed(addr: Addr, tasks: int, calls: int,
                              warmup: int) -> Tuple[int, float]:
    """``tasks`` tasks, each making ``calls`` sequential echo calls, on ONE connection.

    The smallest multiplexer that does the job: each request is
    ``{'id': n, 'x': i}``; a task queues its packed request and parks on an
    event; one writer task sends whatever is queued in one write; one reader
    task feeds an ``Unpacker`` and hands each reply to the task whose id it
    carries. Every reply is checked. Each task first makes ``warmup`` untimed
    calls (all tasks together, then the clock starts). Returns the number of
    timed calls and their wall time in seconds.
    """
    stream = await connect(addr)
    async with stream:
        packb = msgpack.packb
        waiting: Dict[int, list] = {}  # id -> [event, reply]
        outbox: List[bytes] = []
        queued = trio.Event()
        ids = iter(range(1 << 62))

        async def writer() -> None:
            nonlocal queued
            while True:
                await queued.wait()
                queued = trio.Event()  # no checkpoint since the wait returned
                data = b''.join(outbox)
                outbox.clear()
                await stream.send_all(data)

        async def reader() -> None:
            unpacker = msgpack.Unpacker(raw=False)
            while True:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise RuntimeError('baseline server closed the connection')
                unpacker.feed(data)
                for reply in unpacker:
                    slot = waiting.pop(reply['id'])
                    slot[1] = reply
                    slot[0].set()

        async def call(i: int) -> None:
            rid = next(ids)
            slot: list = [trio.Event(), None]
            waiting[rid] = slot
            outbox.append(packb({'id': rid, 'x': i}, use_bin_type=True))
            queued.set()
            await slot[0].wait()
            if slot[1]['x'] != i:
                raise RuntimeError(f'baseline multiplexed echo mismatch: sent {i}, '
                                   f'got {slot[1]!r}')

        async def worker(n: int) -> None:
            for i in range(n):
                await call(i)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            nursery.start_soon(reader)
            async with trio.open_nursery() as warm:
                for _ in range(tasks):
                    warm.start_soon(worker, warmup)
            start = time.perf_counter_ns()
            async with trio.open_nursery() as timed:
                for _ in range(tasks):
                    timed.start_soon(worker, calls)
            elapsed = (time.perf_counter_ns() - start) / 1e9
            nursery.cancel_scope.cancel()
    return tasks * calls, elapsed


async def measure_stream(addr: Addr, n: int, size: int = 0) -> float:
    """Receive one stream of ``n`` values from the server; its wall time in s.

    ``size`` 0 asks for the ints ``0 .. n-1``, else for ``n`` byte strings
    of ``size`` bytes. The connection is made first, untimed; the clock runs
    from sending the request to decoding the last value, and every value is
    checked (the int's value, the payload's length), as the tractorish side
    checks its own.
    """
    stream = await connect(addr)
    async with stream:
        unpacker = msgpack.Unpacker(raw=False)
        feed = unpacker.feed
        receive_some = stream.receive_some
        perf = time.perf_counter_ns
        start = perf()
        await stream.send_all(msgpack.packb({'stream': n, 'size': size}, use_bin_type=True))
        got = 0
        while got < n:
            data = await receive_some(READ_SIZE)
            if not data:
                raise RuntimeError(f'baseline server closed the stream after {got} of {n} values')
            feed(data)
            if size:
                for value in unpacker:
                    if len(value) != size:
                        raise RuntimeError(f'baseline stream: value {got} has {len(value)} bytes')
                    got += 1
            else:
                for value in unpacker:
                    if value != got:
                        raise RuntimeError(f'baseline stream: expected {got}, '
                                           f'got {reprlib.repr(value)}')
                    got += 1
        elapsed = (perf() - start) / 1e9
        if got != n:
            raise RuntimeError(f'baseline stream: expected {n} values, got {got}')
    return elapsed


if __name__ == '__main__':
    if sys.argv[1:] == ['--serve']:
        serve_main()
    elif len(sys.argv) == 4 and sys.argv[1:3] == ['--serve', '--uds']:
        serve_main(sys.argv[3])
    else:
        sys.exit(f'usage: {sys.argv[0]} --serve [--uds PATH]  (started by bench/run.py)')
