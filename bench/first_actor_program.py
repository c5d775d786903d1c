"""A fresh program's first actor, timed from the inside: run by first_actor.py.

Usage: python first_actor_program.py. The spawn backend, the registry and
the secret come from the environment. Prints one JSON line: ``first_ms``,
from calling ``trio.run(main)`` to the first ``portal.run`` answered (the
nursery opened, the actor started, the call made), and ``first_started_ms``
to the actor started; ``second_ms``, a second
actor asked for right after, started and called once; and how each
started (``fresh`` and ``forked`` counts). Imports no more than a user's
script would.
"""
import json
import time

import trio

import tractorish


async def answer(x: int) -> int:
    return x + 1


async def main(t0: float) -> dict:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('first', enable_modules=[__name__])
        t_started = time.perf_counter()
        if await portal.run(answer, x=1) != 2:
            raise RuntimeError('the first actor answered wrong')
        t1 = time.perf_counter()
        portal = await an.start_actor('second', enable_modules=[__name__])
        if await portal.run(answer, x=2) != 3:
            raise RuntimeError('the second actor answered wrong')
        t2 = time.perf_counter()
        from tractorish.spawn import spawn_statistics
        stats = spawn_statistics()
        await an.cancel()
    return {'first_ms': (t1 - t0) * 1e3, 'first_started_ms': (t_started - t0) * 1e3,
            'second_ms': (t2 - t1) * 1e3,
            'fresh': stats.fresh, 'forked': stats.forked}


if __name__ == '__main__':
    t0 = time.perf_counter()
    print(json.dumps(trio.run(main, t0)), flush=True)
