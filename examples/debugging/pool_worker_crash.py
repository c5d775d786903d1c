"""A crash in a pool worker stops that worker in a REPL.

A pool of two workers squares numbers; one input is bad. The worker that
gets it stops at the frame that raised, its prompt naming it
(``(Pdb+) [squares-0]`` or ``[squares-1]``). After ``c`` the error reaches
the caller as a ``RemoteActorError``, the pool serves on, and the program
ends normally.

Run: python examples/debugging/pool_worker_crash.py
"""
import trio

import tractorish


async def square(x: object) -> int:
    if not isinstance(x, int):
        bad = x
        raise TypeError(f'cannot square {bad!r}')
    return x * x


async def main() -> None:
    async with tractorish.open_actor_pool(2, name='squares', enable_modules=[__name__],
                                          debug_mode=True) as pool:
        print('squares:', [await pool.run(square, x=x) for x in (2, 3)])
        try:
            await pool.run(square, x='four')
        except tractorish.RemoteActorError as err:
            print(f'the pool raised: {err.boxed_type.__name__} from {err.src_uid[0]!r}')
        print('still serving:', await pool.run(square, x=5))


if __name__ == '__main__':
    trio.run(main)
