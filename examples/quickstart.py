"""The first steps: start actors, call them, see their errors, cancel them.

Run: python examples/quickstart.py
"""
import trio

import tractorish


async def add(a: int, b: int) -> int:
    return a + b


async def fail(why: str) -> None:
    raise ValueError(why)


async def nap_forever() -> None:
    await trio.sleep_forever()


async def main() -> None:
    async with tractorish.open_nursery() as an:
        # a daemon actor serves calls until it is cancelled
        portal = await an.start_actor('worker', enable_modules=[__name__])
        print('1 + 2 =', await portal.run(add, a=1, b=2))

        # a remote exception comes back boxed, with its type and traceback
        try:
            await portal.run(fail, why='no reason')
        except tractorish.RemoteActorError as err:
            print(f'remote {err.boxed_type.__name__} from {err.src_uid[0]!r}: {err.message}')

        # cancelling the caller cancels the remote task; the actor goes on
        with trio.move_on_after(0.2):
            await portal.run(nap_forever)
        print('still serving:', await portal.run(add, a=20, b=22))
        await portal.cancel_actor()

        # a one-shot actor runs one function and ends
        one_shot = await an.run_in_actor(add, a=2, b=3)
        print('one-shot result:', await one_shot.result())


if __name__ == '__main__':
    trio.run(main)
