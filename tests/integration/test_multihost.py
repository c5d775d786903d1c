"""Two hosts: network namespaces joined by a veth pair (needs root).

The addresses are from 198.18.0.0/15, the range set aside for benchmarking
networks, and exist only inside the namespaces this test creates.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from test_discovery import program, wait_line

HERE = Path(__file__).parent
HOST_A, HOST_B = '198.18.0.1', '198.18.0.2'


def sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.fixture
def two_hosts():
    if shutil.which('ip') is None:
        pytest.skip('no `ip` command (iproute2) on this machine')
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f'trsh-{tag}-a', f'trsh-{tag}-b'
    made = sh('ip', 'netns', 'add', ns_a)
    if made.returncode != 0:
        pytest.skip(f'cannot create network namespaces here: {made.stderr.strip()}')
    try:
        steps = [
            ('ip', 'netns', 'add', ns_b),
            ('ip', 'link', 'add', f'va{tag}', 'type', 'veth', 'peer', 'name', f'vb{tag}'),
            ('ip', 'link', 'set', f'va{tag}', 'netns', ns_a),
            ('ip', 'link', 'set', f'vb{tag}', 'netns', ns_b),
            ('ip', '-n', ns_a, 'addr', 'add', f'{HOST_A}/30', 'dev', f'va{tag}'),
            ('ip', '-n', ns_b, 'addr', 'add', f'{HOST_B}/30', 'dev', f'vb{tag}'),
            ('ip', '-n', ns_a, 'link', 'set', f'va{tag}', 'up'),
            ('ip', '-n', ns_b, 'link', 'set', f'vb{tag}', 'up'),
            ('ip', '-n', ns_a, 'link', 'set', 'lo', 'up'),
            ('ip', '-n', ns_b, 'link', 'set', 'lo', 'up'),
        ]
        for step in steps:
            done = sh(*step)
            if done.returncode != 0:
                pytest.skip(f'cannot set up the test network ({" ".join(step)}): '
                            f'{done.stderr.strip()}')
        yield ns_a, ns_b
    finally:
        sh('ip', 'netns', 'del', ns_a)  # deleting a namespace removes its veth end
        sh('ip', 'netns', 'del', ns_b)


def test_call_stream_and_cancel_across_two_hosts(two_hosts):
    ns_a, ns_b = two_hosts
    registry = f'{HOST_A}:1616'  # inside a fresh namespace, the default port is ours
    env_a = {**os.environ, 'TRACTORISH_REGISTRY': registry, 'TRACTORISH_HOST': HOST_A}
    env_b = {**os.environ, 'TRACTORISH_REGISTRY': registry, 'TRACTORISH_HOST': HOST_B}
    # `ip netns exec` execs the interpreter: it stays our direct child
    in_a = ('ip', 'netns', 'exec', ns_a, sys.executable)
    in_b = ('ip', 'netns', 'exec', ns_b, sys.executable)
    with program('-m', 'tractorish', 'registry', '--host', HOST_A, '--port', '1616',
                 env=env_a, prefix=in_a) as daemon:
        wait_line(daemon, 'listening on')
        with program('worker_program.py', 'calc', env=env_a, prefix=in_a) as worker:
            wait_line(worker, 'ready')
            caller = subprocess.run([*in_b, 'netns_caller.py'], cwd=HERE, env=env_b,
                                    capture_output=True, text=True, timeout=60)
            assert caller.returncode == 0, caller.stderr
            lines = dict(line.split(' ', 1) for line in caller.stdout.splitlines())
            assert lines['call'] == '42'
            assert lines['stream'] == str(sum(range(1000)))
            assert lines['cancelled'] == 'True 1'
            assert lines['echo'] == 'over the wire'
            assert int(lines['pid']) != os.getpid()

