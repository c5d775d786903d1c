"""CPU-bound work across one actor per core, results printed as they come.

Run: python examples/parallel_primes.py [LIMIT]
"""
import math
import os
import sys

import trio

import tractorish


async def count_primes(start: int, stop: int) -> int:
    found = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, math.isqrt(n) + 1)):
            found += 1
    return found


async def main(limit: int) -> None:
    workers = os.cpu_count() or 2
    step = limit // (workers * 4) or 1
    chunks = [(lo, min(lo + step, limit)) for lo in range(0, limit, step)]
    total = 0
    async with tractorish.open_nursery() as an:
        portals = [await an.start_actor(f'primes-{i}', enable_modules=[__name__])
                   for i in range(workers)]

        async def work(portal: tractorish.Portal, mine: list) -> None:
            nonlocal total
            for lo, hi in mine:
                found = await portal.run(count_primes, start=lo, stop=hi)
                total += found
                print(f'{portal.peer_uid[0]}: {found} primes in [{lo}, {hi})')

        async with trio.open_nursery() as nursery:
            for i, portal in enumerate(portals):
                nursery.start_soon(work, portal, chunks[i::workers])
        for portal in portals:
            await portal.cancel_actor()
    print(f'total: {total} primes below {limit}')


if __name__ == '__main__':
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
