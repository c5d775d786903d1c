"""A tree three levels deep: the root's child opens a nursery of its own.

Run: python examples/nested_tree.py
"""
import os

import trio

import tractorish


async def leaf_work(x: int) -> dict:
    return {'actor': tractorish.current_actor().name, 'pid': os.getpid(), 'square': x * x}


async def middle_manager(xs: list) -> list:
    """Runs in a child; starts grandchildren and gathers their results."""
    results = []
    async with tractorish.open_nursery() as an:
        portals = [await an.run_in_actor(leaf_work, name=f'leaf-{x}', x=x) for x in xs]
        for portal in portals:
            results.append(await portal.result())
    return results


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(middle_manager, name='manager', xs=[1, 2, 3])
        for result in await portal.result():
            print(f"{result['actor']} (pid {result['pid']}): {result['square']}")


if __name__ == '__main__':
    trio.run(main)
