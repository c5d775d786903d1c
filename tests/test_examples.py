"""Every program under examples/ runs, and so does the demo command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / 'examples').glob('*.py'))

# what each example must print (a line that only a working run produces)
EXPECTED = {
    'quickstart.py': ['1 + 2 = 3', "remote ValueError from 'worker'",
                      'still serving: 42', 'one-shot result: 5'],
    'parallel_primes.py': ['total: 17984 primes below 200000'],
    'asyncio_echo_server.py': ["asyncio echo server in actor 'aio-server' on port",
                               'echo: hello', 'echo: from', 'echo: trio',
                               'server stopped'],
    'asyncio_fanout.py': ['asyncio fan-out: 9592 primes below 100000, 12 chunks on 3 actors',
                          "remote TypeError from 'primes-0'",
                          'still serving: 4 primes below 10',
                          'block exited; actors left: 0'],
    'nested_tree.py': ['leaf-1', 'leaf-3', ': 9'],
    'one_cancels_all.py': ['the slow worker finished all the same: done',
                           "'flaky_worker' raised RuntimeError",
                           'every actor was cancelled at once'],
    'stream_one_way.py': ['received: [0, 1, 2, 3, 4]', 'ticker: finally ran after',
                          'left the ticker after 4 values', 'parsed 2',
                          'stream failed remotely: ValueError',
                          'sum(range(1000)) = 499500'],
    'stream_asend.py': ['start: 100', 'after adding 300: 421', 'unchanged: 421',
                        'after receive() then adding 5: 5',
                        'asend() after 40 receive() calls is refused'],
    'stream_subscribe.py': [f'{name} saw 200 quotes, in order: True'
                            for name in ('fast', 'slow', 'average')],
    'context_echo.py': ["echo server in 'echoer' ready", 'echo: three',
                        'the callee echoed 3 messages'],
    'context_errors.py': ['caller: block cancelled by the remote KeyError',
                          'callee saw the caller fail with ValueError',
                          'caller: ValueError raised as itself', 'callee: cancelled',
                          'caller: after ctx.cancel(), result() = None',
                          "caller: ContextCancelled, canceller 'callee'"],
    'context_cancel_chain.py': ['leaf: cancelled, finally ran', 'root: timed out: True',
                                'root: middle still serves: pong'],
    'discovery_find.py': ['found alpha: alpha (pid', 'find_actor for an unknown name gives None',
                          'twins registered: 2', 'find_actor picks the newest twin: True',
                          'waited for late: late (pid', "wait_for_actors got: ['alpha', 'late']",
                          "TimeoutError: no actor registered as 'ghost' within 0.5 s",
                          'registered: alpha, late, root, twin'],
    'separate_programs.py': ['hello parent, from greeter (pid', 'registered: greeter',
                             'worker stopped, exit status 0',
                             'registry stopped, exit status 0'],
    'tls_tree.py': ['over TLS: 12 * 12 = 144', 'over TLS, two levels down: [0, 1, 4, 9, 16]',
                    'without a certificate: refused: True',
                    'with the certificate: exit status 0 - worker listed: True'],
    'pool_primes.py': ['tractorish actor pool:', 'ProcessPoolExecutor:',
                       'totals agree: 25997 primes below 300000'],
    'jobs_invoices.py': ['first run: killed by SIGKILL after 4 invoices',
                         'invoice-07: wayne: 410.00 EUR',
                         'invoice-09: failed: ValueError: negative amount for tyrell: -5',
                         'invoice-07: its worker died mid-call, and it ran again elsewhere: True',
                         'submitting invoice-01 again returns the same job: True',
                         "JobConflict: job 'invoice-01' exists with other arguments",
                         '10 invoices stored, each finished exactly once: True',
                         'at least 4 were finished by the first run, and found stored: True',
                         'invoice-09, asked later: ValueError: negative amount for tyrell'],
    'pool_flaky.py': ["ActorCrashed: worker 'flaky-0' (pid", 'exited with status 3',
                      'all 300 results arrived, in order: True',
                      'crashes survived: 7 (1 reported as ActorCrashed, 6 retried',
                      "pool at full size: 3 workers answer, ['flaky-0', 'flaky-1', "
                      "'flaky-2'], 3 distinct processes"],
    'supervisor_restart.py': ['job failed (attempt 1 failed), restart #1',
                              'job failed (attempt 2 failed), restart #2',
                              'job ran 3 times; final result: 332833500',
                              'store was not restarted: True',
                              "still supervised: ['store']",
                              'b was killed; then stopped: c, a (last started first)',
                              'restarted: a, b, c',
                              'SupervisorError: supervisor gave up: more than 2 restarts',
                              "failures: ['ActorCrashed: exit 7', 'ActorCrashed: exit 7', "
                              "'ActorCrashed: exit 7']"],
    'entities_bank.py': ['alice deposits 100: balance 100',
                         '1000 concurrent deposits on 20 accounts, none lost: True',
                         'overdraft refused: ValueError: insufficient funds: alice has 100',
                         'killed; alice deposits 1: balance 101',
                         'replaced; alice is on accounts-3 again, balance 101',
                         'a client sees 4 workers; bob deposits 7: balance 7'],
}


def run(args, timeout=90):
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}'
    return proc.stdout


def test_every_example_is_checked():
    assert {p.name for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.parametrize('path', EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    out = run([sys.executable, str(path)])
    for line in EXPECTED[path.name]:
        assert line in out


def test_demo_command():
    out = run([sys.executable, '-m', 'tractorish', 'demo',
               '--workers', '2', '--limit', '50000', '--chunks', '5'])
    assert '5133 primes below 50,000, counted by 2 actors' in out
    assert out.count('primes in [') == 5


def test_demo_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, '-m', 'tractorish', 'demo', '--workers', '0'],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert 'usage: tractorish demo' in proc.stderr and 'must be at least 1' in proc.stderr
