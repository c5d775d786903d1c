"""A crash in a child stops it in a REPL on this terminal.

The child ``boom`` raises; with ``debug_mode=True`` it stops at the frame
that raised, before the error is sent anywhere, and pdb's prompt names it:
``(Pdb+) [boom]``. Look around (``p total``, ``ll``, ``up`` then
``p values``), then ``c``: the error goes on as it would without the
debugger, and the program ends with it (exit status 1).

Run: python examples/debugging/crash_in_child.py
"""
import trio

import tractorish


def check(total: int) -> None:
    if total > 10:
        raise ValueError(f'total {total} is too big')


async def add_up(values: list) -> int:
    total = 0
    for value in values:
        total += value
    check(total)
    return total


async def main() -> None:
    async with tractorish.open_nursery(debug_mode=True) as an:
        portal = await an.run_in_actor(add_up, name='boom', values=[4, 5, 6])
        print('result:', await portal.result())


if __name__ == '__main__':
    trio.run(main)
