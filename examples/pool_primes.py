"""CPU-bound work on an actor pool, next to ProcessPoolExecutor and trio-parallel.

The same chunks of a prime count go through three process pools:

- a tractorish actor pool (``pool.starmap``; ``count_primes`` is a plain
  function, so each worker actor runs it in a thread of its own),
- :class:`concurrent.futures.ProcessPoolExecutor` (with the ``spawn``
  start method, so all three start fresh interpreters),
- ``trio_parallel.run_sync``, if trio-parallel is installed.

Each timing covers starting the workers, the work, and stopping them.

Run: python examples/pool_primes.py [LIMIT]
"""
import concurrent.futures
import math
import multiprocessing
import os
import sys
import time

import trio

import tractorish

try:
    import trio_parallel
except ImportError:  # an optional comparison
    trio_parallel = None


def count_primes(start: int, stop: int) -> int:
    """The primes in [start, stop), by trial division: pure CPU work."""
    found = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, math.isqrt(n) + 1)):
            found += 1
    return found


async def with_actor_pool(chunks: list, workers: int) -> int:
    async with tractorish.open_actor_pool(workers, enable_modules=[__name__],
                                          name='primes') as pool:
        kwargs = ({'start': lo, 'stop': hi} for lo, hi in chunks)
        return sum([n async for n in pool.starmap(count_primes, kwargs, ordered=False)])


def with_process_pool(chunks: list, workers: int) -> int:
    spawn = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=spawn) as executor:
        return sum(executor.map(count_primes, *zip(*chunks)))


async def with_trio_parallel(chunks: list, workers: int) -> int:
    total = 0
    limiter = trio.CapacityLimiter(workers)

    async def one(lo: int, hi: int) -> None:
        nonlocal total
        found = await trio_parallel.run_sync(count_primes, lo, hi, limiter=limiter)
        total += found

    async with trio_parallel.cache_scope():  # its workers end with the block
        async with trio.open_nursery() as nursery:
            for lo, hi in chunks:
                nursery.start_soon(one, lo, hi)
    return total


async def main(limit: int) -> None:
    workers = os.cpu_count() or 2
    step = limit // (workers * 8) or 1
    chunks = [(lo, min(lo + step, limit)) for lo in range(0, limit, step)]
    print(f'counting primes below {limit} in {len(chunks)} chunks on {workers} workers')
    totals = {}

    start = time.perf_counter()
    totals['tractorish actor pool'] = await with_actor_pool(chunks, workers)
    print(f'tractorish actor pool:   {time.perf_counter() - start:6.2f} s')

    start = time.perf_counter()
    totals['ProcessPoolExecutor'] = await trio.to_thread.run_sync(
        with_process_pool, chunks, workers)
    print(f'ProcessPoolExecutor:     {time.perf_counter() - start:6.2f} s')

    if trio_parallel is None:
        print('trio-parallel not installed, skipping that comparison')
    else:
        start = time.perf_counter()
        totals['trio_parallel.run_sync'] = await with_trio_parallel(chunks, workers)
        print(f'trio_parallel.run_sync:  {time.perf_counter() - start:6.2f} s')

    if len(set(totals.values())) == 1:
        print(f'all {len(totals)} totals agree: {totals.popitem()[1]} primes below {limit}')
    else:
        print(f'the totals differ: {totals}')
        sys.exit(1)


if __name__ == '__main__':
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)
