"""Ctrl-C landing in the zygote client's reader right after a fork: no hang.

Run by test_forkserver.py. Exit 0 if trio.run ended with KeyboardInterrupt.
"""
import sys

import trio

import tractorish
from tractorish.spawn import _zygote_client, spawn_statistics

original = _zygote_client.ZygoteClient._handle


def handle(self, kind, reply):
    original(self, kind, reply)
    if kind == 'forked':
        raise KeyboardInterrupt  # as a real Ctrl-C arriving here would


_zygote_client.ZygoteClient._handle = handle


async def main():
    config = tractorish.RuntimeConfig(start_method='forkserver')
    async with tractorish.open_nursery(config=config) as an:
        # the first actor starts fresh while the zygote starts; the next is forked
        await an.start_actor('fresh')
        with trio.fail_after(30):
            while not spawn_statistics().zygote_ready:
                await trio.sleep(0.01)
        await an.start_actor('forked')


if __name__ == '__main__':
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
    sys.exit(1)
