"""Ctrl-C in a program whose actors are busy, and a program that forgot
its ``if __name__ == '__main__':`` guard: each says what is going on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent.parent


def start_program(tmp_path: Path, source: str) -> subprocess.Popen:
    script = tmp_path / 'program.py'
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'PYTHONUNBUFFERED': '1'}
    return subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_line(stream, needle: str, timeout: float) -> str:
    """Lines of ``stream`` up to the first holding ``needle``."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return ''.join(seen)
    raise AssertionError(f'{needle!r} not seen in:\n' + ''.join(seen))


BUSY_PROGRAM = '''
    import functools
    import os
    import sys
    import trio
    import tractorish

    async def spin(path: str) -> None:
        open(path, 'w').close()  # spinning from now on
        while True:  # CPU-bound: never reaches a checkpoint, never answers
            pass

    async def main():
        marks = [os.path.join(sys.argv[1], f'busy-{i}') for i in range(2)]
        async with tractorish.open_nursery() as an, trio.open_nursery() as tasks:
            for i, mark in enumerate(marks):
                portal = await an.start_actor(f'busy-{i}', enable_modules=[__name__])
                tasks.start_soon(functools.partial(portal.run, spin, path=mark))
            while not all(os.path.exists(m) for m in marks):
                await trio.sleep(0.01)
            print('ready', flush=True)
            await trio.sleep_forever()

    if __name__ == '__main__':
        trio.run(main)
'''


def test_a_second_ctrl_c_kills_busy_actors_at_once(tmp_path):
    proc = start_program(tmp_path, BUSY_PROGRAM)
    try:
        wait_for_line(proc.stdout, 'ready', 30)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        said = wait_for_line(proc.stderr, 'press Ctrl-C again', 10)
        assert 'waiting for 2 busy actor(s)' in said and 'busy-0' in said
        proc.send_signal(signal.SIGINT)
        # well before the graceful path's 3 s + 3 s + SIGTERM would end it
        proc.wait(timeout=4)
        rest = proc.stderr.read()
        assert 'killing 2 actor(s)' in rest
        assert 'KeyboardInterrupt' in rest
        gone = psutil.wait_procs(children, timeout=5)[1]
        assert not gone, gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_main_module_without_a_guard_is_named_as_the_cause(tmp_path):
    proc = start_program(tmp_path, '''
        import trio
        import tractorish

        async def hello() -> str:
            return 'hi'

        async def main():
            async with tractorish.open_nursery() as an:
                portal = await an.run_in_actor(hello)
                print(await portal.result())

        trio.run(main)  # no `if __name__ == '__main__':`
    ''')
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "if __name__ == '__main__':" in err, err
    assert 'Attempted to call run() from inside a run()' not in err.splitlines()[-1]
