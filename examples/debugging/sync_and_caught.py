"""``pause_from_sync()`` in a thread of an actor, and ``post_mortem()`` on
an error the code caught itself.

``worker`` runs a blocking function in a thread, which stops there with
``tractorish.pause_from_sync()``; then it catches a ``KeyError`` and opens
a post-mortem REPL on it before handling it. Both REPLs open on this
terminal, one after the other; the program ends normally.

Run: python examples/debugging/sync_and_caught.py
"""
import trio

import tractorish


def checksum(data: bytes) -> int:
    digest = sum(data) % 251
    tractorish.pause_from_sync()  # in a worker thread of the actor
    return digest


async def work() -> str:
    digest = await trio.to_thread.run_sync(checksum, b'tractorish')
    table = {'a': 1}
    try:
        table['missing']
    except KeyError:
        await tractorish.post_mortem()  # a look at the error, then handle it
    return f'digest {digest}, error handled'


async def main() -> None:
    async with tractorish.open_nursery(debug_mode=True) as an:
        portal = await an.run_in_actor(work, name='worker')
        print('result:', await portal.result())


if __name__ == '__main__':
    trio.run(main)
