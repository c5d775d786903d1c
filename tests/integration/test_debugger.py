"""The tree debugger (``debug_mode=True``), driven as a user types.

Each test runs a program under ``examples/debugging/`` (or a script of
ours) in a pseudo-terminal with pexpect, waits for pdb's prompt naming the
actor, types commands and reads what the program prints back.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from test_multihost import two_hosts  # noqa: F401 - a fixture
from tractorish.testing import stop_program

pexpect = pytest.importorskip('pexpect')

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / 'examples' / 'debugging'
HERE = Path(__file__).resolve().parent
# each step waits this long at most: a spawn on a busy machine is slow
STEP_TIMEOUT = 40
# from Python 3.13, pdb stops at the line of breakpoint() itself, before
# the next one
STOPS_AT_THE_CALL = sys.version_info >= (3, 13)


def prompt(actor: str) -> str:
    return r'\(Pdb\+\) \[' + actor + r'\] '


def plain(text: str) -> str:
    """``text`` without the terminal's escape sequences and carriage returns."""
    return re.sub(r'\x1b\[[0-9;?]*[a-zA-Z]', '', text).replace('\r', '')


class Program:
    """A program in a pseudo-terminal, as a user at a terminal runs it.
    What its methods return is what it printed, without escape sequences."""

    def __init__(self, argv: List[str], cwd: Path = ROOT,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd),
                                   env=env or os.environ.copy(), encoding='utf-8',
                                   timeout=STEP_TIMEOUT, dimensions=(40, 200))
        self.seen: List[str] = []

    def expect(self, pattern: Any) -> str:
        try:
            self.child.expect(pattern)
        except (pexpect.TIMEOUT, pexpect.EOF) as err:
            raise AssertionError(f'never saw {pattern!r}; the program printed:\n'
                                 f'{"".join(self.seen)}{self.child.before}') from err
        after = self.child.after if isinstance(self.child.after, str) else ''
        self.seen.append(self.child.before + after)
        return plain(self.seen[-1])

    def at_prompt(self, actor: str) -> str:
        """Wait for the REPL of ``actor`` (a regex); return what came before it."""
        return self.expect(prompt(actor))

    def type(self, line: str, actor: str) -> str:
        """Type ``line`` at the prompt; return what it printed up to the
        next prompt of ``actor``."""
        self.child.sendline(line)
        return self.at_prompt(actor)

    def finish(self, line: str = 'c', status: int = 0) -> str:
        """Type ``line``, wait for the program to exit with ``status``;
        return the rest."""
        self.child.sendline(line)
        rest = self.expect(pexpect.EOF)
        self.child.close()
        assert self.child.exitstatus == status, f'exit status {self.child.exitstatus}:\n{rest}'
        return rest

    def close(self) -> None:
        self.child.close(force=True)  # (nothing if already closed)


@pytest.fixture
def run() -> Iterator[Callable[..., Program]]:
    """Start a program (a script, with this Python, or any ``argv=``); each
    is closed at the end of the test, whatever happened."""
    programs: List[Program] = []

    def start(script: Optional[Path] = None, *args: str,
              argv: Optional[List[str]] = None, **kwargs: Any) -> Program:
        program = Program(argv or [sys.executable, str(script), *args], **kwargs)
        programs.append(program)
        return program

    yield start
    for program in programs:
        program.close()


def test_a_crash_in_a_child_stops_at_the_frame_that_raised(run) -> None:
    program = run(EXAMPLES / 'crash_in_child.py')
    before = program.at_prompt('boom')
    assert "actor 'boom'" in before and 'crashed with ValueError: total 15 is too big' in before
    assert "-> raise ValueError(f'total {total} is too big')" in before
    assert '15' in program.type('p total', 'boom')
    listing = program.type('ll', 'boom')
    assert '->\t        raise ValueError' in listing and 'def check' in listing
    # up the stack, to the frame that called it
    assert '-> check(total)' in program.type('up', 'boom')
    assert '[4, 5, 6]' in program.type('p values', 'boom')
    assert 'values = [4, 5, 6]' in program.type('args', 'boom')
    rest = program.finish('c', status=1)
    # the error goes on as it would without the debugger: reported once
    assert rest.count("ValueError in actor 'boom': total 15 is too big") == 1


def test_a_breakpoint_in_a_grandchild_steps_and_goes_on(run) -> None:
    program = run(EXAMPLES / 'breakpoint_in_grandchild.py')
    before = program.at_prompt('leaf')
    assert "actor 'leaf'" in before and 'stopped at a breakpoint' in before
    if STOPS_AT_THE_CALL:
        assert '-> breakpoint()' in before
        assert '-> total = sum(scaled)' in program.type('n', 'leaf')
    else:
        assert '-> total = sum(scaled)' in before
    assert '[10, 20, 30]' in program.type('p scaled', 'leaf')
    assert '-> return [*scaled, total]' in program.type('n', 'leaf')
    assert '60' in program.type('p total', 'leaf')
    # 'up' walks the stack as in pdb: the leaf's frame is the top of its task
    program.type('where', 'leaf')
    rest = program.finish('c')
    assert 'result: [10, 20, 30, 60]' in rest


