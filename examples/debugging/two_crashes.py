"""Two children crash at once: their REPLs open one after the other.

``first`` and ``second`` both fail at about the same time. The root's
terminal is lent to one REPL at a time, in the order they asked; when the
first ends (``c``) the second opens. Both errors then reach the root, which
raises them together (exit status 1).

Run: python examples/debugging/two_crashes.py
"""
import trio

import tractorish


async def fail(label: str, delay: float) -> None:
    await trio.sleep(delay)
    reason = f'{label} gave up'
    raise RuntimeError(reason)


async def main() -> None:
    async with tractorish.open_nursery(debug_mode=True) as an:
        await an.run_in_actor(fail, name='first', label='first', delay=0.1)
        await an.run_in_actor(fail, name='second', label='second', delay=0.3)


if __name__ == '__main__':
    trio.run(main)
