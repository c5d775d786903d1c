"""The ``tractorish`` command, run as users run it: ``python -m tractorish``.

Exit statuses (docs/cli.md): 0 done, 1 a run-time failure in one line, 2
wrong arguments, 141 standard output closed early. The install line the
README and the docs give is checked here too, against pyproject.toml.
"""
from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import psutil
import pytest

import tractorish
from tractorish.testing import free_port, stop_program

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 30, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'tractorish', *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_failure(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 1, f'exit {proc.returncode}: {proc.stderr}'
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'tractorish {command}: '), proc.stderr
    return lines[0]


@contextmanager
def registry_daemon(port: int) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, '-m', 'tractorish', 'registry', '--port', str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ''  # a line, or '' if it exited
        assert 'listening on' in line, f'the registry did not start: {line!r}'
        yield proc
    finally:
        stop_program(proc)


def wait_gone(pids: List[int], timeout: float = 10.0) -> List[int]:
    """The pids still running (not zombies) after at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# --- the demo ---------------------------------------------------------------------------

def test_demo_into_a_closed_pipe_ends_quietly_and_reaps_its_actors():
    # `tractorish demo | head -3`: head leaves while the demo still prints
    demo = subprocess.Popen(
        [sys.executable, '-m', 'tractorish', 'demo', '--workers', '2',
         '--limit', '3000000', '--chunks', '60'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(['head', '-3'], stdin=demo.stdout, stdout=subprocess.PIPE)
    demo.stdout.close()  # head holds the only reading end
    try:
        shown, _ = head.communicate(timeout=60)
        _, errors = demo.communicate(timeout=60)
    finally:
        for proc in (head, demo):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = shown.decode().splitlines()
    assert len(lines) == 3 and lines[0].startswith('started primes-0 (pid ')
    assert demo.returncode == 141, errors.decode()
    assert errors.decode().strip() == ''
    actor_pids = [int(pid) for pid in re.findall(r'\(pid (\d+)\)', shown.decode())]
    assert actor_pids and wait_gone(actor_pids) == []


@pytest.mark.parametrize('option, value, message', [
    ('--limit', '-5', 'must be at least 1, not -5'),
    ('--limit', '0', 'must be at least 1, not 0'),
    ('--chunks', '0', 'must be at least 1, not 0'),
    ('--workers', 'many', "'many' is not a whole number"),
])
def test_demo_refuses_numbers_out_of_range(option, value, message):
    proc = cli('demo', option, value)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'usage: tractorish demo' in proc.stderr
    assert f'argument {option}: {message}' in proc.stderr
    assert proc.stdout == ''  # nothing was started


# --- wrong arguments: status 2, a usage message, nothing started ----------------------------

@pytest.mark.parametrize('args, message', [
    (['call', 'x', 'nodot'], "'nodot' is not module.function"),
    (['call', 'x', 'mod.'], "'mod.' is not module.function"),
    (['call', 'x', 'mod.f', 'a'], "'a' is not key=value"),
    (['call', 'x', 'mod.f', '1a=2'], "'1a=2' is not key=value"),
    (['call', 'x', 'mod.f', 'a=1', 'a=2'], "'a' is given twice"),
    (['call'], 'the following arguments are required: NAME, MODULE.FUNCTION'),
    (['ls', '--registry', 'somehost'], "'somehost' is not an address: use HOST:PORT"),
    (['ls', '--registry', '70000'], "'70000' is not an address"),
    (['tree', '--registry', 'host:'], "'host:' is not an address"),
    (['ls', '--timeout', '0'], 'must be more than 0 seconds'),
    (['tree', '--timeout', 'soon'], "'soon' is not a number of seconds"),
    (['registry', '--port', '0'], 'must be at least 1, not 0'),
    (['registry', '--port', '65536'], 'must be at most 65535, not 65536'),
    (['demo', '--bogus'], 'unrecognized arguments: --bogus'),
    ([], 'the following arguments are required: command'),
], ids=lambda value: ' '.join(value) if isinstance(value, list) else None)
def test_wrong_arguments_exit_2_with_usage(args, message):
    proc = cli(*args)
    assert proc.returncode == 2, f'exit {proc.returncode}: {proc.stderr}'
    assert proc.stderr.startswith('usage: tractorish') and message in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('command', ['ls', 'tree', 'call', 'demo'])
def test_a_malformed_registry_variable_is_a_usage_error(command):
    args = ['x', 'mod.f'] if command == 'call' else []
    proc = cli(command, *args, env={**os.environ, 'TRACTORISH_REGISTRY': 'nowhere'})
    assert proc.returncode == 2, f'exit {proc.returncode}: {proc.stderr}'
    assert "TRACTORISH_REGISTRY='nowhere' is not an address" in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_call_shows_its_keyword_arguments_as_optional():
    proc = cli('call', 'someone')
    assert proc.returncode == 2
    required = [line for line in proc.stderr.splitlines() if 'required' in line]
    assert required and required[0].endswith('required: MODULE.FUNCTION'), proc.stderr
    assert '[KEY=VALUE ...]' in proc.stderr  # the usage line


def test_call_help_says_how_values_are_parsed():
    from tractorish._cli import parse_value
    proc = cli('call', '--help')
    assert proc.returncode == 0
    text = proc.stdout
    assert 'VALUE is JSON if it parses as JSON, else a string' in ' '.join(text.split())
    for example in ('a=40            the number 40', 'a=\'"40"\'        the string "40"',
                    'y=abc           the string "abc" (not JSON)'):
        assert example in text
    assert parse_value('40') == 40 and parse_value('"40"') == '40'
    assert parse_value('abc') == 'abc' and parse_value('') == ''
    assert parse_value('[1, 2]') == [1, 2] and parse_value('null') is None


def test_version():
    proc = cli('--version')
    assert proc.returncode == 0
    assert proc.stdout == f'tractorish {tractorish.__version__}\n'


def test_every_command_has_help():
    for command in ('registry', 'ls', 'tree', 'call', 'demo'):
        helped = cli(command, '--help')
        assert helped.returncode == 0 and 'usage: tractorish' in helped.stdout


# --- run-time failures: status 1, one line ---------------------------------------------------

def test_runtime_failures_exit_1_in_one_line():
    nobody = free_port()
    for command, extra in (('ls', []), ('tree', []), ('call', ['x', 'mod.f', 'a=1'])):
        line = assert_one_line_failure(cli(command, *extra, '--registry', f'127.0.0.1:{nobody}'),
                                       command)
        assert f'nothing answers at 127.0.0.1:{nobody}' in line
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = assert_one_line_failure(cli('registry', '--port', str(port)), 'registry')
        assert f'cannot serve the registry at 127.0.0.1:{port}' in line


def test_a_bare_port_means_localhost():
    port = free_port()
    line = assert_one_line_failure(cli('ls', '--registry', str(port)), 'ls')
    assert f'nothing answers at 127.0.0.1:{port}' in line


def test_a_silent_registry_is_given_up_on_after_the_timeout():
    # accepts connections (the kernel does, from the backlog) and never answers
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(16)
        where = f'127.0.0.1:{silent.getsockname()[1]}'
        for command, extra in (('ls', []), ('call', ['x', 'mod.f'])):
            proc = cli(command, *extra, '--registry', where, '--timeout', '1')
            line = assert_one_line_failure(proc, command)
            assert f'no answer from {where} within 1 s' in line, line
            assert 'secret' not in line
        # top's timeout bounds its connecting too (it waited the handshake's 5 s)
        proc = cli('top', '-n', '1', '--registry', where, '--timeout', '1')
        assert proc.returncode == 1 and 'did not answer within 1 s' in proc.stderr, proc.stderr


def test_ls_shows_the_registrar_at_the_registry_address():
    port = free_port()
    registry = f'127.0.0.1:{port}'
    env = {**os.environ, 'TRACTORISH_REGISTRY': registry}
    with registry_daemon(port):
        listing = cli('ls', env=env)
        assert listing.returncode == 0, listing.stderr
        rows = listing.stdout.splitlines()
        assert rows[0].split() == ['NAME', 'UID', 'PID', 'ADDRESS', 'UPTIME']
        registrar = [row for row in rows if row.startswith('registrar ')]
        assert len(registrar) == 1 and f'{registry} (registry)' in registrar[0], rows
        by_port = cli('ls', '--registry', str(port))  # a bare port, found this time
        assert by_port.returncode == 0 and f'{registry} (registry)' in by_port.stdout


# --- installing ------------------------------------------------------------------------------

def _extras() -> dict:
    text = (ROOT / 'pyproject.toml').read_text()
    block = text.split('[project.optional-dependencies]', 1)[1].split('\n[', 1)[0]
    extras = {}
    for name, body in re.findall(r'^(\w+) = \[(.*?)\]$', block, re.M | re.S):
        extras[name] = re.findall(r'"([^"]+)"', body)
    return extras


def _requirements(extra: str, extras: dict) -> set:
    """The distribution names ``.[extra]`` installs, following tractorish[...]."""
    names = set()
    for requirement in extras[extra]:
        name = re.split(r'[\[<>=;~! ]', requirement, maxsplit=1)[0].lower()
        if name == 'tractorish':
            for inner in re.search(r'\[(.*?)\]', requirement).group(1).split(','):
                names |= _requirements(inner.strip(), extras)
        else:
            names.add(name)
    return names


def test_one_install_line_gives_what_the_documented_commands_need():
    install = "pip install -e '.[dev]'"
    for doc in ('README.md', 'docs/index.md', 'docs/quickstart.md'):
        text = (ROOT / doc).read_text()
        lines = [line for line in text.splitlines() if 'pip install' in line]
        assert lines and all(install in line for line in lines), (doc, lines)
    dev = _requirements('dev', _extras())
    # pytest (tests), mkdocs (docs), nox and mypy (the development section)
    assert {'pytest', 'mkdocs', 'nox', 'mypy'} <= dev
    assert _requirements('test', _extras()) <= dev
    readme = (ROOT / 'README.md').read_text()
    development = readme.split('## Development', 1)[1]
    noxfile = (ROOT / 'noxfile.py').read_text()
    pythons = re.search(r'PYTHONS = \[(.*?)\]', noxfile).group(1)
    sessions = set(re.findall(r'^def (\w+)\(session', noxfile, re.M))
    sessions |= {f'tests-{v}' for v in re.findall(r"'([\d.]+)'", pythons)}
    named = set(re.findall(r'nox -s ((?:[\w.-]+ ?)+)', readme))
    assert named, 'the README names no nox session'
    for group in named:
        assert set(group.split()) <= sessions, group
    # run through the install's own venv: `nox` alone is not on PATH
    assert '.venv/bin/nox' in development


def test_nox_lists_the_sessions():
    pytest.importorskip('nox', reason="nox comes with the dev extra, not with .[test]")
    proc = subprocess.run([sys.executable, '-m', 'nox', '--list'], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for session in ('tests-3.11', 'docs', 'mypy', 'bench'):
        assert session in proc.stdout
