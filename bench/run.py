"""tractorish benchmark seed: spawn cost and RPC round trip vs a bare socket.

Usage::

    python bench/run.py [--reps N] [--quick] [--json PATH]

Measures, on this machine and in one run:

1. spawn+teardown per actor: ``start_actor`` + ``portal.cancel_actor()`` +
   process exit, one actor after another;
2. sequential ``portal.run(echo, x=i)`` round trips to one actor;
3. the same round trip over a bare trio TCP socket with msgpack framing to a
   plain Python echo server in a second process (``bench/baseline.py``);
4. the ratio tractorish/baseline.

Each repetition starts fresh processes; tractorish and baseline repetitions
alternate so that drift in machine load hits both alike. Reported values are
medians across repetitions (spawn: median and p90 over all spawns of all
repetitions). Everything runs on loopback; the run gets its own secret and
registry address, so the user's secret file and port 1616 are never touched.
Nothing here asserts on timings: it only reports.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import secrets
import socket
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:  # also works as ``python -m bench.run``
    sys.path.insert(0, BENCH_DIR)

import msgpack  # noqa: E402
import trio  # noqa: E402

import baseline  # noqa: E402
import bench_funcs  # noqa: E402
import tractorish  # noqa: E402

DEFAULTS = dict(reps=5, calls=5000, warmup=500, spawns=3)
QUICK = dict(reps=2, calls=1000, warmup=200, spawns=2)
STOP_WAIT = 10.0  # s; a bound on cleanup only, never on a measurement


# --- statistics ---------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear interpolation between ranks."""
    data = sorted(values)
    if not data:
        return float('nan')
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def rtt_summary(latencies_ns: List[int], elapsed_s: float) -> Dict[str, float]:
    return {
        'p50_us': percentile(latencies_ns, 50) / 1e3,
        'p99_us': percentile(latencies_ns, 99) / 1e3,
        'calls_per_s': len(latencies_ns) / elapsed_s,
    }


