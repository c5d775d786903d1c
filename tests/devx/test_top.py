"""``tractorish top`` (rich on a terminal, plain text otherwise) and
``tractorish stats``, run as users run them, against a live tree."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import List, Tuple

import pytest
import trio

import tractorish

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / 'tests' / 'integration'))
import stats_funcs as sf  # noqa: E402

MODS = ['stats_funcs']
NO_RICH = ('import sys; sys.modules["rich"] = None; from tractorish._cli import main; '
           'sys.exit(main(sys.argv[1:]))')


def command(*args: str, code: str = '') -> List[str]:
    return [sys.executable, *(['-c', code] if code else ['-m', 'tractorish']), *args]


def env() -> dict:
    paths = [str(ROOT / 'tests' / 'integration'), os.environ.get('PYTHONPATH', '')]
    return {**os.environ, 'TERM': 'xterm-256color', 'COLUMNS': '220', 'LINES': '50',
            'PYTHONPATH': os.pathsep.join(p for p in paths if p)}


def run_in_terminal(args: List[str], timeout: float = 60) -> Tuple[str, int]:
    """Run ``args`` with a pseudo-terminal (220 columns) as its stdout and
    stderr; return all it wrote and its exit status."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 50, 220, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env=env(), cwd=ROOT, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)
    return b''.join(chunks).decode(errors='replace'), proc.returncode


