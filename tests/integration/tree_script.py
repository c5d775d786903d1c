"""A root program holding a 3-level actor tree, for the kill tests.

Usage: python tree_script.py PIDFILE DEPTH. Writes every pid of the tree to
PIDFILE (one per line, root first) and then waits forever.
"""
import os
import sys

import trio

import actor_funcs
import tractorish


async def main(pidfile: str, depth: int) -> None:
    with open(pidfile, 'a') as f:
        f.write(f'{os.getpid()}\n')
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('level-top', enable_modules=['actor_funcs'])
        await portal.run(actor_funcs.hold_tree, pidfile=pidfile, depth=depth - 1)


if __name__ == '__main__':
    trio.run(main, sys.argv[1], int(sys.argv[2]))
