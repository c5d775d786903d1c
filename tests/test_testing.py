"""The pytest plugin ``tractorish.testing``, run on suites of its own (pytester).

Suites that spawn actors or change the process (the subreaper, sys.modules)
run in a pytest subprocess; the others in this process.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import psutil
import pytest

pytest_plugins = ['pytester']

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ('-p', 'tractorish.testing', '-p', 'no:cacheprovider')
BACKENDS = ['forkserver', 'trio'] if sys.platform.startswith('linux') else ['trio']


def docs_first_test() -> str:
    """The first code block of docs/testing.md: a user's first actor test."""
    text = (ROOT / 'docs' / 'testing.md').read_text()
    return re.search(r'```python\n(.*?)```', text, re.S).group(1)


def test_isolated_env_gives_each_test_its_own_secret_and_registry(pytester):
    pytester.makepyfile(test_env='''
        import os
        from pathlib import Path
        import pytest
        from tractorish.testing import free_port

        SEEN = []

        @pytest.mark.parametrize('run', [1, 2])
        def test_env(run, reg_addr, tmp_path):
            secret = os.environ['TRACTORISH_SECRET']
            assert len(secret) == 32 and secret not in SEEN
            SEEN.append(secret)
            assert os.environ['TRACTORISH_REGISTRY'] == f'{reg_addr[0]}:{reg_addr[1]}'
            assert reg_addr[0] == '127.0.0.1' and reg_addr[1] != 1616
            secret_file = Path(os.environ['TRACTORISH_SECRET_FILE'])
            assert secret_file.parent == tmp_path and not secret_file.exists()
            assert isinstance(free_port(), int)
    ''')
    before = os.environ.get('TRACTORISH_SECRET')
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=2)
    assert os.environ.get('TRACTORISH_SECRET') == before  # restored after each test


def test_the_guard_names_and_kills_what_a_test_left_behind(pytester):
    pytester.makeini('[pytest]\ntractorish_leak_grace = 0.5\n')
    pytester.makepyfile(test_leaks='''
        import os, subprocess, sys

        def test_leaves_a_child():
            proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)  # child'])
            open('pids', 'a').write(f'{proc.pid}\\n')

        def test_leaves_an_orphan():
            # the middle process exits at once: its child is re-parented to the
            # pytest process (a subreaper), where the guard finds it
            code = ('import subprocess, sys; p = subprocess.Popen([sys.executable, "-c", '
                    '"import time; time.sleep(60)  # orphan"], stdout=subprocess.DEVNULL, '
                    'stderr=subprocess.DEVNULL); print(p.pid)')
            out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
            open('pids', 'a').write(out.stdout)

        def test_cleans_up():
            proc = subprocess.Popen([sys.executable, '-c', 'pass'])
            proc.wait()
    ''')
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(passed=3, errors=2)
    output = result.stdout.str()
    assert 'test left 1 process(es) alive' in output
    pids = [int(line) for line in (pytester.path / 'pids').read_text().split()]
    assert len(pids) == 2
    for pid, tag in zip(pids, ['# child', '# orphan']):
        assert re.search(rf'{pid}: .*{tag}', output), output
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_guard_without_psutil_says_what_to_install(pytester):
    pytester.makeconftest('import sys\nsys.modules["psutil"] = None  # as if not installed\n')
    pytester.makepyfile(test_nothing='def test_nothing():\n    pass\n')
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(errors=1)
    assert "needs psutil, which is not installed: pip install 'tractorish[test]'" \
        in result.stdout.str()
    assert 'During handling' not in result.stdout.str()


def test_a_bad_leak_grace_is_a_usage_error_naming_the_setting(pytester):
    pytester.makeini('[pytest]\ntractorish_leak_grace = 5s\n')
    pytester.makepyfile(test_nothing='def test_nothing():\n    pass\n')
    result = pytester.runpytest_subprocess(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "tractorish_leak_grace must be a number of seconds >= 0, not '5s'" in \
        result.stderr.str()


def test_an_isolated_asyncio_test_case_is_left_to_unittest(pytester):
    pytester.makepyfile(test_unittest_async='''
        import asyncio, unittest

        class AsyncioCase(unittest.IsolatedAsyncioTestCase):
            async def test_runs_on_asyncio(self):
                await asyncio.sleep(0)
                self.assertTrue(asyncio.get_running_loop().is_running())
    ''')
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(passed=1)


def test_spawn_backend_runs_a_test_once_per_backend(pytester):
    pytester.makepyfile(test_backends='''
        import os

        def test_backend(spawn_backend):
            assert os.environ['TRACTORISH_START_METHOD'] == spawn_backend
    ''')
    result = pytester.runpytest(*PLUGIN, '-v')
    result.assert_outcomes(passed=len(BACKENDS))
    for backend in BACKENDS:
        result.stdout.fnmatch_lines([f'*test_backend?{backend}? PASSED*'])
    one = pytester.runpytest(*PLUGIN, '--tractorish-backend', 'trio', '-v')
    one.assert_outcomes(passed=1)
    one.stdout.fnmatch_lines(['*test_backend?trio? PASSED*'])


def test_the_first_test_of_the_docs_passes_as_written(pytester):
    pytester.makepyfile(test_adder=docs_first_test())
    # no trio_mode in this suite's ini: the plugin runs async tests under trio
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(passed=1)


def test_root_actor_is_open_for_the_test_on_each_backend(pytester):
    pytester.makepyfile(test_root='''
        import tractorish

        async def where() -> str:
            return tractorish.current_actor().name

        async def test_root(root_actor, spawn_backend, reg_addr):
            assert tractorish.current_actor() is root_actor
            assert root_actor.name == 'root' and root_actor.is_registrar
            assert root_actor.registry_addrs == [reg_addr]
            assert root_actor.config.start_method == spawn_backend
            async with tractorish.open_nursery() as an:
                portal = await an.start_actor('child', enable_modules=[__name__])
                assert await portal.run(where) == 'child'
                await portal.cancel_actor()

        def test_after():  # the fixture closed the root actor
            assert tractorish.current_actor(err_on_no_runtime=False) is None
    ''')
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(passed=len(BACKENDS) + 1)
