"""The pytest plugin for suites that test actor trees.

Turn it on with ``pytest -p tractorish.testing`` or, in the suite's top
``conftest.py``, ``pytest_plugins = ['tractorish.testing']``; no entry point
loads it by itself, so it never changes an unrelated suite. Then an
``async def test_...`` runs under trio (unless another async plugin's mark
is on it) and may open actor nurseries.

Every test gets, without asking (autouse):

- ``isolated_env``: a registry address of its own (``reg_addr``, a free
  port), a fresh secret in ``$TRACTORISH_SECRET`` and
  ``$TRACTORISH_SECRET_FILE`` pointing at a file that does not exist, so a
  test never reaches the user's registry or reads the user's secret;
- ``no_leaked_processes``: after the test, every process it left alive
  (an orphaned actor too: on Linux the pytest process adopts orphans as a
  child subreaper) is named in the failure, then killed.

On request: ``reg_addr``, ``spawn_backend`` (the test runs once per spawn
backend available here: ``forkserver`` on Linux, and ``trio``) and
``root_actor`` (an async fixture: the root actor, open for the test).

A suite replaces any of these by defining a fixture of the same name.
"""
from __future__ import annotations

import inspect
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, List, Tuple

import pytest

if TYPE_CHECKING:
    from .runtime import Actor

__all__ = ['available_backends', 'free_port', 'isolated_env', 'no_leaked_processes',
           'reg_addr', 'root_actor', 'spawn_backend', 'stop_program']

INSTALL_HINT = "pip install 'tractorish[test]'"
# how long the guard waits, by default, for a test's processes to finish exiting
LEAK_GRACE = 5.0
_PR_SET_CHILD_SUBREAPER = 36
# marks of async test runners other than trio's: tests carrying them are theirs
_OTHER_ASYNC_MARKS = ('asyncio', 'anyio')


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def stop_program(proc: 'subprocess.Popen[Any]', timeout: float = 10.0) -> None:
    """End a program a test started: Ctrl-C (so it tears its tree down),
    then SIGKILL after ``timeout`` s; wait for it; close its pipes."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def available_backends() -> List[str]:
    """The spawn backends that work on this platform."""
    return ['forkserver', 'trio'] if sys.platform.startswith('linux') else ['trio']


# --- hooks ---------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup('tractorish')
    group.addoption('--tractorish-backend', action='append', default=None,
                    choices=['forkserver', 'trio'], dest='tractorish_backends',
                    help='run spawn_backend tests on this backend only (repeatable; '
                         'default: every backend available here)')
    group.addoption('--tractorish-loglevel', default=None, dest='tractorish_loglevel',
                    help="the root_actor fixture's loglevel (e.g. debug)")
    parser.addini('tractorish_leak_grace', type='string', default=str(LEAK_GRACE),
                  help='seconds the process guard waits for what a test started to '
                       f'exit before it fails the test (default {LEAK_GRACE:g})')


def pytest_configure(config: pytest.Config) -> None:
    grace = config.getini('tractorish_leak_grace')
    try:
        if float(grace) < 0:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f'tractorish_leak_grace must be a number of seconds >= 0, '
                                f'not {grace!r}') from None
    if sys.platform.startswith('linux'):
        # an actor whose parent died is re-parented here, where the guard sees it
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if 'spawn_backend' in metafunc.fixturenames:
        chosen = metafunc.config.getoption('tractorish_backends') or available_backends()
        metafunc.parametrize('spawn_backend', chosen, indirect=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Run every ``async def`` test under trio, as pytest-trio's trio mode
    would, unless the suite set ``trio_mode`` itself or another async
    runner's mark is on the test."""
    try:
        if config.getini('trio_mode'):
            return  # pytest-trio marks them itself
    except ValueError:  # no such ini key: pytest-trio is not loaded
        pass
    for item in items:
        test = getattr(item, 'obj', None)
        test = getattr(getattr(test, 'hypothesis', None), 'inner_test', test)
        if not _is_async(test) or item.get_closest_marker('trio') is not None \
                or any(item.get_closest_marker(m) for m in _OTHER_ASYNC_MARKS):
            continue
        cls = getattr(item, 'cls', None)
        if cls is not None and issubclass(cls, unittest.TestCase):
            continue  # (IsolatedAsyncioTestCase runs its own event loop)
        if not config.pluginmanager.has_plugin('trio'):
            raise pytest.UsageError(
                f'{item.nodeid} is an async test: tractorish.testing runs them with '
                f'pytest-trio, which is not installed ({INSTALL_HINT})')
        item.add_marker(pytest.mark.trio)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


