"""The demo: count primes in parallel across one actor per core.

Run with ``python -m tractorish demo``. The root splits the range into
chunks; one worker task per actor pulls chunks and streams each one from
its actor, which reports its progress through the chunk as it goes and its
count at the end; the terminal shows both as they arrive. A failed write
(``tractorish demo | head``) ends the demo like any other error in a task:
every actor is cancelled and reaped; the command then exits quietly.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import List, Optional, TextIO, Tuple

import trio

import tractorish


def _is_prime(n: int) -> bool:
    if n < 4:
        return n >= 2
    if n % 2 == 0:
        return False
    for d in range(3, math.isqrt(n) + 1, 2):
        if n % d == 0:
            return False
    return True


async def count_primes_streaming(start: int, stop: int, reports: int = 4):
    """Yield ``['progress', percent]`` a few times, then ``['done', count]``."""
    count = 0
    step = max(1, (stop - start) // reports)
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        count += sum(1 for n in range(lo, hi) if _is_prime(n))
        if hi < stop:
            yield ['progress', round(100 * (hi - start) / (stop - start))]
    yield ['done', count]


async def whoami() -> str:
    return f'{tractorish.current_actor().name} (pid {os.getpid()})'


def split(limit: int, chunks: int) -> List[Tuple[int, int]]:
    step = max(1, limit // chunks)
    return [(lo, min(lo + step, limit)) for lo in range(0, limit, step)]


async def run_demo(workers: int, limit: int, chunks: int,
                   out: Optional[TextIO] = None) -> int:
    """Count the primes below ``limit``; return the count.

    Prints to ``out`` (default: standard output). Every number must be at
    least 1, else ``ValueError``.
    """
    if min(workers, limit, chunks) < 1:
        raise ValueError(f'workers, limit and chunks must be at least 1, '
                         f'not {workers}, {limit}, {chunks}')
    out = out or sys.stdout
    todo = split(limit, chunks)
    send, receive = trio.open_memory_channel(len(todo))
    for chunk in todo:
        send.send_nowait(chunk)
    send.close()
    total = 0
    done = 0
    started = time.perf_counter()

    async def worker(portal: tractorish.Portal, name: str) -> None:
        nonlocal total, done
        async for lo, hi in receive.clone():
            async with portal.open_stream_from(count_primes_streaming,
                                               start=lo, stop=hi) as stream:
                async for kind, value in stream:
                    if kind == 'progress':
                        print(f'        {name}: [{lo:,}, {hi:,}) {value}% done',
                              file=out, flush=True)
            total += value
            done += 1
            print(f'  [{done:>3}/{len(todo)}] {name}: {value:>6} primes in '
                  f'[{lo:,}, {hi:,})', file=out, flush=True)

    async with tractorish.open_nursery() as an:
        portals = []
        for i in range(workers):
            portal = await an.start_actor(f'primes-{i}', enable_modules=[__name__])
            print(f'started {await portal.run(whoami)}', file=out, flush=True)
            portals.append(portal)
        async with trio.open_nursery() as nursery:
            for i, portal in enumerate(portals):
                nursery.start_soon(worker, portal, f'primes-{i}')
        receive.close()
        for portal in portals:
            await portal.cancel_actor()
    elapsed = time.perf_counter() - started
    print(f'{total} primes below {limit:,}, counted by {workers} actors '
          f'in {elapsed:.2f}s', file=out, flush=True)
    return total
