"""The tree is cancelled while a child's REPL is open (for test_debugger).

The child ``boom`` crashes and stops in its REPL; once the file named by
the first argument exists (the test creates it when it sees the prompt),
the root gives up, which cancels the tree. Its timeouts are short: without
the debugger holding the teardown, ``boom`` would be killed within about
two seconds.
"""
import os
import sys

import trio

import tractorish


async def crunch(values: list) -> int:
    total = sum(values)
    raise ValueError(f'bad total {total}')


async def main(flag: str) -> None:
    config = tractorish.RuntimeConfig(cancel_timeout=0.5, grace_period=0.5, term_timeout=0.5)
    async with tractorish.open_nursery(debug_mode=True, config=config) as an:
        await an.start_actor('idle', enable_modules=[__name__])
        await an.run_in_actor(crunch, name='boom', values=[1, 2])
        while not os.path.exists(flag):
            await trio.sleep(0.05)
        raise RuntimeError('the root gives up')


if __name__ == '__main__':
    trio.run(main, sys.argv[1])
