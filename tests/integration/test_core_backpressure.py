"""A caller that sends calls and never reads their replies holds up only
itself: the actor stays small and answers its other peers at once, and
when that caller goes away, the actor drops its calls quickly."""
from __future__ import annotations

import time

import psutil
import pytest
import trio

import actor_funcs
import tractorish
from tractorish import msg
from tractorish.ipc import connect, load_secret

# generous bounds: they catch the stalls of seconds and the growth of
# hundreds of MiB this guards against, not a speed target
MAX_CALL_SECONDS = 1.0
MAX_GROWTH = 96 * 2**20


async def flood(addr, ns: str, func: str, kwargs: dict, seconds: float) -> int:
    """Connect as a peer, send calls for ``seconds`` without reading a reply;
    then drop the connection. Returns how many calls went out."""
    sent = 0
    async with connect(addr, uid=('flooder', 'f' * 32), secret=load_secret(),
                       info={'addrs': [], 'pid': 0}) as chan:
        with trio.move_on_after(seconds):
            while True:
                await chan.send(msg.cmd(ns, func, kwargs, ['flooder', 'f' * 32],
                                        f'c{sent}'))
                sent += 1
                if sent % 64 == 0:  # (a send with room does not yield)
                    await trio.sleep(0)
    return sent


async def timed_calls(portal: tractorish.Portal, n: int) -> list:
    times = []
    for i in range(n):
        start = time.perf_counter()
        with trio.fail_after(10):
            assert await portal.run(actor_funcs.add, a=i, b=1) == i + 1
        times.append(time.perf_counter() - start)
        await trio.sleep(0.02)
    return times


@pytest.mark.parametrize('func, kwargs', [
    ('blob_task', {'size': 8 * 1024}),
    ('fail_in_task', {'text': 'no reader for this error. '}),
], ids=['replies', 'error-replies'])
async def test_a_caller_that_never_reads_holds_up_only_itself(func, kwargs):
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('victim', enable_modules=['actor_funcs'])
        proc = psutil.Process(portal.channel.peer_info['pid'])
        before = proc.memory_full_info().uss
        addr = tuple(portal.channel.peer_info['addrs'][0])
        during: list = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood, addr, 'actor_funcs', func, kwargs, 3.0)
            await trio.sleep(1.0)  # the flood is on, its replies unread
            during = await timed_calls(portal, 20)
            grown = proc.memory_full_info().uss - before
        # the flooder has gone, leaving its calls blocked on a dead channel
        after = await timed_calls(portal, 20)
        assert max(during) < MAX_CALL_SECONDS, during
        assert max(after) < MAX_CALL_SECONDS, after
        assert grown < MAX_GROWTH, f'grew {grown / 2**20:.0f} MiB'
        await portal.cancel_actor()
