"""Errors in a tree: they reach the root, and no actor is left running.

``run_in_actor`` children gather, as tractor's do: each runs to its own
result and one's failure does not stop the others; once all of them have
finished, a failure cancels the daemon actors and is raised at the
nursery's exit. An error in the nursery's own block cancels every actor
at once.

Run: python examples/one_cancels_all.py
"""
import trio

import tractorish


async def steady_worker() -> None:
    await trio.sleep_forever()


async def slow_worker() -> str:
    await trio.sleep(0.5)
    return 'done'


async def flaky_worker() -> None:
    await trio.sleep(0.1)
    raise RuntimeError('flaky worker gave up')


async def main() -> None:
    try:
        async with tractorish.open_nursery() as an:
            for i in range(3):  # daemons: they serve until cancelled
                await an.start_actor(f'steady-{i}', enable_modules=[__name__])
            slow = await an.run_in_actor(slow_worker)
            await an.run_in_actor(flaky_worker)
            # the flaky worker has failed by now; the slow one runs on
            print('the slow worker finished all the same:', await slow.result())
    except tractorish.RemoteActorError as err:
        print(f'then the daemons were cancelled, and {err.src_uid[0]!r} raised '
              f'{err.type_str}: {err.message}')

    try:
        async with tractorish.open_nursery() as an:
            for i in range(3):
                await an.run_in_actor(steady_worker, name=f'steady-{i}')
            raise KeyError('the block itself failed')
    except KeyError as err:
        print(f'the block failed ({err}): every actor was cancelled at once')


if __name__ == '__main__':
    trio.run(main)