# --- isolation -----------------------------------------------------------------------

@pytest.fixture
def reg_addr() -> Tuple[str, int]:
    """This test's registry address: ``('127.0.0.1', free port)``, also in
    ``$TRACTORISH_REGISTRY`` (so actors started with no registry given use it)."""
    return ('127.0.0.1', free_port())


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                 reg_addr: Tuple[str, int]) -> Iterator[None]:
    """A per-test secret and registry; the user's secret file is never used."""
    monkeypatch.setenv('TRACTORISH_SECRET', secrets.token_hex(16))
    monkeypatch.setenv('TRACTORISH_SECRET_FILE', str(tmp_path / 'no-secret-file'))
    monkeypatch.setenv('TRACTORISH_REGISTRY', reg_addr if isinstance(reg_addr, str)
                       else f'{reg_addr[0]}:{reg_addr[1]}')  # (a suite's own: a UDS path)
    yield


# --- the process guard ---------------------------------------------------------------

def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is None:  # (failed outside the except: no chained ImportError shown)
        pytest.fail(f'the process guard of tractorish.testing needs psutil, which is '
                    f'not installed: {INSTALL_HINT}', pytrace=False)
    return psutil


def _descendants(psutil: Any) -> List[Any]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _reap_zombies(psutil: Any) -> None:
    for child in _descendants(psutil):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def _kill_and_name(psutil: Any, leaked: List[Any]) -> List[str]:
    names = []
    for proc in leaked:
        try:
            names.append(f'{proc.pid}: {" ".join(proc.cmdline())[:120]}')
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    time.sleep(0.2)
    _reap_zombies(psutil)
    return names


@pytest.fixture(autouse=True)
def no_leaked_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves a child process (or an orphan) alive,
    naming each one; they are killed first."""
    psutil = _psutil()
    grace = float(request.config.getini('tractorish_leak_grace'))
    before = {p.pid for p in _descendants(psutil)}
    yield
    deadline = time.monotonic() + grace
    while True:
        _reap_zombies(psutil)
        leaked = [p for p in _descendants(psutil) if p.pid not in before]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if leaked:
        names = _kill_and_name(psutil, leaked)
        pytest.fail(f'test left {len(leaked)} process(es) alive:\n' + '\n'.join(names))


# --- backends and the root actor -----------------------------------------------------

@pytest.fixture
def spawn_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The spawn backend this run of the test uses (the test runs once per
    backend); set as ``$TRACTORISH_START_METHOD``, the default of every
    nursery and config made in the test."""
    backend: str = getattr(request, 'param', None) or available_backends()[0]
    monkeypatch.setenv('TRACTORISH_START_METHOD', backend)
    return backend


@pytest.fixture
async def root_actor(request: pytest.FixtureRequest,
                     reg_addr: Tuple[str, int]) -> AsyncIterator['Actor']:
    """The root actor, open for the test (named ``'root'``, serving the
    test's registry); ``open_nursery()`` in the test uses it. Its spawn
    backend is ``spawn_backend``'s when the test uses that fixture too."""
    from .supervise import open_root_actor
    async with open_root_actor('root', registry_addrs=[reg_addr],
                               loglevel=request.config.getoption('tractorish_loglevel')) as actor:
        yield actor