def test_two_crashes_get_their_repls_one_after_the_other(run) -> None:
    program = run(EXAMPLES / 'two_crashes.py')
    first = program.at_prompt('first')
    assert 'RuntimeError: first gave up' in first
    # the second crash waits for the terminal: nothing of it while the first is open
    time.sleep(1.0)
    shown = program.type('p label', 'first')
    assert "'first'" in shown and 'second' not in shown
    program.child.sendline('c')
    second = program.at_prompt('second')
    assert 'RuntimeError: second gave up' in second
    assert "'second gave up'" in program.type('p reason', 'second')
    rest = program.finish('c', status=1)
    assert 'first gave up' in rest and 'second gave up' in rest


def test_ctrl_c_at_a_prompt_stays_in_the_repl_and_q_ends_it_all(run) -> None:
    program = run(EXAMPLES / 'crash_in_child.py')
    program.at_prompt('boom')
    program.child.send('p tot')  # half a line, then Ctrl-C: the line is dropped
    time.sleep(0.3)
    program.child.sendintr()
    program.expect('--KeyboardInterrupt--')
    program.at_prompt('boom')
    time.sleep(1.0)  # the tree would have been cancelled by now
    assert '15' in program.type('p total', 'boom')
    program.child.sendintr()
    program.expect('--KeyboardInterrupt--')
    program.at_prompt('boom')
    rest = program.finish('q', status=1)
    assert "ValueError in actor 'boom'" in rest
    # (the process guard fails the test if an actor is left behind)


def test_a_crash_in_a_pool_worker(run) -> None:
    program = run(EXAMPLES / 'pool_worker_crash.py')
    text = program.at_prompt(r'squares-\d')
    worker = re.search(r"actor '(squares-\d)'", text).group(1)
    assert "'four'" in program.type('p bad', worker)
    rest = program.finish('c')
    assert f"the pool raised: TypeError from '{worker}'" in rest
    assert 'still serving: 25' in rest


def test_a_repl_for_an_actor_of_a_separate_program(run) -> None:
    program = run(EXAMPLES / 'separate_program.py')
    before = program.at_prompt('calc')
    assert '3 / 4 = 0.75' in before and 'ZeroDivisionError' in before
    assert '(1, 0)' in program.type('p a, b', 'calc')
    rest = program.finish('c')
    assert "the worker raised ZeroDivisionError from 'calc'" in rest
    assert 'worker stopped, exit status 0' in rest


def test_pause_from_sync_in_a_thread_and_post_mortem(run) -> None:
    program = run(EXAMPLES / 'sync_and_caught.py')
    before = program.at_prompt('worker')
    assert 'stopped at a breakpoint' in before
    assert ('-> tractorish.pause_from_sync()' if STOPS_AT_THE_CALL
            else '-> return digest') in before
    assert '87' in program.type('p digest', 'worker')
    program.child.sendline('c')
    before = program.at_prompt('worker')
    assert "post-mortem of KeyError: 'missing'" in before
    assert "{'a': 1}" in program.type('p table', 'worker')
    rest = program.finish('c')
    assert 'result: digest 87, error handled' in rest


def test_pause_in_the_root_and_a_child_with_tab_completion(run) -> None:
    program = run(EXAMPLES / 'pause_in_root_and_child.py')
    assert 'stopped at a breakpoint' in program.at_prompt('root')
    assert '5' in program.type('p limit', 'root')
    program.child.sendline('c')
    program.at_prompt('counter')
    program.child.send('p cou\t')  # Tab completes 'count', in the child's frame
    time.sleep(0.5)
    shown = program.type('', 'counter')
    assert 'NameError' not in shown and '6' in shown
    rest = program.finish('c')
    assert 'count: 10' in rest


def test_q_at_a_breakpoint_ends_the_program(run) -> None:
    program = run(EXAMPLES / 'breakpoint_in_grandchild.py')
    program.at_prompt('leaf')
    rest = program.finish('q', status=1)
    assert 'BdbQuit' in rest


def test_cancelling_the_tree_waits_for_an_open_repl(run, tmp_path: Path) -> None:
    flag = tmp_path / 'give-up'
    program = run(HERE / 'debug_cancel_script.py', str(flag))
    program.at_prompt('boom')
    flag.touch()  # the root gives up: the tree is cancelled
    # its timeouts (0.5 s each) are long past: the REPL is still served
    time.sleep(3.0)
    assert program.child.isalive()
    assert '3' in program.type('p total', 'boom')
    program.child.sendline('c')
    # then the root's own error stops it in its REPL, as any actor's
    assert 'RuntimeError: the root gives up' in program.at_prompt('root')
    rest = program.finish('c', status=1)
    assert 'RuntimeError: the root gives up' in rest


