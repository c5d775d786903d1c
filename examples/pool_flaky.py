"""A pool whose workers keep dying: crashes are contained, calls retried.

``flaky`` kills its own process (``os._exit``) on every 40th item, the
first time it sees that item. The pool replaces a dead worker under the
same name, and with ``retries`` a call whose worker died is sent again to
another worker. Delivery is then *at least once*: a crashed item's body
runs twice, so ``flaky`` keeps a marker file per item, which makes the
second run succeed.

Run: python examples/pool_flaky.py
"""
import os
import tempfile
from pathlib import Path

import trio

import tractorish

EVERY = 40
ITEMS = 300


async def flaky(i: int, marker_dir: str) -> int:
    """Return ``i * i``, but die the first time through every EVERY-th item."""
    if i % EVERY == EVERY - 1:
        try:  # O_EXCL: only the first run of item i creates its marker
            os.close(os.open(Path(marker_dir, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass  # the retry: the crash already happened
        else:
            os._exit(3)  # no cleanup, no error report: the process just ends
    await trio.sleep(0.001)
    return i * i


async def whoami() -> tuple:
    return tractorish.current_actor().name, os.getpid()


async def main() -> None:
    with tempfile.TemporaryDirectory() as markers:
        async with tractorish.open_actor_pool(3, enable_modules=[__name__], name='flaky',
                                              retries=3) as pool:
            print(f'workers: {pool.workers}')

            # without retries, a call whose worker dies raises ActorCrashed
            try:
                await pool.run(flaky, i=EVERY - 1, marker_dir=markers, retries=0)
            except tractorish.ActorCrashed as crash:
                print(f'ActorCrashed: worker {crash.name!r} (pid {crash.pid}) '
                      f'exited with status {crash.returncode}')

            # with retries, every item of a map gets its result, in order
            kwargs = ({'i': i, 'marker_dir': markers} for i in range(ITEMS))
            results = [r async for r in pool.starmap(flaky, kwargs)]
            print(f'all {ITEMS} results arrived, in order: '
                  f'{results == [i * i for i in range(ITEMS)]}')
            crashes = len(os.listdir(markers))  # one marker per crash
            print(f'crashes survived: {crashes} (1 reported as ActorCrashed, '
                  f'{crashes - 1} retried during the map)')

            # dead workers were replaced under the same names
            await pool.wait_ready()
            answers = await pool.cast(whoami, raise_errors=True)
            pids = {pid for _, pid in answers.values()}
            print(f'pool at full size: {pool.size} workers answer, '
                  f'{sorted(name for name, _ in answers.values())}, '
                  f'{len(pids)} distinct processes')


if __name__ == '__main__':
    trio.run(main)
