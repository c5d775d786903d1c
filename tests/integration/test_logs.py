"""What a user sees with ``loglevel='debug'``: spawns, calls, cancels and
teardown, each line naming its actor; and each actor's process title."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import stats_funcs as sf
import tractorish

HERE = Path(__file__).resolve().parent
LINE = re.compile(r'^\S+ \S+ (?P<level>[A-Z]+) \[(?P<actor>[\w-]+):(?P<pid>\d+)\] '
                  r'(?P<logger>[\w.]+): (?P<text>.*)$')


def test_a_debug_log_shows_spawns_calls_cancels_and_teardown(spawn_backend):
    proc = subprocess.run([sys.executable, str(HERE / 'log_script.py')], cwd=HERE,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    records = [m.groupdict() for m in map(LINE.match, proc.stderr.splitlines()) if m]
    assert len(records) == len(proc.stderr.splitlines()), proc.stderr  # every line tagged

    def seen(actor, pattern, level=None):
        return any(r['actor'] == actor and re.search(pattern, r['text'])
                   and (level is None or r['level'] == level) for r in records)

    pids = {r['actor']: r['pid'] for r in records}
    assert set(pids) == {'root', 'alpha', 'beta', 'leaf'}
    assert len(set(pids.values())) == 4
    # spawns, by the parent and by the child
    assert seen('root', rf"spawning actor 'alpha' \({spawn_backend} backend\)", 'INFO')
    assert seen('root', rf"actor 'alpha' started \(pid {pids['alpha']}\)", 'INFO')
    assert seen('alpha', r"spawning actor 'leaf'", 'INFO')
    assert seen('leaf', r"up \(pid \d+\): listening on .*; child of 'alpha'", 'INFO')
    # calls, where they are served
    assert seen('alpha', r"call \w+ __main__\.middle from 'root'", 'DEBUG')
    assert seen('leaf', r"call \w+ __main__\.leaf from 'alpha'", 'DEBUG')
    assert seen('beta', r"call \w+ __main__\.leaf from 'root'", 'DEBUG')
    # cancels, asked and taken
    assert seen('alpha', r"asking actor 'leaf' to cancel", 'INFO')
    assert seen('leaf', r"cancel requested by 'alpha'", 'INFO')
    assert seen('beta', r"cancel requested by 'root'", 'INFO')
    # teardown, each side
    for actor in ('alpha', 'beta', 'leaf', 'root'):
        assert seen(actor, r'shutting down: cancelling \d+ remote task', 'INFO')
        assert seen(actor, r'runtime shut down', 'DEBUG')
    assert seen('root', rf"actor 'beta' \(pid {pids['beta']}\) exited with code 0", 'INFO')
    assert seen('alpha', r"actor 'leaf' \(pid \d+\) exited with code 0", 'INFO')


async def test_each_actor_is_named_in_its_process_title(spawn_backend):
    pytest.importorskip('setproctitle')
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('titled', enable_modules=['stats_funcs'])
        pid = await portal.run(sf.getpid)
        title = ' '.join(psutil.Process(pid).cmdline())
        assert title.startswith(f'tractorish: titled [{portal.peer_uid[1][:8]}]'), title
        await portal.cancel_actor()
    assert 'tractorish:' not in ' '.join(psutil.Process().cmdline())  # the root keeps its own