def median_of(reps: List[Dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in reps)


# --- the measurements -------------------------------------------------------

def child_of(an: tractorish.ActorNursery, portal: tractorish.Portal) -> Any:
    """The nursery's record of the process behind ``portal``."""
    return next(c for c in an.children if c.portal is portal)


async def stop_actor(portal: tractorish.Portal, child: Any) -> None:
    """Cancel the actor and wait until its process has exited."""
    await portal.cancel_actor()
    await child.wait()


async def spawn_teardown_once(an: tractorish.ActorNursery, name: str) -> Dict[str, float]:
    """Start one actor, cancel it, wait for its process to exit."""
    perf = time.perf_counter
    t0 = perf()
    portal = await an.start_actor(name, enable_modules=['bench_funcs'])
    t1 = perf()
    await stop_actor(portal, child_of(an, portal))
    t2 = perf()
    return {'total_ms': (t2 - t0) * 1e3, 'start_ms': (t1 - t0) * 1e3,
            'teardown_ms': (t2 - t1) * 1e3}


async def tractorish_rtt_once(an: tractorish.ActorNursery, name: str,
                              calls: int, warmup: int) -> Dict[str, float]:
    portal = await an.start_actor(name, enable_modules=['bench_funcs'])
    child = child_of(an, portal)
    try:
        echo = bench_funcs.echo
        run = portal.run
        perf = time.perf_counter_ns
        for i in range(warmup):
            if await run(echo, x=i) != i:
                raise RuntimeError('tractorish echo returned the wrong value')
        gc.collect()
        latencies = [0] * calls
        start = perf()
        for i in range(calls):
            t0 = perf()
            reply = await run(echo, x=i)
            latencies[i] = perf() - t0
            if reply != i:
                raise RuntimeError(f'tractorish echo mismatch: sent {i}, got {reply!r}')
        elapsed = (perf() - start) / 1e9
    finally:
        # wait for the exit too, so the next measurement runs on a quiet
        # machine; bounded so that an error path cannot hang here (the
        # nursery reaps whatever is left, escalating to SIGKILL)
        with trio.move_on_after(STOP_WAIT):
            await stop_actor(portal, child)
    return rtt_summary(latencies, elapsed)


async def baseline_rtt_once(calls: int, warmup: int) -> Dict[str, float]:
    async with baseline.echo_server() as (port, _proc):
        gc.collect()
        latencies, elapsed = await baseline.measure_round_trips(port, calls, warmup)
    return rtt_summary(latencies, elapsed)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


async def run_all(opts: argparse.Namespace, progress: Any) -> Dict[str, Any]:
    load_at_start = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    registry = ('127.0.0.1', free_port())
    spawn: List[Dict[str, float]] = []
    tractor_reps: List[Dict[str, float]] = []
    base_reps: List[Dict[str, float]] = []
    started = time.perf_counter()
    async with tractorish.open_nursery(registry_addrs=[registry]) as an:
        # one untimed spawn first: warms the page cache and the import system
        await spawn_teardown_once(an, 'bench-warmup')
        for rep in range(opts.reps):
            for i in range(opts.spawns):
                spawn.append(await spawn_teardown_once(an, f'bench-spawn-{rep}-{i}'))
            tractor_reps.append(await tractorish_rtt_once(
                an, f'bench-rtt-{rep}', opts.calls, opts.warmup))
            base_reps.append(await baseline_rtt_once(opts.calls, opts.warmup))
            progress(f'rep {rep + 1}/{opts.reps}: '
                     f'spawn {statistics.median(s["total_ms"] for s in spawn[-opts.spawns:]):.1f} ms, '
                     f'tractorish p50 {tractor_reps[-1]["p50_us"]:.1f} us, '
                     f'baseline p50 {base_reps[-1]["p50_us"]:.1f} us')

    totals = [s['total_ms'] for s in spawn]
    t = {k: median_of(tractor_reps, k) for k in ('p50_us', 'p99_us', 'calls_per_s')}
    b = {k: median_of(base_reps, k) for k in ('p50_us', 'p99_us', 'calls_per_s')}
    return {
        'config': {
            'reps': opts.reps, 'calls_per_rep': opts.calls, 'warmup_calls': opts.warmup,
            'spawns_per_rep': opts.spawns, 'quick': opts.quick,
        },
        'machine': {
            'python': platform.python_version(),
            'implementation': platform.python_implementation(),
            'platform': platform.platform(),
            'cpus': os.cpu_count(),
            'trio': trio.__version__,
            'msgpack': '.'.join(map(str, msgpack.version)),
            'tractorish': tractorish.__version__,
            'loadavg_1min_at_start': load_at_start,
            'loadavg_1min_at_end': os.getloadavg()[0] if hasattr(os, 'getloadavg') else None,
        },
        'spawn_teardown_ms': {
            'samples': len(totals),
            'median': statistics.median(totals),
            'p90': percentile(totals, 90),
            'start_median': statistics.median(s['start_ms'] for s in spawn),
            'teardown_median': statistics.median(s['teardown_ms'] for s in spawn),
            'raw': spawn,
        },
        'round_trip': {
            'tractorish': {**t, 'reps': tractor_reps},
            'baseline': {**b, 'reps': base_reps},
            'ratio': {
                'p50': t['p50_us'] / b['p50_us'],
                'p99': t['p99_us'] / b['p99_us'],
                'calls_per_s': t['calls_per_s'] / b['calls_per_s'],
            },
        },
        'wall_s': time.perf_counter() - started,
    }


# --- output -------------------------------------------------------------------

def spread(reps: List[Dict[str, float]], key: str, fmt: str) -> str:
    values = [r[key] for r in reps]
    return f'{format(min(values), fmt)}..{format(max(values), fmt)}'


def format_table(res: Dict[str, Any]) -> str:
    cfg, mach = res['config'], res['machine']
    sp, rt = res['spawn_teardown_ms'], res['round_trip']
    t, b, ratio = rt['tractorish'], rt['baseline'], rt['ratio']
    head = (f'tractorish {mach["tractorish"]} bench: {mach["implementation"]} '
            f'{mach["python"]}, trio {mach["trio"]}, msgpack {mach["msgpack"]}, '
            f'{mach["cpus"]} CPUs, {mach["platform"]}\n'
            f'{cfg["reps"]} reps; spawn: {cfg["spawns_per_rep"]} actors/rep '
            f'({sp["samples"]} samples); round trip: {cfg["calls_per_rep"]} '
            f'sequential calls/rep after {cfg["warmup_calls"]} warm-up; '
            f'values are medians across reps, [min..max] in brackets')
    rows = [
        ('metric', 'tractorish', 'baseline', 'tractorish/baseline'),
        ('spawn+teardown median (ms)', f'{sp["median"]:.1f}', '-', '-'),
        ('spawn+teardown p90 (ms)', f'{sp["p90"]:.1f}', '-', '-'),
        ('  of which start_actor (ms)', f'{sp["start_median"]:.1f}', '-', '-'),
        ('  of which cancel+exit (ms)', f'{sp["teardown_median"]:.1f}', '-', '-'),
        ('round trip p50 (us)',
         f'{t["p50_us"]:.1f} [{spread(t["reps"], "p50_us", ".1f")}]',
         f'{b["p50_us"]:.1f} [{spread(b["reps"], "p50_us", ".1f")}]',
         f'{ratio["p50"]:.2f}x'),
        ('round trip p99 (us)',
         f'{t["p99_us"]:.1f} [{spread(t["reps"], "p99_us", ".1f")}]',
         f'{b["p99_us"]:.1f} [{spread(b["reps"], "p99_us", ".1f")}]',
         f'{ratio["p99"]:.2f}x'),
        ('calls/s',
         f'{t["calls_per_s"]:,.0f} [{spread(t["reps"], "calls_per_s", ",.0f")}]',
         f'{b["calls_per_s"]:,.0f} [{spread(b["reps"], "calls_per_s", ",.0f")}]',
         f'{ratio["calls_per_s"]:.2f}x'),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]

    def line(r: Sequence[str]) -> str:
        return '  '.join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])])

    rule = '-' * len(line(rows[0]))
    body = [line(rows[0]), rule] + [line(r) for r in rows[1:]]
    tail = [rule, f'total wall time {res["wall_s"]:.1f} s']
    start, end = mach['loadavg_1min_at_start'], mach['loadavg_1min_at_end']
    if start is not None and end is not None:
        # this run itself keeps about one CPU busy; more means other work
        busy = start > 0.5 * (mach['cpus'] or 1) or end > 1.0 + 0.5 * (mach['cpus'] or 1)
        tail.append(f'1-min load average: {start:.2f} at start, {end:.2f} at end'
                    + (' (the machine was busy: expect noisy numbers)' if busy else ''))
    return '\n'.join([head, '', *body, *tail])


