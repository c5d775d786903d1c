"""One failing actor cancels its siblings; the error reaches the root.

Run: python examples/one_cancels_all.py
"""
import trio

import tractorish


async def steady_worker() -> None:
    await trio.sleep_forever()


async def flaky_worker() -> None:
    await trio.sleep(0.2)
    raise RuntimeError('flaky worker gave up')


async def main() -> None:
    try:
        async with tractorish.open_nursery() as an:
            for i in range(3):
                await an.run_in_actor(steady_worker, name=f'steady-{i}')
            await an.run_in_actor(flaky_worker)
    except tractorish.RemoteActorError as err:
        print(f'the tree was torn down because {err.src_uid[0]!r} raised '
              f'{err.type_str}: {err.message}')


if __name__ == '__main__':
    trio.run(main)
