"""A separate program: a root actor that registers under a name and serves.

Usage: python worker_program.py NAME   (registry from $TRACTORISH_REGISTRY)
"""
import sys

import trio

import tractorish


async def main(name: str) -> None:
    config = tractorish.RuntimeConfig(discovery='client' if name == '-' else 'auto')
    async with tractorish.open_root_actor(name, enable_modules=['actor_funcs', 'stream_funcs'],
                                          config=config):
        print('ready', flush=True)
        await trio.sleep_forever()


if __name__ == '__main__':
    try:
        trio.run(main, sys.argv[1])
    except KeyboardInterrupt:
        pass
