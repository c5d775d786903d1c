"""No orphans: killing or interrupting a root leaves no descendant alive."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).parent


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start_tree(tmp_path: Path, depth: int):
    pidfile = tmp_path / 'pids'
    proc = subprocess.Popen(
        [sys.executable, str(HERE / 'tree_script.py'), str(pidfile), str(depth)],
        cwd=HERE)
    deadline = time.monotonic() + 30
    pids = []
    while time.monotonic() < deadline:
        if pidfile.exists():
            pids = [int(p) for p in pidfile.read_text().split()]
            if len(pids) == depth + 1:
                return proc, pids
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pytest.fail(f'the tree did not come up: pids={pids} rc={proc.returncode}')


def wait_all_dead(pids, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_root_leaves_no_descendant_alive(tmp_path, sig):
    proc, pids = start_tree(tmp_path, depth=3)
    assert pids[0] == proc.pid
    assert all(alive(p) for p in pids)
    os.kill(proc.pid, sig)
    proc.wait(timeout=15)
    left = wait_all_dead(pids, timeout=10)
    assert not left, f'alive 10 s after {sig.name} to the root: {left}'
    if sig == signal.SIGINT:
        # Ctrl-C is a clean, orderly teardown (KeyboardInterrupt in the root)
        assert proc.returncode != 0


def test_killing_a_middle_actor_takes_its_subtree_down(tmp_path):
    proc, pids = start_tree(tmp_path, depth=3)
    try:
        os.kill(pids[2], signal.SIGKILL)  # level2: its children must go too
        left = wait_all_dead(pids[2:], timeout=10)
        assert not left
    finally:
        proc.kill()
        proc.wait()
        wait_all_dead(pids, timeout=10)
