"""A REPL for an actor of another program, on this program's terminal.

This program (the root of a tree in debug mode, and its registry) starts a
second program, this same file run as ``separate_program.py worker``, which
has no terminal at all. The worker joins through discovery; this program
finds it and calls it, and the call crashes there. The worker's REPL
travels over the channel of the call to this program's terminal: its
prompt names it, ``c`` sends the error back as usual.

Run: python examples/debugging/separate_program.py
"""
import os
import signal
import subprocess
import sys

import trio

import tractorish


async def ratio(a: float, b: float) -> float:
    share = a / b
    return share


async def serve_worker() -> None:
    # the registry address and the secret come from the environment,
    # which the launching program passes on
    async with tractorish.open_root_actor('calc', enable_modules=[__name__],
                                          debug_mode=True):
        print('ready', flush=True)
        await trio.sleep_forever()


def worker_main() -> None:
    try:
        trio.run(serve_worker)
    except KeyboardInterrupt:  # SIGINT is how the launcher stops us
        pass


async def main() -> None:
    async with tractorish.open_root_actor('launcher', debug_mode=True):
        worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), 'worker'],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert worker.stdout is not None
            ready = await trio.to_thread.run_sync(worker.stdout.readline)
            if 'ready' not in ready:
                raise RuntimeError(f'the worker did not start: {ready!r}')
            async with tractorish.wait_for_actor('calc') as portal:
                print('3 / 4 =', await portal.run(ratio, a=3, b=4))
                try:
                    await portal.run(ratio, a=1, b=0)
                except tractorish.RemoteActorError as err:
                    print(f'the worker raised {err.boxed_type.__name__} '
                          f'from {err.src_uid[0]!r}')
        finally:
            worker.send_signal(signal.SIGINT)
            await trio.to_thread.run_sync(worker.wait)
            print('worker stopped, exit status', worker.returncode)


if __name__ == '__main__':
    if sys.argv[1:] == ['worker']:
        worker_main()
    else:
        trio.run(main)
