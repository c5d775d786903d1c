"""Many actors started at once, on both backends."""
from __future__ import annotations

import pytest
import trio

import actor_funcs
import tractorish


async def start_many_and_call(n: int, start_method: str) -> None:
    async with tractorish.open_nursery(start_method=start_method) as an:
        portals = []

        async def start(i: int) -> None:
            portals.append(await an.start_actor(f'many-{i}', enable_modules=['actor_funcs']))

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(start, i)
        sums = []

        async def call(portal: tractorish.Portal, i: int) -> None:
            sums.append(await portal.run(actor_funcs.add, a=i, b=1))

        async with trio.open_nursery() as nursery:
            for i, portal in enumerate(portals):
                nursery.start_soon(call, portal, i)
        assert sorted(sums) == list(range(1, n + 1))
        assert len({p.channel.aid.pid for p in portals}) == n
        await an.cancel()


async def test_128_actors_started_at_once_from_the_forkserver():
    # the zygote's socket is written by one task at a time: with its small
    # datagram queue full, concurrent senders used to collide on the fd
    with trio.fail_after(90):
        await start_many_and_call(128, 'forkserver')


async def test_24_fresh_interpreters_started_at_once():
    with trio.fail_after(90):
        await start_many_and_call(24, 'trio')


@pytest.mark.stress
@pytest.mark.timeout(300)
@pytest.mark.parametrize('start_method', ['forkserver', 'trio'])
async def test_256_actors_started_at_once(start_method):
    with trio.fail_after(240):
        await start_many_and_call(256, start_method)
