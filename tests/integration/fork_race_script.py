"""Ctrl-C landing in the forkserver's reader right after a fork: no hang.

Run by test_forkserver.py. Exit 0 if trio.run ended with KeyboardInterrupt.
"""
import sys

import trio

import tractorish
from tractorish.spawn import _forkserver as fs

original = fs.Forkserver._handle


def handle(self, reply):
    original(self, reply)
    if 'forked' in reply:
        raise KeyboardInterrupt  # as a real Ctrl-C arriving here would


fs.Forkserver._handle = handle


async def main():
    config = tractorish.RuntimeConfig(start_method='forkserver')
    async with tractorish.open_nursery(config=config) as an:
        await an.start_actor('a')


if __name__ == '__main__':
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
    sys.exit(1)
