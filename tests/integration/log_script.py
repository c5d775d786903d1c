"""Run by test_logs.py: four actors (root, alpha, beta, and alpha's child
leaf) with loglevel='debug'; the log goes to stderr."""
import trio

import tractorish


async def leaf(x: int) -> int:
    await trio.sleep(0)
    return x + 1


async def middle(x: int) -> int:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('leaf', enable_modules=[__name__])
        value = await portal.run(leaf, x=x)
        await portal.cancel_actor()
    return value


async def main() -> None:
    async with tractorish.open_nursery(loglevel='debug') as an:
        alpha = await an.start_actor('alpha', enable_modules=[__name__])
        beta = await an.start_actor('beta', enable_modules=[__name__])
        assert await alpha.run(middle, x=1) == 2
        assert await beta.run(leaf, x=5) == 6
        await alpha.cancel_actor()
        await an.cancel()  # beta


if __name__ == '__main__':
    trio.run(main)
