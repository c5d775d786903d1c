"""The bare-socket baseline: msgpack over one trio TCP connection.

Two processes, as with tractorish: the benchmark starts this file as a plain
Python subprocess (``python bench/baseline.py --serve``). The server listens
on ``127.0.0.1`` port 0, writes ``PORT <n>`` on stdout, and exits when its
stdin reaches EOF (the parent closed it, or the parent died). The client
side (:func:`echo_server`, :func:`measure_round_trips` and
:func:`measure_stream`) runs in the benchmark process.

Each connection is one of two kinds, chosen by its first message:

* ``{'stream': n, 'size': s}``: the server sends ``n`` msgpack values as
  fast as it can, packing many into each ``send_all`` (batches of about
  ``STREAM_BATCH`` bytes): the ints ``0 .. n-1`` if ``s`` is 0, else ``n``
  byte strings of ``s`` bytes. It then waits for the client to close.
* anything else: the server echoes that message and every later one.

No framing beyond msgpack itself: the reader feeds whatever bytes arrive to
a ``msgpack.Unpacker`` and takes whole messages from it, as tractorish's own
decoder does.
"""
from __future__ import annotations

import os
import reprlib
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, List, Tuple

import msgpack
import trio

HOST = '127.0.0.1'
READ_SIZE = 64 * 1024
STREAM_BATCH = 64 * 1024
STOP_TIMEOUT = 2.0
_EOF = object()


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
    packb = msgpack.packb
    for msg in unpacker:  # already read along with the first message
        await stream.send_all(packb(msg, use_bin_type=True))
    async for data in stream:
        unpacker.feed(data)
        for msg in unpacker:
            await stream.send_all(packb(msg, use_bin_type=True))


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
        await stream.send_all(msgpack.packb(first, use_bin_type=True))
        await _echo(stream, unpacker)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _wait_stdin_eof() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        while await stdin.receive_some(4096):
            pass


async def _serve() -> None:
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    port = listeners[0].socket.getsockname()[1]
    sys.stdout.write(f'PORT {port}\n')
    sys.stdout.flush()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, _connection, listeners)
        await _wait_stdin_eof()
        nursery.cancel_scope.cancel()


def serve_main() -> None:
    # Ctrl-C goes to the whole process group; the parent owns the teardown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    trio.run(_serve)


# --- client (runs in the benchmark process) --------------------------------

@asynccontextmanager
async def echo_server() -> AsyncIterator[Tuple[int, trio.Process]]:
    """Start the server subprocess (echo and stream); yield ``(port, process)``.

    The process is always reaped on the way out: stdin is closed so it exits
    by itself, and if it has not within a moment it is killed. The cleanup
    is shielded, so it also runs on cancellation and Ctrl-C.
    """
    proc = await trio.lowlevel.open_process(
        [sys.executable, os.path.abspath(__file__), '--serve'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        port = await _read_port(proc)
        yield port, proc
    finally:
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


async def measure_round_trips(port: int, calls: int, warmup: int) -> Tuple[List[int], float]:
    """Sequential request/reply round trips to the echo server.

    Returns the per-call latencies in nanoseconds and the wall time of the
    measured calls in seconds.
    """
    stream = await trio.open_tcp_stream(HOST, port)
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


async def measure_stream(port: int, n: int, size: int = 0) -> float:
    """Receive one stream of ``n`` values from the server; its wall time in s.

    ``size`` 0 asks for the ints ``0 .. n-1``, else for ``n`` byte strings
    of ``size`` bytes. The connection is made first, untimed; the clock runs
    from sending the request to decoding the last value, and every value is
    checked (the int's value, the payload's length), as the tractorish side
    checks its own.
    """
    stream = await trio.open_tcp_stream(HOST, port)
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
    else:
        sys.exit(f'usage: {sys.argv[0]} --serve  (started by bench/run.py)')
