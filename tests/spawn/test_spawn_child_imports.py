"""What a fresh actor imports before it answers: what serving needs, not
nurseries, spawning, pools or discovery's client (loaded on first use)."""
from __future__ import annotations

import sys

import tractorish

NOT_AT_START = ('tractorish.supervise', 'tractorish.spawn', 'tractorish.workers',
                'tractorish.discovery._client', 'tractorish.jobs', 'tractorish.entities')


async def tractorish_modules() -> list:
    return sorted(name for name in sys.modules if name.startswith('tractorish'))


async def find_actor_here() -> bool:
    from tractorish import find_actor  # loads discovery's client
    return callable(find_actor) and 'tractorish.discovery._client' in sys.modules


async def test_a_fresh_actor_answers_without_what_it_does_not_use():
    config = tractorish.RuntimeConfig(start_method='trio')
    async with tractorish.open_nursery(config=config) as an:
        portal = await an.start_actor('lean', enable_modules=[__name__])
        loaded = await portal.run(tractorish_modules)
        assert 'tractorish.runtime._actor' in loaded and 'tractorish.discovery._service' in loaded
        assert [name for name in loaded if name.startswith(NOT_AT_START)] == []
        assert await portal.run(find_actor_here)
        await portal.cancel_actor()
