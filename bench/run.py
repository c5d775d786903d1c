"""tractorish benchmark: spawn cost, round trips and streams vs a bare socket.

Usage::

    python bench/run.py [--reps N] [--quick] [--json PATH]

Measures, on this machine and in one run:

1. spawn+teardown per actor: ``start_actor`` + ``portal.cancel_actor()`` +
   process exit, one actor after another;
2. sequential ``portal.run(echo, x=i)`` round trips to one actor;
3. sequential round trips on a context's stream: the caller sends one value
   to ``bench_funcs.echo_ctx``, which sends it back, and waits for it;
4. one-way stream throughput, ``portal.open_stream_from`` of an async
   generator, timed from opening the stream to its exhaustion: small ints
   (``bench_funcs.count``) and 1 KiB byte strings (``bench_funcs.blobs``);
5. the same over a bare trio TCP socket with msgpack framing to a plain
   Python server in a second process (``bench/baseline.py``): 2 and 3 are
   both compared with its echo loop; for 4 it packs the values one by one
   and writes them in ~64 KiB batches, and the client feeds what it reads
   to a ``msgpack.Unpacker``;
6. the ratio tractorish/baseline of each.

Each repetition starts fresh processes (one actor for 2-4, one baseline
server); tractorish and baseline repetitions alternate so that drift in
machine load hits both alike. Reported values are medians across
repetitions (spawn: median and p90 over all spawns of all repetitions; the
baseline streams, being short, run five times per repetition, and the
repetition counts their median). Every received value is checked. Everything
runs on loopback; the run gets its own secret and registry address, so the
user's secret file and port 1616 are never touched. Nothing here asserts on
timings: it only reports.

Stream throughput on a machine with few CPUs depends on whether the
scheduler runs the two processes on one CPU or on two (the bare baseline is
up to ~3x faster on two; tractorish, whose two sides mostly take turns, can
be faster on one), so expect wide [min..max] ranges there; nothing is pinned.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import reprlib
import secrets
import socket
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:  # also works as ``python -m bench.run``
    sys.path.insert(0, BENCH_DIR)

import msgpack  # noqa: E402
import trio  # noqa: E402

import baseline  # noqa: E402
import bench_funcs  # noqa: E402
import tractorish  # noqa: E402

DEFAULTS = dict(reps=5, calls=5000, warmup=500, spawns=3,
                stream_ints=200_000, stream_kib=100_000)
QUICK = dict(reps=2, calls=1000, warmup=200, spawns=2,
             stream_ints=40_000, stream_kib=20_000)
STOP_WAIT = 10.0  # s; a bound on cleanup only, never on a measurement
STREAM_WARMUP = 2000  # values in the untimed stream before each timed one
BASELINE_STREAM_RUNS = 5  # timed baseline streams per repetition (median)
KIB = 1024


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


def stream_summary(n: int, size: int, elapsed_s: float) -> Dict[str, float]:
    """Throughput of one stream: values/s and, for payloads, MB/s (10^6 B)."""
    return {'msgs_per_s': n / elapsed_s, 'mb_per_s': n * size / elapsed_s / 1e6,
            'elapsed_s': elapsed_s}


def median_of(reps: List[Dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in reps)


def medians(reps: List[Dict[str, float]]) -> Dict[str, float]:
    return {key: median_of(reps, key) for key in reps[0]}


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


async def rpc_round_trips(portal: tractorish.Portal, calls: int,
                          warmup: int) -> Dict[str, float]:
    """Sequential ``portal.run(echo, x=i)``."""
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
    return rtt_summary(latencies, elapsed)


async def context_round_trips(portal: tractorish.Portal, calls: int,
                              warmup: int) -> Dict[str, float]:
    """Sequential send-one, receive-one on the stream of ``echo_ctx``.

    The payload is the baseline echo's (``{'x': i}``); opening and closing
    the context are not timed.
    """
    perf = time.perf_counter_ns
    async with portal.open_context(bench_funcs.echo_ctx) as (ctx, _first):
        async with ctx.open_stream() as stream:
            send, receive = stream.send, stream.receive
            for i in range(warmup):
                await send({'x': i})
                if await receive() != {'x': i}:
                    raise RuntimeError('tractorish context echo returned the wrong value')
            gc.collect()
            latencies = [0] * calls
            start = perf()
            for i in range(calls):
                t0 = perf()
                await send({'x': i})
                reply = await receive()
                latencies[i] = perf() - t0
                if reply != {'x': i}:
                    raise RuntimeError(f'tractorish context echo mismatch: '
                                       f'sent {i}, got {reply!r}')
            elapsed = (perf() - start) / 1e9
    received = await ctx.result()
    if received != warmup + calls:
        raise RuntimeError(f'echo_ctx saw {received} values, sent {warmup + calls}')
    return rtt_summary(latencies, elapsed)


async def stream_once(portal: tractorish.Portal, n: int, size: int) -> float:
    """One ``open_stream_from`` of ``n`` values, every one checked; wall time in s.

    ``size`` 0 streams the ints ``0 .. n-1`` (``count``), else ``n`` byte
    strings of ``size`` bytes (``blobs``). Timed from opening the stream to
    its exhaustion (not the block's exit after it).
    """
    perf = time.perf_counter_ns
    got = 0
    if size:
        start = perf()
        async with portal.open_stream_from(bench_funcs.blobs, n=n, size=size) as stream:
            async for value in stream:
                if len(value) != size:
                    raise RuntimeError(f'tractorish stream: value {got} has {len(value)} bytes')
                got += 1
            elapsed = (perf() - start) / 1e9
    else:
        start = perf()
        async with portal.open_stream_from(bench_funcs.count, n=n) as stream:
            async for value in stream:
                if value != got:
                    raise RuntimeError(f'tractorish stream: expected {got}, '
                                       f'got {reprlib.repr(value)}')
                got += 1
            elapsed = (perf() - start) / 1e9
    if got != n:
        raise RuntimeError(f'tractorish stream: expected {n} values, got {got}')
    return elapsed


async def tractorish_stream(portal: tractorish.Portal, n: int, size: int) -> Dict[str, float]:
    await stream_once(portal, min(n, STREAM_WARMUP), size)
    gc.collect()
    return stream_summary(n, size, await stream_once(portal, n, size))


async def tractorish_rep(an: tractorish.ActorNursery, name: str,
                         opts: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """Round trips, context round trips and streams, all to one fresh actor."""
    portal = await an.start_actor(name, enable_modules=['bench_funcs'])
    child = child_of(an, portal)
    try:
        return {
            'rpc': await rpc_round_trips(portal, opts.calls, opts.warmup),
            'ctx': await context_round_trips(portal, opts.calls, opts.warmup),
            'ints': await tractorish_stream(portal, opts.stream_ints, 0),
            'kib': await tractorish_stream(portal, opts.stream_kib, KIB),
        }
    finally:
        # wait for the exit too, so the next measurement runs on a quiet
        # machine; bounded so that an error path cannot hang here (the
        # nursery reaps whatever is left, escalating to SIGKILL)
        with trio.move_on_after(STOP_WAIT):
            await stop_actor(portal, child)


async def baseline_stream(port: int, n: int, size: int) -> Dict[str, float]:
    await baseline.measure_stream(port, min(n, STREAM_WARMUP), size)
    runs = []
    for _ in range(BASELINE_STREAM_RUNS):
        gc.collect()
        runs.append(await baseline.measure_stream(port, n, size))
    return stream_summary(n, size, statistics.median(runs))


async def baseline_rep(opts: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """The echo loop and the streams, all to one fresh baseline server."""
    async with baseline.echo_server() as (port, _proc):
        gc.collect()
        latencies, elapsed = await baseline.measure_round_trips(port, opts.calls, opts.warmup)
        return {
            'rpc': rtt_summary(latencies, elapsed),
            'ints': await baseline_stream(port, opts.stream_ints, 0),
            'kib': await baseline_stream(port, opts.stream_kib, KIB),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def compare(t_reps: List[Dict[str, float]], b_reps: List[Dict[str, float]],
            ratios: Sequence[str], **extra: Any) -> Dict[str, Any]:
    """Medians of both sides, their ratios (tractorish/baseline) and the raw reps."""
    t, b = medians(t_reps), medians(b_reps)
    return {**extra,
            'tractorish': {**t, 'reps': t_reps},
            'baseline': {**b, 'reps': b_reps},
            'ratio': {key: t[key] / b[key] for key in ratios}}


async def run_all(opts: argparse.Namespace, progress: Any) -> Dict[str, Any]:
    load_at_start = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    registry = ('127.0.0.1', free_port())
    spawn: List[Dict[str, float]] = []
    tractor_reps: List[Dict[str, Dict[str, float]]] = []
    base_reps: List[Dict[str, Dict[str, float]]] = []
    started = time.perf_counter()
    async with tractorish.open_nursery(registry_addrs=[registry]) as an:
        # one untimed spawn first: warms the page cache and the import system
        await spawn_teardown_once(an, 'bench-warmup')
        for rep in range(opts.reps):
            for i in range(opts.spawns):
                spawn.append(await spawn_teardown_once(an, f'bench-spawn-{rep}-{i}'))
            tractor_reps.append(await tractorish_rep(an, f'bench-rep-{rep}', opts))
            base_reps.append(await baseline_rep(opts))
            t, b = tractor_reps[-1], base_reps[-1]
            progress(f'rep {rep + 1}/{opts.reps}: '
                     f'spawn {statistics.median(s["total_ms"] for s in spawn[-opts.spawns:]):.1f} ms; '
                     f'p50 rpc {t["rpc"]["p50_us"]:.1f} us, ctx {t["ctx"]["p50_us"]:.1f} us, '
                     f'baseline {b["rpc"]["p50_us"]:.1f} us; '
                     f'ints {t["ints"]["msgs_per_s"]:,.0f}/s (baseline '
                     f'{b["ints"]["msgs_per_s"]:,.0f}/s); '
                     f'1 KiB {t["kib"]["mb_per_s"]:.1f} MB/s (baseline '
                     f'{b["kib"]["mb_per_s"]:.1f} MB/s)')

    def side(reps: List[Dict[str, Dict[str, float]]], what: str) -> List[Dict[str, float]]:
        return [r[what] for r in reps]

    totals = [s['total_ms'] for s in spawn]
    rtt_ratios = ('p50_us', 'p99_us', 'calls_per_s')
    return {
        'config': {
            'reps': opts.reps, 'calls_per_rep': opts.calls, 'warmup_calls': opts.warmup,
            'spawns_per_rep': opts.spawns, 'stream_ints_per_rep': opts.stream_ints,
            'stream_kib_per_rep': opts.stream_kib, 'stream_warmup_values': STREAM_WARMUP,
            'baseline_stream_runs_per_rep': BASELINE_STREAM_RUNS, 'quick': opts.quick,
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
        # ratios: tractorish/baseline of the medians across reps
        'round_trip': compare(side(tractor_reps, 'rpc'), side(base_reps, 'rpc'), rtt_ratios),
        # the baseline is the same echo loop as round_trip's
        'context_round_trip': compare(side(tractor_reps, 'ctx'), side(base_reps, 'rpc'),
                                      rtt_ratios),
        'stream_ints': compare(side(tractor_reps, 'ints'), side(base_reps, 'ints'),
                               ('msgs_per_s',), values_per_rep=opts.stream_ints),
        'stream_1kib': compare(side(tractor_reps, 'kib'), side(base_reps, 'kib'),
                               ('msgs_per_s', 'mb_per_s'), values_per_rep=opts.stream_kib,
                               value_bytes=KIB),
        'wall_s': time.perf_counter() - started,
    }


# --- output -------------------------------------------------------------------

def spread(reps: List[Dict[str, float]], key: str, fmt: str) -> str:
    values = [r[key] for r in reps]
    return f'{format(min(values), fmt)}..{format(max(values), fmt)}'


def format_table(res: Dict[str, Any]) -> str:
    cfg, mach = res['config'], res['machine']
    sp = res['spawn_teardown_ms']
    head = (f'tractorish {mach["tractorish"]} bench: {mach["implementation"]} '
            f'{mach["python"]}, trio {mach["trio"]}, msgpack {mach["msgpack"]}, '
            f'{mach["cpus"]} CPUs, {mach["platform"]}\n'
            f'{cfg["reps"]} reps; spawn: {cfg["spawns_per_rep"]} actors/rep '
            f'({sp["samples"]} samples); round trips: {cfg["calls_per_rep"]:,} '
            f'sequential/rep after {cfg["warmup_calls"]:,} warm-up;\n'
            f'streams: {cfg["stream_ints_per_rep"]:,} ints and {cfg["stream_kib_per_rep"]:,} '
            f'x 1 KiB/rep, timed from open to exhaustion after a {cfg["stream_warmup_values"]:,}'
            f'-value warm-up (baseline: median of {cfg["baseline_stream_runs_per_rep"]}/rep); '
            f'MB = 10^6 payload bytes;\n'
            f'values are medians across reps, [min..max] in brackets; ctx echo is compared '
            f'with the same baseline echo loop as rpc')

    def measured(section: Dict[str, Any], key: str, fmt: str) -> Tuple[str, str, str]:
        t, b = section['tractorish'], section['baseline']
        ratio = section['ratio'][key]
        return (f'{format(t[key], fmt)} [{spread(t["reps"], key, fmt)}]',
                f'{format(b[key], fmt)} [{spread(b["reps"], key, fmt)}]',
                f'{ratio:.2f}x' if ratio >= 0.1 else f'{ratio:.3f}x')

    def rtt_rows(label: str, section: Dict[str, Any]) -> List[Tuple[str, ...]]:
        return [(f'{label} p50 (us)', *measured(section, 'p50_us', '.1f')),
                (f'{label} p99 (us)', *measured(section, 'p99_us', '.1f')),
                (f'{label} round trips/s', *measured(section, 'calls_per_s', ',.0f'))]

    kib = res['stream_1kib']
    rows = [
        ('metric', 'tractorish', 'baseline', 'tractorish/baseline'),
        ('spawn+teardown median (ms)', f'{sp["median"]:.1f}', '-', '-'),
        ('spawn+teardown p90 (ms)', f'{sp["p90"]:.1f}', '-', '-'),
        ('  of which start_actor (ms)', f'{sp["start_median"]:.1f}', '-', '-'),
        ('  of which cancel+exit (ms)', f'{sp["teardown_median"]:.1f}', '-', '-'),
        *rtt_rows('rpc round trip', res['round_trip']),
        *rtt_rows('ctx echo round trip', res['context_round_trip']),
        ('stream ints msgs/s', *measured(res['stream_ints'], 'msgs_per_s', ',.0f')),
        ('stream 1 KiB MB/s', *measured(kib, 'mb_per_s', ',.1f')),
        ('stream 1 KiB msgs/s', *measured(kib, 'msgs_per_s', ',.0f')),
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
                   help='fewer reps, calls, spawns and values: a smoke run of a few seconds')
    p.add_argument('--calls', type=int, help='measured round trips per rep '
                                             f'(default {DEFAULTS["calls"]})')
    p.add_argument('--warmup', type=int, help='untimed round trips before each rep '
                                              f'(default {DEFAULTS["warmup"]})')
    p.add_argument('--spawns', type=int, help='actors spawned per rep '
                                              f'(default {DEFAULTS["spawns"]})')
    p.add_argument('--stream-ints', type=int, metavar='N',
                   help='small ints per timed stream '
                        f'(default {DEFAULTS["stream_ints"]:,}, --quick {QUICK["stream_ints"]:,})')
    p.add_argument('--stream-kib', type=int, metavar='N',
                   help='1 KiB values per timed stream '
                        f'(default {DEFAULTS["stream_kib"]:,}, --quick {QUICK["stream_kib"]:,})')
    p.add_argument('--json', metavar='PATH', help='also write the results as JSON here')
    p.add_argument('-q', '--no-progress', action='store_true',
                   help='print only the table')
    opts = p.parse_args(argv)
    base = QUICK if opts.quick else DEFAULTS
    for key, value in base.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    for key in ('reps', 'calls', 'spawns', 'stream_ints', 'stream_kib'):
        if getattr(opts, key) < 1:
            p.error(f'--{key.replace("_", "-")} must be at least 1')
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
