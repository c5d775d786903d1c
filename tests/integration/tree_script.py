"""A root program holding a 3-level actor tree, for the kill tests.

Usage: python tree_script.py PIDFILE DEPTH [forked]. Writes every pid of the
tree to PIDFILE (one per line, root first) and then waits forever. With
``forked``, every actor of the tree is forked by its parent's zygote
(forkserver backend).
"""
import os
import sys

import trio

import actor_funcs
import tractorish


async def main(pidfile: str, depth: int, forked: bool) -> None:
    with open(pidfile, 'a') as f:
        f.write(f'{os.getpid()}\n')
    async with tractorish.open_nursery() as an:
        if forked:
            portal = await actor_funcs.start_forked(an, 'level-top',
                                                    enable_modules=['actor_funcs'])
        else:
            portal = await an.start_actor('level-top', enable_modules=['actor_funcs'])
        await portal.run(actor_funcs.hold_tree, pidfile=pidfile, depth=depth - 1,
                         forked=forked)


if __name__ == '__main__':
    trio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3:] == ['forked'])
