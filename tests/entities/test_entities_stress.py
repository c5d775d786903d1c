"""Workers SIGKILLed again and again while senders keep asking (half of
them through the cluster, half through a zero-hop client), with a store
and ``retry=True``: every message reaches its entity (at least
once: a retried one right after itself), in order, and none of the state
saved before a kill is lost. Minutes of load: run with ``pytest -m stress``."""
from __future__ import annotations

import os
import random
import signal

import pytest
import trio

import tractorish
from entity_funcs import Counter

pytestmark = pytest.mark.stress

SENDERS = 20
MESSAGES = 150
KILLS = 8


def collapse_repeats(items):
    out = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


async def test_senders_keep_their_order_and_lose_nothing_through_kills(tmp_path):
    store = str(tmp_path / 'stress.db')
    async with tractorish.open_entity_cluster(Counter, workers=4, name='stress', store=store,
                                              retry=True) as cluster, \
            tractorish.connect_entity_cluster('stress', retry=True,
                                              refresh_interval=0.2) as client:
        async def sender(n: int) -> None:
            via = cluster if n % 2 else client  # half of them through discovery
            for i in range(MESSAGES):
                await via.ask(f'sender-{n}', 'append', item=i, timeout=60)

        async def killer() -> None:
            rng = random.Random(7)
            for _ in range(KILLS):
                await trio.sleep(rng.uniform(0.2, 0.6))
                victim = rng.choice(cluster.workers)
                with trio.fail_after(30):  # (one that is up: each kill is a restart)
                    while victim not in cluster.members:
                        await trio.sleep(0.01)
                pid = cluster.worker_pid(victim)
                os.kill(pid, signal.SIGKILL)
                with trio.fail_after(30):
                    while cluster.worker_pid(victim) == pid:
                        await trio.sleep(0.01)

        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(killer)
                for n in range(SENDERS):
                    nursery.start_soon(sender, n)
        for n in range(SENDERS):
            items = await cluster.ask(f'sender-{n}', 'items_seen', timeout=60)
            assert collapse_repeats(items) == list(range(MESSAGES)), n
        assert tractorish.current_actor().stats()['restarts'] == KILLS