# --- entry point ------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--reps', type=int, help=f'repetitions (default {DEFAULTS["reps"]}, '
                                            f'--quick {QUICK["reps"]})')
    p.add_argument('--quick', action='store_true',
                   help='fewer reps, calls and spawns: a smoke run of a few seconds')
    p.add_argument('--calls', type=int, help='measured round trips per rep '
                                             f'(default {DEFAULTS["calls"]})')
    p.add_argument('--warmup', type=int, help='untimed round trips before each rep '
                                              f'(default {DEFAULTS["warmup"]})')
    p.add_argument('--spawns', type=int, help='actors spawned per rep '
                                              f'(default {DEFAULTS["spawns"]})')
    p.add_argument('--json', metavar='PATH', help='also write the results as JSON here')
    p.add_argument('-q', '--no-progress', action='store_true',
                   help='print only the table')
    opts = p.parse_args(argv)
    base = QUICK if opts.quick else DEFAULTS
    for key, value in base.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    for key in ('reps', 'calls', 'spawns'):
        if getattr(opts, key) < 1:
            p.error(f'--{key} must be at least 1')
    if opts.warmup < 0:
        p.error('--warmup must not be negative')
    return opts


def is_interrupt(err: BaseException) -> bool:
    """Ctrl-C, alone or inside an exception group.

    A KeyboardInterrupt that trio delivers into one of tractorish's own
    tasks can come out of the runtime grouped with its consequences (such as
    TransportClosed) instead of alone.
    """
    if isinstance(err, KeyboardInterrupt):
        return True
    subgroup = getattr(err, 'subgroup', None)  # a (Base)ExceptionGroup
    return subgroup is not None and subgroup(KeyboardInterrupt) is not None


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = parse_args(argv)
    # A private secret for this run: never create or read the user's file.
    os.environ['TRACTORISH_SECRET'] = secrets.token_hex(32)

    def progress(msg: str) -> None:
        if not opts.no_progress:
            print(msg, file=sys.stderr, flush=True)

    try:
        res = trio.run(run_all, opts, progress)
    except BaseException as err:
        if not is_interrupt(err):
            raise
        print('interrupted', file=sys.stderr)
        return 130
    print(format_table(res))
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump(res, f, indent=2)
            f.write('\n')
        print(f'wrote {opts.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
