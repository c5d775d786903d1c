"""The demo: count primes in parallel across one actor per core.

Run with ``python -m tractorish demo``. The root splits the range into
chunks; one worker task per actor pulls chunks and calls the actor; each
finished chunk is reported on the terminal as it arrives.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import List, Tuple

import trio

import tractorish


async def count_primes(start: int, stop: int) -> int:
    """How many primes lie in ``[start, stop)`` (deliberately CPU-bound)."""
    count = 0
    for n in range(max(start, 2), stop):
        if n < 4:
            count += 1
            continue
        if n % 2 == 0:
            continue
        for d in range(3, math.isqrt(n) + 1, 2):
            if n % d == 0:
                break
        else:
            count += 1
    return count


async def whoami() -> str:
    return f'{tractorish.current_actor().name} (pid {os.getpid()})'


def split(limit: int, chunks: int) -> List[Tuple[int, int]]:
    step = max(1, limit // chunks)
    return [(lo, min(lo + step, limit)) for lo in range(0, limit, step)]


async def run_demo(workers: int, limit: int, chunks: int, out=sys.stdout) -> int:
    """Count the primes below ``limit``; return the count."""
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
            found = await portal.run(count_primes, start=lo, stop=hi)
            total += found
            done += 1
            print(f'  [{done:>3}/{len(todo)}] {name}: {found:>6} primes in '
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
