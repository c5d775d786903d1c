"""An asyncio program fans work out to actors with ``asyncio.gather``.

The program is asyncio through and through (think of a request handler in
an aiohttp or FastAPI server); ``tractorish.asyncio.open_nursery`` runs the
actor runtime as trio's guest inside its loop. The actors themselves run
trio, as every actor does.

Run: python examples/asyncio_fanout.py
"""
import asyncio
import math

import trio

import tractorish
import tractorish.asyncio


async def count_primes(start: int, stop: int) -> int:
    """Runs in an actor (under trio, like any actor's function)."""
    found = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, math.isqrt(n) + 1)):
            found += 1
    return found


async def slow_answer() -> int:
    await trio.sleep(60)
    return 42


async def main(limit: int = 100_000, workers: int = 3) -> None:
    step = -(-limit // (workers * 4))  # four chunks per actor
    chunks = [(lo, min(lo + step, limit)) for lo in range(0, limit, step)]
    async with tractorish.asyncio.open_nursery() as an:
        portals = await asyncio.gather(*(
            an.start_actor(f'primes-{i}', enable_modules=[__name__])
            for i in range(workers)))
        counts = await asyncio.gather(*(
            portals[i % workers].run(count_primes, start=lo, stop=hi)
            for i, (lo, hi) in enumerate(chunks)))
        names = {portal.peer_uid[0] for portal in portals}
        print(f'asyncio fan-out: {sum(counts)} primes below {limit}, '
              f'{len(chunks)} chunks on {len(names)} actors')

        # a remote error is raised here, in asyncio, as RemoteActorError
        try:
            await portals[0].run(count_primes, start=0, stop='ten')
        except tractorish.RemoteActorError as err:
            print(f'remote {err.type_str} from {err.src_uid[0]!r}')

        # an asyncio timeout cancels the remote call; the actor serves on
        try:
            await asyncio.wait_for(portals[1].run(slow_answer), timeout=0.2)
        except asyncio.TimeoutError:
            print('gave up on slow_answer after 0.2 s; still serving:',
                  await portals[1].run(count_primes, start=0, stop=10), 'primes below 10')

        # daemon actors end when asked, as in trio
        await asyncio.gather(*(portal.cancel_actor() for portal in portals))
    print(f'block exited; actors left: {len(an.children)}')


if __name__ == '__main__':   # children load this module by path: guard the run
    asyncio.run(main())
