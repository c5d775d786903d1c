"""Shared fixtures, including the process-leak guard.

Every test runs with its own secret, its own registry address and no access
to the user's secret file. The pytest process makes itself a child
subreaper, so an actor orphaned by a test is re-parented here, where the
leak guard finds it, kills it and fails the test.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Iterator, List

import psutil
import pytest

_PR_SET_CHILD_SUBREAPER = 36
ROOT = Path(__file__).resolve().parent.parent

if sys.platform.startswith('linux'):
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A per-test secret and registry; the user's secret file is never used."""
    monkeypatch.setenv('TRACTORISH_SECRET', secrets.token_hex(16))
    monkeypatch.setenv('TRACTORISH_SECRET_FILE', str(tmp_path / 'no-secret-file'))
    monkeypatch.setenv('TRACTORISH_REGISTRY', f'127.0.0.1:{free_port()}')
    yield


@pytest.fixture
def reg_addr() -> tuple:
    return ('127.0.0.1', free_port())


def _descendants() -> List[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _reap_zombies() -> None:
    for child in _descendants():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail any test that leaves a child process (or an orphan) alive."""
    before = {p.pid for p in _descendants()}
    yield
    deadline = time.monotonic() + 5.0
    while True:
        _reap_zombies()
        leaked = [p for p in _descendants() if p.pid not in before]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if leaked:
        names = []
        for proc in leaked:
            try:
                names.append(f'{proc.pid}: {" ".join(proc.cmdline())[:120]}')
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        time.sleep(0.2)
        _reap_zombies()
        pytest.fail(f'test left {len(leaked)} process(es) alive:\n' + '\n'.join(names))
