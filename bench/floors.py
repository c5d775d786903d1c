"""Floors for spawning: the least a process start can cost here, without tractorish.

Two floors, each measured in the benchmark process against a loopback TCP
listener of its own (:class:`ByteListener`):

* the *process start floor*: ``python -c "import trio, msgpack, socket;
  <connect to the listener, send one byte>"`` started with
  ``subprocess.Popen``, as the ``trio`` backend starts ``python -m
  tractorish._child`` (a new session, the same environment). Timed from
  the ``Popen`` call to the byte's arrival (*start*), and on to the
  process's exit, reaped (*total*).
* the *fork floor*: a helper process (``python bench/floors.py
  --fork-helper``) that has imported trio and msgpack, as the forkserver's
  zygote has, forks one child per request read on its stdin; the child
  connects back, sends one byte and exits; the helper reaps it and reports
  the exit on its stdout. Timed from writing the request to the byte's
  arrival (*start*), and on to the exit report (*total*).

The helper exits when its stdin reaches EOF (the benchmark closed it, or
died), killing and reaping any child it still has. Nothing here asserts on
timings.
"""
from __future__ import annotations

import gc
import os
import select
import signal
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple

import trio

from baseline import stop_helper  # the bench directory is on sys.path

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # trio's own dependency there

HOST = '127.0.0.1'
STOP_TIMEOUT = 2.0  # s; bounds cleanup only

PROCESS_FLOOR_CODE = (
    'import trio, msgpack, socket, sys\n'
    's = socket.create_connection((%r, int(sys.argv[1])))\n'
    "s.sendall(b'x')\n"
    's.close()\n' % HOST)


# --- the fork helper (runs in its own process) --------------------------------

