"""The zygote's client on its own: the races between a request and the
zygote's death, or its caller's cancel."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tractorish.spawn._zygote_client import ForkedProcess, ZygoteClient


class _GoneSocket:
    async def sendmsg(self, *args: object) -> None:
        raise BrokenPipeError(32, 'Broken pipe')


async def test_a_zygote_gone_before_its_end_was_read_is_broken():
    client = ZygoteClient(actor=None)  # type: ignore[arg-type]  (no task: never started)
    client._launched.set()
    client._sock = _GoneSocket()
    fds = set(os.listdir('/proc/self/fd'))
    with pytest.raises(RuntimeError) as info:
        await client.fork({'uid': ['a', 'b']})
    # the very error the spawn falls back on (a fresh start), and nothing left open
    assert info.value is client.broken
    assert isinstance(info.value.__cause__, BrokenPipeError)
    assert client._pending == {}
    assert set(os.listdir('/proc/self/fd')) == fds


async def test_the_child_of_an_abandoned_request_is_killed_and_its_exit_awaited():
    client = ZygoteClient(actor=None)  # type: ignore[arg-type]
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        client._pending[7] = [None, 'abandoned', -1]  # its caller was cancelled
        client._handle('forked', {'forked': 7, 'pid': proc.pid})
        assert proc.wait(timeout=10) == -signal.SIGKILL
        child = client._children[proc.pid]
        assert isinstance(child, ForkedProcess)
        client._handle('exited', {'exited': proc.pid, 'code': -signal.SIGKILL})
        assert client._children == {} and child.returncode == -signal.SIGKILL
        child.kill()  # once its exit is known, its pid is never signalled again
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
