"""``await tractorish.pause()`` in the root and in a child.

The root stops first, in its own task (its REPL is local); then the child
``counter`` stops in the middle of a loop, and ``c`` lets each go on.
Tab completes names as in pdb: try ``p cou`` then Tab.

Run: python examples/debugging/pause_in_root_and_child.py
"""
import trio

import tractorish


async def count_to(limit: int) -> int:
    count = 0
    for step in range(limit):
        count += step
        if step == 3:
            await tractorish.pause()  # stops here, in the actor 'counter'
    return count


async def main() -> None:
    async with tractorish.open_nursery(debug_mode=True) as an:
        limit = 5
        await tractorish.pause()  # stops here, in the root
        portal = await an.run_in_actor(count_to, name='counter', limit=limit)
        print('count:', await portal.result())


if __name__ == '__main__':
    trio.run(main)
