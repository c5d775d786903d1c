"""A ``breakpoint()`` two levels down opens its REPL on this terminal.

The root starts ``middle``, which starts ``leaf``; ``leaf`` calls the
built-in ``breakpoint()`` in the middle of its work. Its input and output
travel over its channel to ``middle``, which relays them to the root. Step
with ``n``, look with ``p``, go on with ``c``: the tree finishes its work.

Run: python examples/debugging/breakpoint_in_grandchild.py
"""
import trio

import tractorish


async def scale(values: list, factor: int) -> list:
    scaled = [v * factor for v in values]
    breakpoint()  # the REPL opens here, in the actor 'leaf'
    total = sum(scaled)
    return [*scaled, total]


async def delegate(values: list) -> list:
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(scale, name='leaf', values=values, factor=10)
        return await portal.result()


async def main() -> None:
    async with tractorish.open_nursery(debug_mode=True) as an:
        portal = await an.run_in_actor(delegate, name='middle', values=[1, 2, 3])
        print('result:', await portal.result())


if __name__ == '__main__':
    trio.run(main)