def test_a_repl_for_an_actor_on_another_host(two_hosts, run) -> None:
    """The actor that crashes runs in another program on another host (a
    network namespace); its REPL opens on this program's terminal."""
    from test_multihost import HOST_A, HOST_B
    ns_a, ns_b = two_hosts
    registry = f'{HOST_A}:1616'  # inside a fresh namespace, the default port is ours
    env_a = {**os.environ, 'TRACTORISH_REGISTRY': registry, 'TRACTORISH_HOST': HOST_A}
    env_b = {**os.environ, 'TRACTORISH_REGISTRY': registry, 'TRACTORISH_HOST': HOST_B}
    in_a = ['ip', 'netns', 'exec', ns_a, sys.executable]
    daemon = subprocess.Popen([*in_a, '-m', 'tractorish', 'registry', '--host', HOST_A,
                               '--port', '1616'], cwd=HERE, env=env_a, text=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    worker = None
    try:
        assert 'listening on' in daemon.stdout.readline()
        # no terminal for the worker: its REPL must travel
        worker = subprocess.Popen([*in_a, 'debug_remote_worker.py'], cwd=HERE, env=env_a,
                                  text=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE)
        assert 'ready' in worker.stdout.readline()
        program = run(argv=['ip', 'netns', 'exec', ns_b, sys.executable,
                            'debug_remote_caller.py'], cwd=HERE, env=env_b)
        assert 'ZeroDivisionError' in program.at_prompt('calc')
        assert '(1, 0)' in program.type('p a, b', 'calc')
        assert "remote ZeroDivisionError from 'calc'" in program.finish('c')
    finally:
        for proc in (worker, daemon):
            if proc is not None:
                stop_program(proc)


NOT_LOADED = """
import sys
import trio
import tractorish


async def loaded() -> list:
    return sorted(m for m in ('tractorish.devx._debug', 'greenback', 'pdb', 'bdb')
                  if m in sys.modules)


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(loaded, name='child')
        print('child', await portal.result())
    print('root', await loaded())
    print('debug_mode', tractorish.debug_mode())


if __name__ == '__main__':
    trio.run(main)
"""


def test_without_debug_mode_nothing_of_the_debugger_is_loaded(tmp_path: Path) -> None:
    script = tmp_path / 'not_loaded.py'
    script.write_text(NOT_LOADED)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'child []' in out.stdout and 'root []' in out.stdout
    assert 'debug_mode False' in out.stdout


# --- without a terminal: the API's errors and settings ------------------------------

async def test_the_debuggers_api_outside_debug_mode_says_how_to_get_it(reg_addr) -> None:
    import tractorish
    with pytest.raises(RuntimeError, match='needs an actor runtime'):
        await tractorish.pause()
    async with tractorish.open_nursery(registry_addrs=[reg_addr]) as an:
        assert tractorish.debug_mode() is False
        with pytest.raises(RuntimeError, match='debug_mode=True'):
            await tractorish.pause()
        with pytest.raises(RuntimeError, match='debug_mode=True'):
            tractorish.pause_from_sync()
        try:
            raise KeyError('x')
        except KeyError:
            with pytest.raises(RuntimeError, match='debug_mode=True'):
                await tractorish.post_mortem()
        with pytest.raises(ValueError, match='whole tree'):
            await an.start_actor('d', debug_mode=True)
        assert an.children == []
        await tractorish.devx.maybe_wait_for_debugger()  # nothing to wait for


async def test_debug_mode_is_the_whole_trees_and_needs_greenback(reg_addr, monkeypatch) -> None:
    import tractorish
    with pytest.raises(ValueError, match='debug_mode must be True or False'):
        tractorish.RuntimeConfig(debug_mode='yes')
    async with tractorish.open_nursery(registry_addrs=[reg_addr], debug_mode=True) as an:
        assert tractorish.debug_mode() is True
        assert tractorish.get_runtime_vars()['_debug_mode'] is True
        # a nested nursery may repeat the tree's setting
        async with tractorish.open_nursery(debug_mode=True):
            pass
        portal = await an.start_actor('child', debug_mode=True,
                                      enable_modules=['tractorish.runtime._state'])
        assert await portal.run_from_ns('tractorish.runtime._state', 'debug_mode') is True
        await portal.cancel_actor()
        # a caught error in no REPL: post_mortem needs an error
        with pytest.raises(ValueError, match='needs an error'):
            await tractorish.post_mortem()
    monkeypatch.setitem(sys.modules, 'greenback', None)
    with pytest.raises(ImportError, match=r"tractorish\[debug\]"):
        async with tractorish.open_nursery(registry_addrs=[reg_addr], debug_mode=True):
            pass


async def test_waiting_for_the_debugger_ends_when_the_last_repl_does() -> None:
    import trio
    from tractorish.devx._debug import Debugger
    debugger = Debugger(actor=None)  # (the actor is not needed for this)
    woken = trio.Event()

    async def waiter() -> None:
        await debugger.wait_idle()
        woken.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            with debugger._held():  # a REPL here...
                nursery.start_soon(waiter)
                await trio.sleep(0.01)
                with debugger._held():  # ...and one relayed while it is open
                    assert debugger.busy
                await trio.sleep(0.01)
                assert not woken.is_set()
            await woken.wait()
            assert not debugger.busy