def _fork_helper() -> None:
    """Fork one child per line (a port) read on stdin; report forks and exits."""
    import msgpack  # noqa: F401  -- what the zygote has imported too (and trio)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns the teardown
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    gc.collect()
    gc.freeze()
    out = sys.stdout.buffer
    children: 'set[int]' = set()
    buf = b''

    def say(line: str) -> None:
        out.write(line.encode() + b'\n')
        out.flush()

    say('ready')
    while True:
        readable, _, _ = select.select([0, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            children.discard(pid)
            say(f'exited {pid} {os.waitstatus_to_exitcode(status)}')
        if 0 not in readable:
            continue
        data = os.read(0, 4096)
        if not data:  # the benchmark is done (or gone): so are our children
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in children:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            return
        buf += data
        *lines, buf = buf.split(b'\n')
        for line in lines:
            port = int(line)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    sock = socket.create_connection((HOST, port))
                    sock.sendall(b'x')
                    sock.close()
                    code = 0
                finally:
                    os._exit(code)
            children.add(pid)
            say(f'forked {pid}')


# --- the benchmark's side -----------------------------------------------------

class ByteListener:
    """A loopback TCP listener; each connection's first byte is an arrival.

    :meth:`arrivals` waits for ``n`` of them and returns the time
    (``perf_counter``) of the last.
    """

    def __init__(self) -> None:
        self.port = 0
        self._send, self._receive = trio.open_memory_channel[float](1000)

    async def serve(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        self.port = listeners[0].socket.getsockname()[1]

        async def one(stream: trio.SocketStream) -> None:
            async with stream:
                try:
                    data = await stream.receive_some(1)
                except trio.BrokenResourceError:
                    return
                if data:
                    self._send.send_nowait(time.perf_counter())

        await trio.serve_listeners(one, listeners, task_status=task_status)

    async def arrivals(self, n: int) -> float:
        last = 0.0
        for _ in range(n):
            last = await self._receive.receive()
        return last


@contextmanager
def _single_errors() -> Iterator[None]:
    """Raise a lone error out of a nursery as itself, not in a group."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0],
                                                         BaseExceptionGroup):
            raise group.exceptions[0] from None
        raise


@asynccontextmanager
async def byte_listener() -> AsyncIterator[ByteListener]:
    listener = ByteListener()
    with _single_errors():
        async with trio.open_nursery() as nursery:
            await nursery.start(listener.serve)
            yield listener
            nursery.cancel_scope.cancel()


async def _both(first: Callable[[], Awaitable[Any]],
                second: Callable[[], Awaitable[Any]]) -> Tuple[Any, Any]:
    """Run both at once; return both results. An error in either cancels the other.

    Waiting for a child's byte and for its exit together means that a child
    that dies without sending its byte raises here instead of hanging.
    """
    results: List[Any] = [None, None]

    async def run(i: int, fn: Callable[[], Awaitable[Any]]) -> None:
        results[i] = await fn()

    with _single_errors():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, 0, first)
            nursery.start_soon(run, 1, second)
    return results[0], results[1]


async def wait_popen(proc: subprocess.Popen) -> int:
    """Wait for a ``Popen`` child to exit without blocking trio; reap it."""
    pidfd: Optional[int] = None
    if hasattr(os, 'pidfd_open'):
        try:
            pidfd = os.pidfd_open(proc.pid)
        except OSError:
            pidfd = None
    try:
        while proc.poll() is None:
            if pidfd is not None:
                await trio.lowlevel.wait_readable(pidfd)
            else:
                await trio.sleep(0.001)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return proc.returncode


async def _reap_popens(procs: List[subprocess.Popen]) -> None:
    """Kill whichever is still running and reap all; shielded, bounded."""
    with trio.CancelScope(shield=True):
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            with trio.move_on_after(STOP_TIMEOUT):
                await wait_popen(proc)


def _start_floor_process(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-c', PROCESS_FLOOR_CODE, str(port)],
                            stdin=subprocess.DEVNULL, close_fds=True,
                            start_new_session=True)


async def _exits_ok(procs: List[subprocess.Popen]) -> float:
    """Wait for every process to exit; raise if one failed; the time of the last."""
    for proc in procs:
        code = await wait_popen(proc)
        if code != 0:
            raise RuntimeError(f'a process floor child exited with code {code}')
    return time.perf_counter()


async def process_floor_once(listener: ByteListener) -> Dict[str, float]:
    """One process start floor: ms from ``Popen`` to the byte, and to the reaped exit."""
    procs: List[subprocess.Popen] = []
    try:
        t0 = time.perf_counter()
        procs.append(_start_floor_process(listener.port))
        t_byte, t_exit = await _both(lambda: listener.arrivals(1), lambda: _exits_ok(procs))
    finally:
        await _reap_popens(procs)
    return {'start_ms': (t_byte - t0) * 1e3, 'total_ms': (t_exit - t0) * 1e3}


async def process_floor_concurrent(listener: ByteListener, n: int) -> float:
    """``n`` floor processes started back to back: ms until all ``n`` bytes arrived."""
    procs: List[subprocess.Popen] = []
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            procs.append(_start_floor_process(listener.port))
        t_last, _ = await _both(lambda: listener.arrivals(n), lambda: _exits_ok(procs))
    finally:
        await _reap_popens(procs)
    return (t_last - t0) * 1e3


class ForkHelper:
    """The client of one fork helper process (see :func:`fork_helper`)."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self._buf = b''

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        while b'\n' not in self._buf:
            chunk = await self.proc.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError('the fork helper exited unexpectedly')
            self._buf += chunk
        line, self._buf = self._buf.split(b'\n', 1)
        return line.decode()

    async def _exits_ok(self, n: int) -> float:
        """Read the helper's reports until ``n`` exits; raise if one failed."""
        exits = 0
        while exits < n:
            word, *rest = (await self._line()).split()
            if word == 'exited':
                if int(rest[1]) != 0:
                    raise RuntimeError(f'a fork floor child exited with code {rest[1]}')
                exits += 1
        return time.perf_counter()

    async def _request(self, port: int, n: int) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(f'{port}\n'.encode() * n)

    async def once(self, listener: ByteListener) -> Dict[str, float]:
        """One fork floor: ms from the request to the byte, and to the exit report."""
        t0 = time.perf_counter()
        await self._request(listener.port, 1)
        t_byte, t_exit = await _both(lambda: listener.arrivals(1), lambda: self._exits_ok(1))
        return {'start_ms': (t_byte - t0) * 1e3, 'total_ms': (t_exit - t0) * 1e3}

    async def concurrent(self, listener: ByteListener, n: int) -> float:
        """``n`` forks asked for at once: ms until all ``n`` bytes arrived."""
        t0 = time.perf_counter()
        await self._request(listener.port, n)
        t_last, _ = await _both(lambda: listener.arrivals(n), lambda: self._exits_ok(n))
        return (t_last - t0) * 1e3


@asynccontextmanager
async def fork_helper() -> AsyncIterator[ForkHelper]:
    """Start the fork helper; yield its client; always reap it (shielded)."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, os.path.abspath(__file__), '--fork-helper'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    try:
        helper = ForkHelper(proc)
        with trio.fail_after(30):  # a startup bound, not a timed measurement
            if await helper._line() != 'ready':
                raise RuntimeError('the fork helper did not start')
        yield helper
    finally:
        await stop_helper(proc)


if __name__ == '__main__':
    if sys.argv[1:] == ['--fork-helper']:
        _fork_helper()
    else:
        sys.exit(f'usage: {sys.argv[0]} --fork-helper  (started by bench/run.py)')
