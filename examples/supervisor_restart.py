"""Supervisors restart what fails, by restart type and strategy, as OTP does.

1. one_for_one: a steady ``store`` actor and a transient job that fails
   twice, then succeeds. Only the job is restarted; the store keeps its
   process. The job hands its result to the store, found by name.
2. one_for_all: three actors; when one is killed, the others are stopped
   (last started first) and all three are started again.
3. Restart intensity: a child that dies more often than ``max_restarts``
   within ``within`` seconds makes the supervisor give up with
   ``SupervisorError``.

Run: python examples/supervisor_restart.py
"""
import os
import signal
import tempfile
from pathlib import Path

import trio

import tractorish

_stored: dict = {}


async def put(key: str, value: int) -> None:
    _stored[key] = value


async def get(key: str) -> int:
    return _stored[key]


async def getpid() -> int:
    return os.getpid()


async def job(attempts_dir: str) -> int:
    """Fail on the first two runs (each run leaves a file), then succeed."""
    attempt = len(os.listdir(attempts_dir)) + 1
    Path(attempts_dir, str(attempt)).touch()
    if attempt <= 2:
        raise RuntimeError(f'attempt {attempt} failed')
    result = sum(i * i for i in range(1000))
    # a supervised job's return value goes nowhere: report it to the store
    async with tractorish.wait_for_actor('store') as store:
        await store.run(put, key='job', value=result)
    return result


async def crash() -> None:
    os._exit(7)


async def one_for_one() -> None:
    print('--- one_for_one')
    job_done = trio.Event()

    def on_exit(spec, error) -> None:
        if error is None:
            print(f'{spec.name} ended normally')
            if spec.name == 'job':
                job_done.set()
        else:  # a function's exception comes as RemoteActorError
            print(f'{spec.name} failed ({getattr(error, "message", error)}), '
                  f'restart #{spec.restarts + 1}')

    with tempfile.TemporaryDirectory() as attempts_dir:
        async with tractorish.open_supervisor('one_for_one', max_restarts=3,
                                              within=10) as sup:
            sup.on_exit.append(on_exit)
            store = await sup.start_actor('store', enable_modules=[__name__])
            store_pid = await store.run(getpid)
            await sup.run_in_actor(job, name='job', restart='transient',
                                   attempts_dir=attempts_dir)
            with trio.fail_after(30):
                await job_done.wait()
            store = await sup.portal('store')
            print(f'job ran {len(os.listdir(attempts_dir))} times; '
                  f'final result: {await store.run(get, key="job")}')
            print(f'store was not restarted: {await store.run(getpid) == store_pid}')
            print(f'still supervised: {sup.children}')


async def one_for_all() -> None:
    print('--- one_for_all')
    exits = []
    all_down = trio.Event()

    def on_exit(spec, error) -> None:
        exits.append(spec.name)
        if len(exits) == 3:
            all_down.set()

    async with tractorish.open_supervisor('one_for_all', max_restarts=3, within=10) as sup:
        sup.on_exit.append(on_exit)
        for name in ('a', 'b', 'c'):
            await sup.start_actor(name, enable_modules=[__name__])
        before = {name: await (await sup.portal(name)).run(getpid) for name in sup.children}
        os.kill(before['b'], signal.SIGKILL)
        with trio.fail_after(30):
            await all_down.wait()
            await sup.wait_ready()
        after = {name: await (await sup.portal(name)).run(getpid) for name in sup.children}
        print(f'b was killed; then stopped: {", ".join(exits[1:])} (last started first)')
        restarted = [name for name in sup.children if before[name] != after[name]]
        print(f'restarted: {", ".join(restarted)}')


async def intensity() -> None:
    print('--- restart intensity')
    try:
        async with tractorish.open_supervisor(max_restarts=2, within=10) as sup:
            await sup.run_in_actor(crash, name='crasher', restart='permanent')
            await trio.sleep_forever()
    except tractorish.SupervisorError as err:
        print(f'SupervisorError: {err}')
        codes = [f'{type(f).__name__}: exit {getattr(f, "returncode", "?")}'
                 for f in err.failures]
        print(f'failures: {codes}')


async def main() -> None:
    async with tractorish.open_root_actor():
        await one_for_one()
        await one_for_all()
        await intensity()


if __name__ == '__main__':
    trio.run(main)