def run_piped(args: List[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env(), cwd=ROOT,
                          timeout=timeout)


async def start_tree(an: tractorish.ActorNursery) -> None:
    for name in ('alpha', 'beta'):
        portal = await an.start_actor(name, enable_modules=MODS)
        for i in range(5):
            await portal.run(sf.echo, x=i)


def registry_of(reg_addr) -> str:
    return f'{reg_addr[0]}:{reg_addr[1]}'


async def test_top_draws_a_live_table_with_rich_on_a_terminal(reg_addr):
    pytest.importorskip('rich')
    async with tractorish.open_nursery(registry_addrs=[reg_addr]) as an:
        await start_tree(an)
        args = command('top', '--registry', registry_of(reg_addr), '-n', '2',
                       '--interval', '0.3')
        out, status = await trio.to_thread.run_sync(run_in_terminal, args)
        await an.cancel()
    assert status == 0, out
    assert '\x1b[' in out                      # drawn by rich, in place
    assert '━' in out and '┃' in out           # rich's table borders
    for word in ('alpha', 'beta', 'root', 'CALLS/S', 'RESTARTS', 'tractorish top'):
        assert word in out, out
    assert 'Traceback' not in out


async def test_top_without_rich_or_a_terminal_prints_plain_tables(reg_addr):
    async with tractorish.open_nursery(registry_addrs=[reg_addr]) as an:
        await start_tree(an)
        registry = registry_of(reg_addr)
        piped = await trio.to_thread.run_sync(run_piped, command(
            'top', '--registry', registry, '-n', '2', '--interval', '0.3'))
        no_rich, status = await trio.to_thread.run_sync(run_in_terminal, command(
            'top', '--registry', registry, '-n', '2', '--interval', '0.3', code=NO_RICH))
        await an.cancel()
    # not a terminal: frames one after the other, no escape sequences
    assert piped.returncode == 0, piped.stderr
    assert '\x1b' not in piped.stdout
    frames = piped.stdout.split('\n\n')
    assert len(frames) == 2
    for frame in frames:
        lines = frame.splitlines()
        assert lines[0].startswith(f'tractorish top: registry {registry}, 3 actors')
        assert lines[1].split()[:5] == ['NAME', 'PID', 'UPTIME', 'RSS', 'CALLS']
        names = {line.split()[0] for line in lines[2:]}
        assert names == {'root', 'alpha', 'beta'}
    second = {line.split()[0]: line.split() for line in frames[1].splitlines()[2:]}
    assert int(second['alpha'][4]) >= 5           # its 5 calls (and top's own)
    assert second['alpha'][5] != '-'             # a rate, from the first frame
    # a terminal without rich: plain tables, each frame clearing the screen
    assert status == 0, no_rich
    assert no_rich.count('\x1b[H\x1b[2J') == 2
    assert '━' not in no_rich and 'alpha' in no_rich and 'NAME' in no_rich


async def test_stats_prints_one_actors_counters(reg_addr):
    async with tractorish.open_nursery(registry_addrs=[reg_addr]) as an:
        await start_tree(an)
        registry = registry_of(reg_addr)
        as_json = await trio.to_thread.run_sync(run_piped, command(
            'stats', 'alpha', '--json', '--registry', registry))
        as_text = await trio.to_thread.run_sync(run_piped, command(
            'stats', 'beta', '--registry', registry))
        missing = await trio.to_thread.run_sync(run_piped, command(
            'stats', 'nobody', '--registry', registry))
        await an.cancel()
    assert as_json.returncode == 0, as_json.stderr
    stats = json.loads(as_json.stdout)
    assert stats['name'] == 'alpha' and stats['calls_served'] >= 6  # 5 echoes, the stats
    assert {'calls_failed', 'messages_in', 'bytes_out', 'rss', 'channels'} <= set(stats)
    assert as_text.returncode == 0, as_text.stderr
    assert as_text.stdout.startswith('actor beta [') and '\nchannels:\n' in as_text.stdout
    assert missing.returncode == 1
    assert "no actor named 'nobody'" in missing.stderr


def test_rows_show_rates_since_the_last_refresh_and_silent_actors():
    from tractorish.devx._top import COLUMNS, human_bytes, row_for
    entry = {'name': 'slow', 'uid': ['slow', 'u1'], 'pid': 42}
    silent = row_for(entry, None, None, 1.0)
    assert silent[:3] == ['slow', '42', '(no answer)'] and len(silent) == len(COLUMNS)
    base = dict(name='w', uid=['w', 'u2'], pid=7, uptime=3725, rss=3 * 1024 * 1024,
                calls_served=10, calls_failed=1, calls_in_flight=2, streams_open=0,
                contexts_open=1, messages_in=10, messages_out=20, bytes_in=1000,
                bytes_out=4096, credit_waits=3, restarts=4)
    later = {**base, 'calls_served': 30, 'messages_in': 30, 'messages_out': 60,
             'bytes_in': 3048, 'bytes_out': 8192}
    row = dict(zip(COLUMNS, row_for(entry, later, base, 2.0)))
    assert row['UPTIME'] == '1:02:05' and row['RSS'] == '3.0M'
    assert row['CALLS'] == '30' and row['CALLS/S'] == '10' and row['MSGS/S'] == '30'
    assert row['IN/S'] == '1.0K' and row['OUT/S'] == '2.0K'
    assert (row['FAILED'], row['RUNNING'], row['CTXS'], row['WAITS'], row['RESTARTS']) == \
        ('1', '2', '1', '3', '4')
    first = dict(zip(COLUMNS, row_for(entry, base, None, 0.0)))
    assert first['CALLS/S'] == first['IN/S'] == '-'
    restarted = dict(zip(COLUMNS, row_for(entry, {**later, 'uid': ['w', 'new']}, base, 2.0)))
    assert restarted['CALLS/S'] == '-'  # another incarnation: no rate across it
    assert human_bytes(None) == '-' and human_bytes(512) == '512'


def test_a_narrow_terminal_keeps_the_columns_that_matter_most():
    from tractorish.devx._top import COLUMNS, fitting_columns
    rows = [['alpha', '1234', '0:01', '22.1M', '10', '5', '0', '0', '0', '0', '9', '1K',
             '2K', '0', '0']]
    assert fitting_columns(rows, 300) == list(COLUMNS)
    narrow = fitting_columns(rows, 80)
    assert narrow[:2] == ['NAME', 'PID'] and 'CALLS/S' in narrow and 'RESTARTS' not in narrow
    assert sum(max(len(c), 5) + 3 for c in narrow) <= 80
    assert fitting_columns(rows, 5) == ['NAME']
    assert 'NAME' in fitting_columns([], 80)  # no actors yet
