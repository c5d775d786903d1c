"""tractorish benchmark: spawning, calls, streams, errors, memory, imports, pools, jobs, entities.

Usage::

    python bench/run.py [--quick] [--only GROUP[,GROUP]] [--reps N] [--json PATH]

One run prints one table: every value is measured in this run next to a
baseline measured in the same run, with the ratio of the two. The groups
(``--only`` picks some; all run by default, in this order):

spawn
    Per spawn backend (``forkserver``, ``trio``): ``start_actor`` + a first
    ``portal.run`` + ``portal.cancel_actor()`` + the process's exit, one
    actor after another (median and p90 over every spawn of every rep); and
    8 actors started at once (``start_actor`` in a trio nursery), timed until
    all 8 have answered a call. The forkserver keeps a spare child forked
    ahead (its trio started), which a spawn after a quiet moment gets: the
    sequential figure is that case; once more with
    ``forkserver_spare=False`` (each spawn waits for its own fork: the
    figure without the spare), and 8 at once, where one gets the spare and
    seven their own forks. Baselines (``floors.py``): the *process
    start floor*, a bare ``python -c "import trio, msgpack, socket; <connect
    back, send one byte>"`` started with ``Popen`` (what the ``trio``
    backend is compared with), and the *fork floor*, a child forked by a
    helper that has imported trio and msgpack, which connects back and sends
    one byte (what the ``forkserver`` backend is compared with). A floor's
    *start* ends at the byte, its *total* at the reaped exit.
first_actor
    A fresh program per sample (``first_actor_program.py``), per backend:
    from ``trio.run(main)`` to its first actor's first answer, against the
    process start floor's start (to the byte), the two alternating (and
    each program over the floor run beside it, which shared its moment's
    load); and a second actor asked for right after the first answered
    (start + call).
    On the ``forkserver`` backend the first actor starts as a fresh
    interpreter, the zygote is started once it has connected back, and the
    second waits for the zygote and is forked
    (``first_actor.py``).
rpc
    Sequential ``portal.run(echo, x=i)`` over TCP and over Unix sockets
    (``RuntimeConfig(transport='uds')``), p50/p99 and calls/s, against a bare
    trio echo over TCP and over a Unix socket (``baseline.py``: msgpack on
    one connection to a plain server process); over Unix sockets once more
    with ``spin_us=0`` (a reader parks at once instead of polling for a
    moment: the runtime's behaviour before it polled); and 32 tasks each making
    sequential calls on ONE portal, total calls/s, against 32 tasks
    multiplexed on one bare TCP connection (a request id in each message,
    one reader task dispatching the replies).
streams
    Sequential round trips on a context's stream (``echo_ctx``), compared
    with the bare echo loop; one-way stream throughput of small ints and of
    1 KiB byte strings (``open_stream_from``, timed from open to
    exhaustion), compared with the bare server packing the same values one
    by one into ~64 KiB writes (median of 5 runs per rep).
errors
    A remote exception reaching the caller (``portal.run`` of a function
    that raises), compared with an echo call to the same actor, the two
    interleaved.
memory
    USS (``psutil`` ``memory_full_info().uss``: the memory only that process
    holds) of one idle actor per backend; then, with 32 idle actors per
    backend, the increment per actor of the summed USS over the actors, and
    of the summed PSS of the actors and the zygote with its spare (PSS
    shares each shared page among its holders, so the sum is the tree's
    real footprint). Here the ratio is forkserver/trio.
import
    Wall time of ``python -c "import tractorish"`` against ``python -c
    "import trio, msgpack"``, alternating.
asyncio
    In an actor started with ``infect_asyncio=True``: a ``to_asyncio.run_task``
    round trip of an asyncio coroutine that returns at once, against a
    ``portal.run`` round trip to that actor and a plain trio call; values
    per second from an asyncio task through ``to_asyncio.open_channel_from``,
    against a trio memory channel between two tasks of that actor.
pool
    ``open_actor_pool(2, concurrency=4)``: ``pool.map`` of a trivial async
    function over many items (calls/s), and the same calls made by as many
    concurrent ``pool.run`` callers, most of them waiting for a slot
    (calls/s, against the map's); and ``open_actor_pool(2)``
    (concurrency 1): ``pool.starmap`` of a CPU-bound plain function (counting
    primes; chunks calibrated here to ~30 ms each) over the same chunks
    (wall time); both against ``concurrent.futures.ProcessPoolExecutor(2)``
    (``map``), ``trio_parallel.run_sync`` (two workers; skipped if
    trio-parallel is not installed) and ``multiprocessing.Pool(2)``
    (``apply`` per item, sequential, for the tiny calls; ``starmap`` for the
    CPU-bound chunks). Every pool is started and warmed up, untimed, before
    any measurement; the other pools' workers use multiprocessing's
    ``forkserver`` start method.
jobs
    Durable jobs (``open_job_queue``) on ``open_actor_pool(2,
    concurrency=4)``: many concurrent ``jobs.run`` calls of a trivial async
    function (jobs/s: each recorded, claimed and finished in the store, every
    commit durable), against as many concurrent ``pool.run`` calls of it
    (calls/s); and one job at a time against one call at a time. On a SQLite
    file (WAL, ``synchronous=FULL``) and on a PostgreSQL server started here
    for the run, with fsync on (``tests/jobs/pg_server.py``; skipped if no
    server or psycopg is installed). Each repetition uses a new store.
entities
    ``open_entity_cluster`` of a trivial entity type on 4 workers, over
    many keys: ``cluster.ask`` one at a time (p50, p99, asks/s), then from
    many tasks at once (asks/s), against ``portal.run`` of the same no-op
    to 4 plain actors of the same tree, round-robin (one at a time, then
    from as many tasks); and asks that change the entity's state on a
    cluster with a SQLite store (a save per message), against the same asks
    without one. Every key's entity is made, and every session opened,
    before anything is timed.

Within a group, tractorish and baseline repetitions alternate so that drift
in machine load hits both alike; values are medians across repetitions with
[min..max] in brackets. Every received value is checked. Everything runs on
loopback; the run gets its own secret and registry addresses, so the user's
secret file and port 1616 are never touched. Every process started is reaped
on success, on error and on Ctrl-C. Nothing here asserts on timings: it only
reports.

On a machine with few CPUs, stream throughput depends on whether the
scheduler runs the two processes on one CPU or on two, so expect wide
[min..max] ranges there; nothing is pinned.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import gc
import itertools
import json
import math
import multiprocessing
import os
import platform
import reprlib
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import (Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Sequence,
                    Set, Tuple)

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:  # also works as ``python -m bench.run``
    sys.path.insert(0, BENCH_DIR)

import msgpack  # noqa: E402
import trio  # noqa: E402

import baseline  # noqa: E402
import bench_funcs  # noqa: E402
import floors  # noqa: E402
from first_actor import first_actor_group  # noqa: E402
import tractorish  # noqa: E402

try:
    import trio_parallel
except ImportError:  # an optional comparison
    trio_parallel = None
try:
    import psutil
except ImportError:  # the memory group needs it
    psutil = None

GROUPS = ('spawn', 'first_actor', 'rpc', 'streams', 'errors', 'memory', 'import', 'pool',
          'asyncio', 'jobs', 'entities')
BACKENDS = ('forkserver', 'trio')

DEFAULTS = dict(reps=5, spawn_reps=5, calls=3000, warmup=300, spawns=4, concurrent_spawns=8,
                tasks=32, task_calls=100, error_calls=200,
                stream_ints=100_000, stream_kib=50_000,
                mem_reps=2, mem_actors=32, imports=20,
                pool_items=2000, pool_chunks=40, aio_calls=3000, aio_values=100_000,
                job_items=2000, job_serial=200, entity_calls=3000, entity_keys=1000)
QUICK = dict(reps=2, spawn_reps=1, calls=500, warmup=100, spawns=2, concurrent_spawns=8,
             tasks=32, task_calls=20, error_calls=50,
             stream_ints=20_000, stream_kib=10_000,
             mem_reps=1, mem_actors=4, imports=3,
             pool_items=300, pool_chunks=6, aio_calls=300, aio_values=10_000,
             job_items=300, job_serial=50, entity_calls=500, entity_keys=200)
STOP_WAIT = 10.0  # s; a bound on cleanup only, never on a measurement
STREAM_WARMUP = 2000  # values in the untimed stream before each timed one
BASELINE_STREAM_RUNS = 5  # timed baseline streams per repetition (median)
KIB = 1024
MIB = 1024 * 1024
IDLE_SETTLE = 0.25  # s the actors are left alone before their memory is read
POOL_SIZE, POOL_CONCURRENCY = 2, 4
CHUNK_TARGET_MS = 30.0
# the other pools' workers are forked by multiprocessing's forkserver, as
# tractorish's are by its zygote (starting them is not timed)
MP_START_METHOD = 'forkserver'
PRIMES_FROM = 1_000_000

_PACKAGE_PARENT = os.path.dirname(BENCH_DIR)


# --- statistics -----------------------------------------------------------------

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


# --- the table --------------------------------------------------------------------

class Table:
    """Rows of (metric, tractorish, baseline, ratio, baseline is).

    A value is a list (one entry per rep: shown as median [min..max]) or a
    single number; the ratio is of the two medians.
    """

    def __init__(self) -> None:
        self.rows: List[Dict[str, Any]] = []

    def section(self, title: str) -> None:
        self.rows.append({'section': title})

    def add(self, metric: str, ours: Any, base: Any = None, base_label: str = '',
            fmt: str = '.1f') -> None:
        ours_v, base_v = _center(ours), _center(base)
        ratio = (ours_v / base_v if ours_v is not None and base_v
                 else None)
        self.rows.append({'metric': metric, 'tractorish': ours, 'baseline': base,
                          'tractorish_value': ours_v, 'baseline_value': base_v,
                          'ratio': ratio, 'baseline_is': base_label, 'fmt': fmt})


def _center(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return statistics.median(value) if value else None
    return float(value)


def _show(value: Any, fmt: str) -> str:
    if value is None:
        return '-'
    if isinstance(value, (list, tuple)):
        if not value:
            return '-'
        mid = format(statistics.median(value), fmt)
        if len(value) == 1:
            return mid
        return f'{mid} [{format(min(value), fmt)}..{format(max(value), fmt)}]'
    return format(value, fmt)


def _show_ratio(ratio: Optional[float]) -> str:
    if ratio is None:
        return '-'
    return f'{ratio:.2f}x' if ratio >= 0.1 else f'{ratio:.3f}x'


# --- tractorish helpers ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def open_tree(*, steady: bool = True,
                    **config: Any) -> AsyncIterator[tractorish.ActorNursery]:
    """A root actor with ``RuntimeConfig(**config)`` and a private registry.

    ``steady`` (on the forkserver backend): the tree's zygote is started and
    waited for first, so that what is measured is a tree past its first
    moments, not one whose zygote's start competes for the CPU (the
    ``first_actor`` group measures those moments).
    """
    registry = ('127.0.0.1', free_port())
    async with tractorish.open_nursery(registry_addrs=[registry],
                                       config=tractorish.RuntimeConfig(**config)) as an:
        if steady and tractorish.current_actor().config.start_method == 'forkserver':
            await warm_zygote(an, 'zygote-warmup')
        yield an


def child_of(an: tractorish.ActorNursery, portal: tractorish.Portal) -> Any:
    """The nursery's record of the process behind ``portal``."""
    return next(c for c in an.children if c.portal is portal)


async def stop_actor(portal: tractorish.Portal, child: Any) -> None:
    """Cancel the actor and wait until its process has exited."""
    await portal.cancel_actor()
    await child.wait()


async def stop_all(an: tractorish.ActorNursery, portals: Sequence[tractorish.Portal]) -> None:
    """Stop these actors concurrently; bounded (the nursery reaps what is left)."""
    children = [child_of(an, p) for p in portals]
    with trio.move_on_after(STOP_WAIT):
        async with trio.open_nursery() as nursery:
            for portal, child in zip(portals, children):
                nursery.start_soon(stop_actor, portal, child)


@contextlib.asynccontextmanager
async def one_actor(an: tractorish.ActorNursery, name: str) -> AsyncIterator[tractorish.Portal]:
    """A fresh actor for the block, stopped (and waited for) on the way out."""
    portal = await an.start_actor(name, enable_modules=['bench_funcs'])
    child = child_of(an, portal)
    try:
        yield portal
    finally:
        # wait for the exit too, so the next measurement runs on a quiet
        # machine; bounded so that an error path cannot hang here (the
        # nursery reaps whatever is left, escalating to SIGKILL)
        with trio.move_on_after(STOP_WAIT):
            await stop_actor(portal, child)


async def warm_zygote(an: tractorish.ActorNursery, name: str) -> None:
    """On the forkserver backend, make sure the tree's zygote is up: a
    runtime's first actor starts fresh while its zygote starts. Starts and
    stops one actor if there is no zygote yet, then waits for it."""
    from tractorish.spawn import spawn_statistics
    if spawn_statistics().zygote_pid is None:
        portal = await an.start_actor(name, enable_modules=['bench_funcs'])
        await stop_actor(portal, child_of(an, portal))
    with trio.fail_after(STOP_WAIT * 3):  # a startup bound, not a measurement
        while not spawn_statistics().zygote_ready:
            await trio.sleep(0.005)


async def check_echo(portal: tractorish.Portal, i: int) -> None:
    reply = await portal.run(bench_funcs.echo, x=i)
    if reply != i:
        raise RuntimeError(f'tractorish echo mismatch: sent {i}, got {reply!r}')


# --- spawn -------------------------------------------------------------------------

async def spawn_once(an: tractorish.ActorNursery, name: str) -> Dict[str, float]:
    """Start one actor, call it once, cancel it, wait for its process to exit."""
    perf = time.perf_counter
    t0 = perf()
    portal = await an.start_actor(name, enable_modules=['bench_funcs'])
    t1 = perf()
    await check_echo(portal, 1)
    t2 = perf()
    await stop_actor(portal, child_of(an, portal))
    t3 = perf()
    return {'total_ms': (t3 - t0) * 1e3, 'start_ms': (t1 - t0) * 1e3,
            'call_ms': (t2 - t1) * 1e3, 'start_call_ms': (t2 - t0) * 1e3,
            'teardown_ms': (t3 - t2) * 1e3}


async def spawn_concurrent(an: tractorish.ActorNursery, n: int, tag: str) -> float:
    """``n`` actors started at once: ms until every one has answered a call.

    They are stopped afterwards, untimed.
    """
    portals: List[tractorish.Portal] = []

    async def one(i: int) -> None:
        portal = await an.start_actor(f'{tag}-{i}', enable_modules=['bench_funcs'])
        portals.append(portal)
        await check_echo(portal, i)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    elapsed = time.perf_counter() - t0
    await stop_all(an, portals)
    return elapsed * 1e3


# (label, start method, config): the forkserver keeps a spare forked ahead
# by default; without one, a spawn waits for its fork and trio's start
SPAWN_VARIANTS = (('forkserver', 'forkserver', {}),
                  ('forkserver, no spare', 'forkserver', {'forkserver_spare': False}),
                  ('trio', 'trio', {}))


async def spawn_group(opts: argparse.Namespace, progress: Callable[[str], None],
                      table: Table) -> Dict[str, Any]:
    res: Dict[str, Any] = {label: {'seq': [], 'concurrent': []} for label, _, _ in SPAWN_VARIANTS}
    res['process_floor'] = {'seq': [], 'concurrent': []}
    res['fork_floor'] = {'seq': [], 'concurrent': []}
    n_conc = opts.concurrent_spawns
    async with floors.byte_listener() as listener, floors.fork_helper() as helper:
        await floors.process_floor_once(listener)  # warm-ups, untimed
        await helper.once(listener)
        for rep in range(opts.spawn_reps):
            for label, method, config in SPAWN_VARIANTS:
                floor = 'fork_floor' if method == 'forkserver' else 'process_floor'

                async def floor_once() -> Dict[str, float]:
                    return (await helper.once(listener) if method == 'forkserver'
                            else await floors.process_floor_once(listener))

                async with open_tree(start_method=method, steady=False, **config) as an:
                    if method == 'forkserver' or rep == 0:
                        # untimed: starts the zygote; warms the page cache
                        await spawn_once(an, f'warmup-{method}')
                    if method == 'forkserver':
                        await warm_zygote(an, f'warmup-{method}-2')
                        # untimed: the zygote's first fork, whose spare was
                        # still starting (every spawn measured is forked
                        # from a zygote past its first moments)
                        await spawn_once(an, f'warmup-{method}-forked')
                    # each spawn of ours next to one of the floor's (who goes
                    # first alternates): both meet the same machine
                    for i in range(opts.spawns):
                        if i % 2:
                            res[floor]['seq'].append(await floor_once())
                        res[label]['seq'].append(
                            await spawn_once(an, f'spawn-{method}-{rep}-{i}'))
                        if not i % 2:
                            res[floor]['seq'].append(await floor_once())
                    if config:
                        continue  # (8 at once: the default config only)
                    res[label]['concurrent'].append(
                        await spawn_concurrent(an, n_conc, f'conc-{method}-{rep}'))
                    res[floor]['concurrent'].append(
                        await helper.concurrent(listener, n_conc) if method == 'forkserver'
                        else await floors.process_floor_concurrent(listener, n_conc))
            fs, ns, tr = (res[label] for label, _, _ in SPAWN_VARIANTS)
            progress(f'spawn rep {rep + 1}/{opts.spawn_reps}: forkserver '
                     f'{fs["seq"][-1]["total_ms"]:.1f} ms (no spare {ns["seq"][-1]["total_ms"]:.1f}),'
                     f' 8 at once {fs["concurrent"][-1]:.0f} ms'
                     f' (fork floor {res["fork_floor"]["seq"][-1]["total_ms"]:.1f} ms); trio '
                     f'{tr["seq"][-1]["total_ms"]:.1f} ms, 8 at once {tr["concurrent"][-1]:.0f} ms'
                     f' (process floor {res["process_floor"]["seq"][-1]["total_ms"]:.1f} ms)')

    def stat(samples: List[Dict[str, float]], key: str, q: float) -> float:
        return percentile([s[key] for s in samples], q)

    table.section(f'spawn: {opts.spawns} sequential/backend/rep '
                  f'({opts.spawn_reps * opts.spawns} samples: median, p90 over all), '
                  f'{n_conc} at once once/rep')
    for label, method, config in SPAWN_VARIANTS:
        floor, flabel = (('fork_floor', 'fork floor') if method == 'forkserver'
                         else ('process_floor', 'process start floor'))
        ours, base = res[label]['seq'], res[floor]['seq']
        table.add(f'{label}: start+call+cancel+exit median (ms)', stat(ours, 'total_ms', 50),
                  stat(base, 'total_ms', 50), f'{flabel}: to exit')
        if config:
            continue
        table.add(f'{label}: start+call+cancel+exit p90 (ms)', stat(ours, 'total_ms', 90),
                  stat(base, 'total_ms', 90), f'{flabel}: to exit')
        table.add(f'{label}:   of which start+first call (ms)',
                  stat(ours, 'start_call_ms', 50), stat(base, 'start_ms', 50),
                  f'{flabel}: to the byte')
        table.add(f'{label}:   of which cancel+exit (ms)', stat(ours, 'teardown_ms', 50))
        table.add(f'{label}: {n_conc} at once, until all answered (ms)',
                  res[label]['concurrent'], res[floor]['concurrent'],
                  f'{n_conc} {flabel}s: all bytes', fmt='.0f')
    return res


# --- rpc ---------------------------------------------------------------------------

# Each rep alternates this many blocks of our calls with as many of the bare
# echo's, so that both meet the same machine: on a shared VM a quiet or a
# busy second moves either figure far more than the code does.
RPC_BLOCKS = 6


async def rpc_round_trips(portal: tractorish.Portal, calls: int,
                          warmup: int) -> Tuple[List[int], float]:
    """Sequential ``portal.run(echo, x=i)``: each call's latency (ns) and
    the wall time of them all (s), as ``baseline.measure_round_trips``."""
    echo = bench_funcs.echo
    run = portal.run
    perf = time.perf_counter_ns
    for i in range(warmup):
        if await run(echo, x=i) != i:
            raise RuntimeError('tractorish echo returned the wrong value')
    latencies = [0] * calls
    start = perf()
    for i in range(calls):
        t0 = perf()
        reply = await run(echo, x=i)
        latencies[i] = perf() - t0
        if reply != i:
            raise RuntimeError(f'tractorish echo mismatch: sent {i}, got {reply!r}')
    return latencies, (perf() - start) / 1e9


async def concurrent_calls(portal: tractorish.Portal, tasks: int, calls: int,
                           warmup: int) -> Tuple[int, float]:
    """``tasks`` tasks each making ``calls`` sequential calls on one portal:
    the number of timed calls and their wall time (s), as
    ``baseline.measure_multiplexed``."""
    async def worker(n: int) -> None:
        for i in range(n):
            await check_echo(portal, i)

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker, warmup)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker, calls)
    return tasks * calls, time.perf_counter() - start


Measure = Callable[[int, int], Awaitable[Tuple[Any, float]]]


async def interleaved(ours: Measure, bare: Measure, total: int,
                      warmup: int) -> Tuple[Tuple[list, float], Tuple[list, float]]:
    """Run ``total`` measured units of ``ours`` and of ``bare`` in
    ``RPC_BLOCKS`` alternating blocks, each after its share of ``warmup``;
    return each side's results joined: (latencies or a count, seconds)."""
    joined: List[Tuple[list, float]] = [([], 0.0), ([], 0.0)]
    per_block = max(1, total // RPC_BLOCKS)
    warm = max(1, warmup // RPC_BLOCKS)
    for block in range(RPC_BLOCKS):
        # who goes first alternates too: neither always follows the other
        order = (0, 1) if block % 2 == 0 else (1, 0)
        for side in order:
            gc.collect()
            got, elapsed = await (ours, bare)[side](per_block, warm)
            samples, seconds = joined[side]
            joined[side] = (samples + (got if isinstance(got, list) else [got]), seconds + elapsed)
    return joined[0], joined[1]


async def against_the_echo(res: Dict[str, List[Dict[str, float]]], key: str,
                           ours: Measure, addr: Any, opts: argparse.Namespace) -> None:
    """Round trips of ``ours`` alternating with the bare echo's at ``addr``;
    their summaries go to ``res[key]`` and ``res['base_' + key]``."""
    mine, bare = await interleaved(
        ours, functools.partial(baseline.measure_round_trips, addr), opts.calls, opts.warmup)
    res[key].append(rtt_summary(*mine))
    res[f'base_{key}'].append(rtt_summary(*bare))


async def rpc_group(opts: argparse.Namespace, progress: Callable[[str], None],
                    table: Table) -> Dict[str, Any]:
    res: Dict[str, List[Dict[str, float]]] = {
        k: [] for k in ('tcp', 'uds', 'uds_no_spin', 'concurrent', 'base_tcp', 'base_uds',
                        'base_uds_no_spin', 'base_concurrent')}
    task_warmup = max(1, opts.warmup // opts.tasks) * RPC_BLOCKS
    tmp = tempfile.mkdtemp(prefix='tractorish-bench-')

    def rates(counted: Tuple[list, float]) -> Dict[str, float]:
        return {'calls_per_s': sum(counted[0]) / counted[1]}

    try:
        for rep in range(opts.reps):
            path = os.path.join(tmp, f'baseline-{rep}.sock')
            async with baseline.echo_server(uds_path=path) as (port, _proc):
                async with open_tree() as an:
                    async with one_actor(an, f'rpc-tcp-{rep}') as portal:
                        await against_the_echo(res, 'tcp', functools.partial(
                            rpc_round_trips, portal), port, opts)
                        ours, bare = await interleaved(
                            functools.partial(concurrent_calls, portal, opts.tasks),
                            functools.partial(baseline.measure_multiplexed, port, opts.tasks),
                            opts.task_calls * RPC_BLOCKS, task_warmup)
                        res['concurrent'].append(rates(ours))
                        res['base_concurrent'].append(rates(bare))
                async with open_tree(transport='uds', uds_dir=tmp) as an:
                    async with one_actor(an, f'rpc-uds-{rep}') as portal:
                        await against_the_echo(res, 'uds', functools.partial(
                            rpc_round_trips, portal), path, opts)
                # and without polling before parking (docs/performance.md)
                async with open_tree(transport='uds', uds_dir=tmp, spin_us=0) as an:
                    async with one_actor(an, f'rpc-uds-no-spin-{rep}') as portal:
                        await against_the_echo(res, 'uds_no_spin', functools.partial(
                            rpc_round_trips, portal), path, opts)
            progress(f'rpc rep {rep + 1}/{opts.reps}: p50 tcp {res["tcp"][-1]["p50_us"]:.0f} us '
                     f'(bare {res["base_tcp"][-1]["p50_us"]:.0f}), uds '
                     f'{res["uds"][-1]["p50_us"]:.0f} us (bare {res["base_uds"][-1]["p50_us"]:.0f}); '
                     f'{opts.tasks} tasks {res["concurrent"][-1]["calls_per_s"]:,.0f} calls/s '
                     f'(bare {res["base_concurrent"][-1]["calls_per_s"]:,.0f})')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def col(key: str, field: str) -> List[float]:
        return [r[field] for r in res[key]]

    table.section(f'rpc: {opts.calls:,} sequential calls/rep after {opts.warmup:,} warm-up; '
                  f'{opts.tasks} tasks x {opts.task_calls} calls on one portal, {RPC_BLOCKS} times; '
                  f'in {RPC_BLOCKS} blocks alternating with the bare echo\'s')
    for transport, label in (('tcp', 'TCP'), ('uds', 'UDS')):
        base_label = f'bare trio {label} echo'
        table.add(f'{label} call p50 (us)', col(transport, 'p50_us'),
                  col(f'base_{transport}', 'p50_us'), base_label)
        table.add(f'{label} call p99 (us)', col(transport, 'p99_us'),
                  col(f'base_{transport}', 'p99_us'), base_label)
        table.add(f'{label} calls/s, sequential', col(transport, 'calls_per_s'),
                  col(f'base_{transport}', 'calls_per_s'), base_label, fmt=',.0f')
    table.add('UDS call p50 (us), no polling (spin_us=0)', col('uds_no_spin', 'p50_us'),
              col('base_uds_no_spin', 'p50_us'), 'bare trio UDS echo')
    table.add(f'TCP calls/s, {opts.tasks} tasks on one portal', col('concurrent', 'calls_per_s'),
              col('base_concurrent', 'calls_per_s'), f'{opts.tasks} tasks muxed on one socket',
              fmt=',.0f')
    return res


# --- streams -------------------------------------------------------------------------

async def context_round_trips(portal: tractorish.Portal, calls: int,
                              warmup: int) -> Tuple[List[int], float]:
    """Sequential send-one, receive-one on the stream of ``echo_ctx``: each
    round trip's latency (ns) and their wall time (s).

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
    return latencies, elapsed


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


async def baseline_stream_runs(port: int, n: int, size: int, runs: int) -> List[float]:
    """``runs`` timed bare streams of ``n`` values after a warm-up: their seconds."""
    await baseline.measure_stream(port, min(n, STREAM_WARMUP), size)
    times = []
    for _ in range(runs):
        gc.collect()
        times.append(await baseline.measure_stream(port, n, size))
    return times


async def streams_group(opts: argparse.Namespace, progress: Callable[[str], None],
                        table: Table) -> Dict[str, Any]:
    res: Dict[str, List[Dict[str, float]]] = {
        k: [] for k in ('ctx', 'ints', 'kib', 'base_ctx', 'base_ints', 'base_kib')}
    # the bare runs of each rep bracket ours (some before, the rest after),
    # and the echo alternates with ours in blocks: both meet the same machine
    before = BASELINE_STREAM_RUNS // 2
    after = BASELINE_STREAM_RUNS - before
    async with open_tree() as an:
        for rep in range(opts.reps):
            async with baseline.echo_server() as (port, _proc):
                async with one_actor(an, f'streams-{rep}') as portal:
                    await against_the_echo(res, 'ctx', functools.partial(
                        context_round_trips, portal), port, opts)
                    for key, n, size in (('ints', opts.stream_ints, 0),
                                         ('kib', opts.stream_kib, KIB)):
                        runs = await baseline_stream_runs(port, n, size, before)
                        res[key].append(await tractorish_stream(portal, n, size))
                        runs += await baseline_stream_runs(port, n, size, after)
                        res[f'base_{key}'].append(
                            stream_summary(n, size, statistics.median(runs)))
            progress(f'streams rep {rep + 1}/{opts.reps}: ctx p50 '
                     f'{res["ctx"][-1]["p50_us"]:.0f} us (bare {res["base_ctx"][-1]["p50_us"]:.0f}); '
                     f'ints {res["ints"][-1]["msgs_per_s"]:,.0f}/s '
                     f'(bare {res["base_ints"][-1]["msgs_per_s"]:,.0f}); 1 KiB '
                     f'{res["kib"][-1]["mb_per_s"]:.1f} MB/s '
                     f'(bare {res["base_kib"][-1]["mb_per_s"]:.1f})')

    def col(key: str, field: str) -> List[float]:
        return [r[field] for r in res[key]]

    table.section(f'streams: ctx echo {opts.calls:,} round trips/rep; {opts.stream_ints:,} ints '
                  f'and {opts.stream_kib:,} x 1 KiB per stream, after a '
                  f'{STREAM_WARMUP:,}-value warm-up (bare: median of {BASELINE_STREAM_RUNS}/rep, '
                  f'{before} before ours and {after} after; ctx echo in {RPC_BLOCKS} blocks '
                  f'alternating with the bare echo\'s)')
    table.add('ctx echo round trip p50 (us)', col('ctx', 'p50_us'), col('base_ctx', 'p50_us'),
              'bare trio TCP echo')
    table.add('ctx echo round trip p99 (us)', col('ctx', 'p99_us'), col('base_ctx', 'p99_us'),
              'bare trio TCP echo')
    table.add('ctx echo round trips/s', col('ctx', 'calls_per_s'),
              col('base_ctx', 'calls_per_s'), 'bare trio TCP echo', fmt=',.0f')
    table.add('stream ints msgs/s', col('ints', 'msgs_per_s'), col('base_ints', 'msgs_per_s'),
              'bare socket, 64 KiB writes', fmt=',.0f')
    table.add('stream 1 KiB MB/s (10^6 B)', col('kib', 'mb_per_s'),
              col('base_kib', 'mb_per_s'), 'bare socket, 64 KiB writes')
    table.add('stream 1 KiB msgs/s', col('kib', 'msgs_per_s'), col('base_kib', 'msgs_per_s'),
              'bare socket, 64 KiB writes', fmt=',.0f')
    return res


# --- errors --------------------------------------------------------------------------

async def error_calls(portal: tractorish.Portal, n: int) -> Dict[str, float]:
    """``n`` calls of ``fail`` interleaved with ``n`` echo calls: median ms of each."""
    async def fail_once() -> None:
        try:
            await portal.run(bench_funcs.fail, msg='bench')
        except tractorish.RemoteActorError as err:
            if err.type_str != 'ValueError':
                raise RuntimeError(f'expected a remote ValueError, got {err!r}') from err
        else:
            raise RuntimeError('fail() returned instead of raising')

    for i in range(max(10, n // 10)):  # warm-up
        await fail_once()
        await check_echo(portal, i)
    gc.collect()
    perf = time.perf_counter_ns
    fails, echoes = [], []
    for i in range(n):
        t0 = perf()
        await fail_once()
        t1 = perf()
        await check_echo(portal, i)
        t2 = perf()
        fails.append(t1 - t0)
        echoes.append(t2 - t1)
    return {'error_ms': statistics.median(fails) / 1e6,
            'error_p90_ms': percentile(fails, 90) / 1e6,
            'echo_ms': statistics.median(echoes) / 1e6,
            'echo_p90_ms': percentile(echoes, 90) / 1e6}


async def errors_group(opts: argparse.Namespace, progress: Callable[[str], None],
                       table: Table) -> Dict[str, Any]:
    reps: List[Dict[str, float]] = []
    async with open_tree() as an:
        for rep in range(opts.reps):
            async with one_actor(an, f'errors-{rep}') as portal:
                reps.append(await error_calls(portal, opts.error_calls))
            progress(f'errors rep {rep + 1}/{opts.reps}: remote error '
                     f'{reps[-1]["error_ms"]:.3f} ms, echo {reps[-1]["echo_ms"]:.3f} ms')
    table.section(f'errors: {opts.error_calls} calls that raise/rep, each followed by an echo call')
    table.add('remote error reaches the caller, median (ms)', [r['error_ms'] for r in reps],
              [r['echo_ms'] for r in reps], 'echo call, same actor', fmt='.3f')
    table.add('remote error reaches the caller, p90 (ms)', [r['error_p90_ms'] for r in reps],
              [r['echo_p90_ms'] for r in reps], 'echo call, same actor', fmt='.3f')
    return {'reps': reps}


# --- memory --------------------------------------------------------------------------

def memory_of(pids: Sequence[int]) -> Tuple[float, float]:
    """Summed USS and PSS of these processes, in bytes."""
    uss = pss = 0.0
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        uss += info.uss
        pss += getattr(info, 'pss', 0.0)
    return uss, pss


def forkserver_overhead(actor_pid: int, actor_pids: Set[int]) -> List[int]:
    """The zygote that forked ``actor_pid`` and its spare (its children that
    are not actors): what the forkserver costs besides the actors."""
    zygote = psutil.Process(actor_pid).ppid()
    return [zygote] + [p.pid for p in psutil.Process(zygote).children()
                       if p.pid not in actor_pids]


async def memory_rep(an: tractorish.ActorNursery, method: str, n: int,
                     tag: str) -> Dict[str, float]:
    """One idle actor's USS; then ``n`` idle actors: increments per actor."""
    portals: List[tractorish.Portal] = []
    try:
        first = await an.start_actor(f'{tag}-0', enable_modules=['bench_funcs'])
        portals.append(first)
        await check_echo(first, 0)
        await trio.sleep(IDLE_SETTLE)
        first_pid = child_of(an, first).pid
        zygote = forkserver_overhead(first_pid, {first_pid}) if method == 'forkserver' else []
        uss_1, pss_1 = memory_of([first_pid])
        zuss_1, zpss_1 = memory_of(zygote)

        async def one(i: int) -> None:
            portal = await an.start_actor(f'{tag}-{i}', enable_modules=['bench_funcs'])
            portals.append(portal)
            await check_echo(portal, i)

        async with trio.open_nursery() as nursery:
            for i in range(1, n):
                nursery.start_soon(one, i)
        await trio.sleep(IDLE_SETTLE)
        pids = [child_of(an, p).pid for p in portals]
        uss_n, pss_n = memory_of(pids)
        if method == 'forkserver':
            zygote = forkserver_overhead(first_pid, set(pids))
        _, zpss_n = memory_of(zygote)
    finally:
        await stop_all(an, portals)
    per = max(n - 1, 1)
    return {'idle_uss': uss_1, 'idle_pss': pss_1,
            'uss_increment': (uss_n - uss_1) / per,
            'pss_increment': ((pss_n + zpss_n) - (pss_1 + zpss_1)) / per,
            'zygote_uss_1': zuss_1}


async def memory_group(opts: argparse.Namespace, progress: Callable[[str], None],
                       table: Table) -> Dict[str, Any]:
    if psutil is None:
        table.section('memory: skipped (psutil is not installed)')
        progress('memory: skipped, psutil is not installed')
        return {}
    res: Dict[str, List[Dict[str, float]]] = {m: [] for m in BACKENDS}
    n = opts.mem_actors
    for method in BACKENDS:
        async with open_tree(start_method=method, steady=False) as an:
            if method == 'forkserver':  # every actor measured is forked
                await warm_zygote(an, f'mem-{method}-warmup')
            for rep in range(opts.mem_reps):
                res[method].append(await memory_rep(an, method, n, f'mem-{method}-{rep}'))
                r = res[method][-1]
                progress(f'memory {method} rep {rep + 1}/{opts.mem_reps}: idle actor USS '
                         f'{r["idle_uss"] / MIB:.1f} MiB; per actor with {n}: USS '
                         f'{r["uss_increment"] / MIB:.1f} MiB, PSS {r["pss_increment"] / MIB:.1f} MiB')

    def col(method: str, key: str) -> List[float]:
        return [r[key] / MIB for r in res[method]]

    table.section(f'memory (MiB; tractorish = forkserver, baseline = trio backend): '
                  f'1 idle actor, then {n}; {opts.mem_reps} rep(s)')
    table.add('idle actor USS', col('forkserver', 'idle_uss'), col('trio', 'idle_uss'),
              'trio backend')
    table.add(f'per-actor increment of summed USS, 1 -> {n} actors',
              col('forkserver', 'uss_increment'), col('trio', 'uss_increment'), 'trio backend')
    table.add(f'per-actor increment of summed PSS (+zygote), 1 -> {n}',
              col('forkserver', 'pss_increment'), col('trio', 'pss_increment'), 'trio backend')
    table.add('forkserver zygote + spare USS, a fixed cost (with 1 actor)',
              col('forkserver', 'zygote_uss_1'))
    return res


# --- import --------------------------------------------------------------------------

def time_python(code: str) -> float:
    """Wall time (ms) of ``python -c code``, from ``Popen`` to the reaped exit."""
    env = dict(os.environ)
    paths = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    env['PYTHONPATH'] = os.pathsep.join([_PACKAGE_PARENT, *paths])
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, '-c', code], env=env, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        code_ = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = (time.perf_counter() - t0) * 1e3
    if code_ != 0:
        raise RuntimeError(f'python -c {code!r} exited with code {code_}')
    return elapsed


async def import_group(opts: argparse.Namespace, progress: Callable[[str], None],
                       table: Table) -> Dict[str, Any]:
    ours, base = 'import tractorish', 'import trio, msgpack'
    res: Dict[str, List[float]] = {'tractorish': [], 'baseline': []}
    await trio.to_thread.run_sync(time_python, ours)  # a warm-up, untimed
    for i in range(opts.imports):
        # alternate which goes first, too
        order = ((ours, 'tractorish'), (base, 'baseline'))
        for code, key in order if i % 2 == 0 else order[::-1]:
            res[key].append(await trio.to_thread.run_sync(time_python, code))
    progress(f'import: tractorish {statistics.median(res["tractorish"]):.0f} ms, '
             f'trio+msgpack {statistics.median(res["baseline"]):.0f} ms')
    table.section(f'import: {opts.imports} runs of each, alternating; Popen to reaped exit')
    table.add('python -c "import tractorish" (ms)', res['tractorish'], res['baseline'],
              'python -c "import trio, msgpack"', fmt='.0f')
    return res


# --- pools ---------------------------------------------------------------------------

def make_chunks(n: int) -> Tuple[List[Tuple[int, int]], float]:
    """``n`` ranges of about equal work, each ~CHUNK_TARGET_MS here; and that ms."""
    def chunk_ms(step: int) -> float:  # the fastest of 3: the least disturbed
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            bench_funcs.count_primes(PRIMES_FROM, PRIMES_FROM + step)
            best = min(best, (time.perf_counter() - t0) * 1e3)
        return best

    step = 1000
    for _ in range(2):  # calibrate the step to the target
        step = max(100, int(step * CHUNK_TARGET_MS / max(chunk_ms(step), 0.1)))
    chunks = [(PRIMES_FROM + i * step, PRIMES_FROM + (i + 1) * step) for i in range(n)]
    return chunks, chunk_ms(step)


def timed(fn: Callable[[], Any]) -> Tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


async def pool_group(opts: argparse.Namespace, progress: Callable[[str], None],
                     table: Table) -> Dict[str, Any]:
    n_items = opts.pool_items
    items = list(range(n_items))
    chunks, chunk_ms = make_chunks(opts.pool_chunks)
    kinds = ['tractorish', 'ppe', 'mp'] + (['trio_parallel'] if trio_parallel else [])
    res: Dict[str, Any] = {'tiny': {k: [] for k in kinds}, 'cpu': {k: [] for k in kinds},
                           'callers': [],
                           'chunk_ms': chunk_ms, 'chunks': len(chunks), 'items': n_items,
                           'trio_parallel': trio_parallel is not None}
    mp_ctx = multiprocessing.get_context(MP_START_METHOD)
    starts, stops = [c[0] for c in chunks], [c[1] for c in chunks]
    expected_primes: Optional[int] = None

    def check_primes(kind: str, total: int) -> None:
        nonlocal expected_primes
        if expected_primes is None:
            expected_primes = total
        elif total != expected_primes:
            raise RuntimeError(f'{kind} counted {total} primes, others {expected_primes}')

    async def in_thread(fn: Callable[[], Any]) -> Tuple[float, Any]:
        return await trio.to_thread.run_sync(timed, fn)

    async def tractorish_tiny(pool: tractorish.ActorPool) -> float:
        t0 = time.perf_counter()
        got = [x async for x in pool.map(bench_funcs.echo, items)]
        elapsed = time.perf_counter() - t0
        if got != items:
            raise RuntimeError('tractorish pool.map returned the wrong values')
        return elapsed

    async def tractorish_cpu(pool: tractorish.ActorPool) -> float:
        t0 = time.perf_counter()
        total = sum([n async for n in pool.starmap(
            bench_funcs.count_primes, ({'start': a, 'stop': b} for a, b in chunks),
            ordered=False)])
        elapsed = time.perf_counter() - t0
        check_primes('the tractorish pool', total)
        return elapsed

    async def tractorish_callers(pool: tractorish.ActorPool) -> float:
        """``n_items`` concurrent ``pool.run`` callers (most wait for a slot)."""
        out: List[Any] = [None] * n_items

        async def one(i: int) -> None:
            out[i] = await pool.run(bench_funcs.echo, x=i)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in items:
                nursery.start_soon(one, i)
        elapsed = time.perf_counter() - t0
        if out != items:
            raise RuntimeError('tractorish pool.run callers got the wrong values')
        return elapsed

    async def trio_parallel_run(ctx: Any, limiter: trio.CapacityLimiter,
                                fn: Callable[..., Any], args: List[tuple]) -> Tuple[float, list]:
        out: list = [None] * len(args)

        async def one(i: int) -> None:
            out[i] = await ctx.run_sync(fn, *args[i], limiter=limiter)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(len(args)):
                nursery.start_soon(one, i)
        return time.perf_counter() - t0, out

    ppe = concurrent.futures.ProcessPoolExecutor(
        POOL_SIZE, mp_context=mp_ctx, initializer=bench_funcs.ignore_sigint)
    mp_pool = None
    try:
        mp_pool = mp_ctx.Pool(POOL_SIZE, initializer=bench_funcs.ignore_sigint)
        async with contextlib.AsyncExitStack() as stack:
            tp_ctx = None
            limiter = trio.CapacityLimiter(POOL_SIZE)
            if trio_parallel is not None:
                tp_ctx = await stack.enter_async_context(trio_parallel.open_worker_context(
                    worker_type=trio_parallel.WorkerType(MP_START_METHOD)))
            # tiny calls: concurrency 4 per worker; CPU-bound: the default, 1
            pool = await stack.enter_async_context(tractorish.open_actor_pool(
                POOL_SIZE, concurrency=POOL_CONCURRENCY, enable_modules=['bench_funcs'],
                name='bench-pool', registry_addrs=[('127.0.0.1', free_port())]))
            cpu_pool = await stack.enter_async_context(tractorish.open_actor_pool(
                POOL_SIZE, enable_modules=['bench_funcs'], name='bench-cpu-pool'))
            # warm-ups, untimed: every worker of every pool started and used
            await pool.wait_ready()
            await cpu_pool.wait_ready()
            await cpu_pool.cast(bench_funcs.echo, x=1, raise_errors=True)
            hold = [0.05] * POOL_SIZE
            await in_thread(lambda: list(ppe.map(bench_funcs.sleep_sync, hold)))
            await in_thread(lambda: mp_pool.map(bench_funcs.sleep_sync, hold, chunksize=1))
            if tp_ctx is not None:
                await trio_parallel_run(tp_ctx, limiter, bench_funcs.sleep_sync,
                                        [(s,) for s in hold])
            few = items[:50]
            if [x async for x in pool.map(bench_funcs.echo, few)] != few:
                raise RuntimeError('tractorish pool.map returned the wrong values')
            await in_thread(lambda: list(ppe.map(bench_funcs.echo_sync, few)))
            await in_thread(lambda: [mp_pool.apply(bench_funcs.echo_sync, (i,)) for i in few])
            if tp_ctx is not None:
                await trio_parallel_run(tp_ctx, limiter, bench_funcs.echo_sync,
                                        [(i,) for i in few])

            # each returns the measured value: calls/s (tiny) or ms (CPU-bound)
            async def tiny_tractorish() -> float:
                return n_items / await tractorish_tiny(pool)

            async def tiny_ppe() -> float:
                elapsed, got = await in_thread(
                    lambda: list(ppe.map(bench_funcs.echo_sync, items)))
                if got != items:
                    raise RuntimeError('ProcessPoolExecutor.map returned the wrong values')
                return n_items / elapsed

            async def tiny_mp() -> float:
                elapsed, got = await in_thread(
                    lambda: [mp_pool.apply(bench_funcs.echo_sync, (i,)) for i in items])
                if got != items:
                    raise RuntimeError('multiprocessing.Pool.apply returned the wrong values')
                return n_items / elapsed

            async def tiny_trio_parallel() -> float:
                elapsed, got = await trio_parallel_run(
                    tp_ctx, limiter, bench_funcs.echo_sync, [(i,) for i in items])
                if got != items:
                    raise RuntimeError('trio_parallel.run_sync returned the wrong values')
                return n_items / elapsed

            async def cpu_tractorish() -> float:
                return await tractorish_cpu(cpu_pool) * 1e3

            async def cpu_ppe() -> float:
                elapsed, got = await in_thread(
                    lambda: sum(ppe.map(bench_funcs.count_primes, starts, stops)))
                check_primes('ProcessPoolExecutor', got)
                return elapsed * 1e3

            async def cpu_mp() -> float:
                elapsed, got = await in_thread(
                    lambda: sum(mp_pool.starmap(bench_funcs.count_primes, chunks, chunksize=1)))
                check_primes('multiprocessing.Pool', got)
                return elapsed * 1e3

            async def cpu_trio_parallel() -> float:
                elapsed, out = await trio_parallel_run(
                    tp_ctx, limiter, bench_funcs.count_primes, chunks)
                check_primes('trio_parallel', sum(out))
                return elapsed * 1e3

            runs = {'tiny': {'tractorish': tiny_tractorish, 'ppe': tiny_ppe, 'mp': tiny_mp,
                             'trio_parallel': tiny_trio_parallel},
                    'cpu': {'tractorish': cpu_tractorish, 'ppe': cpu_ppe, 'mp': cpu_mp,
                            'trio_parallel': cpu_trio_parallel}}
            for rep in range(opts.reps):
                # a different one goes first in each rep: no order favours any
                order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
                for what in ('tiny', 'cpu'):
                    for kind in order:
                        gc.collect()
                        res[what][kind].append(await runs[what][kind]())
                    if what == 'tiny':  # right after map: the two side by side
                        gc.collect()
                        res['callers'].append(n_items / await tractorish_callers(pool))
                tiny, cpu = res['tiny'], res['cpu']
                progress(f'pool rep {rep + 1}/{opts.reps}: tiny calls/s tractorish '
                         f'{tiny["tractorish"][-1]:,.0f}, ProcessPoolExecutor '
                         f'{tiny["ppe"][-1]:,.0f}, mp.Pool.apply {tiny["mp"][-1]:,.0f}'
                         + (f', trio_parallel {tiny["trio_parallel"][-1]:,.0f}' if tp_ctx else '')
                         + f'; CPU-bound ms tractorish {cpu["tractorish"][-1]:.0f}, '
                         f'ProcessPoolExecutor {cpu["ppe"][-1]:.0f}, mp.Pool {cpu["mp"][-1]:.0f}'
                         + (f', trio_parallel {cpu["trio_parallel"][-1]:.0f}' if tp_ctx else ''))
    finally:
        with trio.CancelScope(shield=True):
            if mp_pool is not None:
                mp_pool.terminate()
                await trio.to_thread.run_sync(mp_pool.join)
            await trio.to_thread.run_sync(
                lambda: ppe.shutdown(wait=True, cancel_futures=True))

    tiny, cpu = res['tiny'], res['cpu']
    tp_missing = None if trio_parallel else 'trio-parallel not installed'
    table.section(f'pool: {POOL_SIZE} workers each; tiny: {n_items:,} calls of a no-op/rep '
                  f'(tractorish pool.map, concurrency {POOL_CONCURRENCY}); CPU-bound: '
                  f'{len(chunks)} prime-counting chunks of ~{chunk_ms:.0f} ms/rep '
                  f'(tractorish pool.starmap, concurrency 1)')
    table.add('tiny calls/s', tiny['tractorish'], tiny['ppe'],
              'ProcessPoolExecutor.map', fmt=',.0f')
    table.add('tiny calls/s', tiny['tractorish'], tiny.get('trio_parallel') or None,
              tp_missing or 'trio_parallel.run_sync', fmt=',.0f')
    table.add('tiny calls/s', tiny['tractorish'], tiny['mp'],
              'mp.Pool.apply, one at a time', fmt=',.0f')
    table.add(f'tiny calls/s, {n_items:,} concurrent pool.run callers', res['callers'],
              tiny['tractorish'], 'pool.map of the same calls', fmt=',.0f')
    table.add('CPU-bound wall time (ms)', cpu['tractorish'], cpu['ppe'],
              'ProcessPoolExecutor.map', fmt='.0f')
    table.add('CPU-bound wall time (ms)', cpu['tractorish'], cpu.get('trio_parallel') or None,
              tp_missing or 'trio_parallel.run_sync', fmt='.0f')
    table.add('CPU-bound wall time (ms)', cpu['tractorish'], cpu['mp'],
              'mp.Pool.starmap', fmt='.0f')
    return res


# --- asyncio in an actor ------------------------------------------------------------

async def asyncio_group(opts: argparse.Namespace, progress: Callable[[str], None],
                        table: Table) -> Dict[str, Any]:
    res: Dict[str, List[float]] = {k: [] for k in (
        'run_task_us', 'trio_call_us', 'rpc_us', 'channel', 'trio_channel')}
    n, values = opts.aio_calls, opts.aio_values
    async with open_tree() as an:
        portal = await an.start_actor('bench-aio', enable_modules=['bench_funcs'],
                                      infect_asyncio=True)
        await portal.run(bench_funcs.time_run_task, n=min(n, 100))  # warm-up
        for rep in range(opts.reps):
            gc.collect()
            res['run_task_us'].append(await portal.run(bench_funcs.time_run_task, n=n) * 1e6)
            res['trio_call_us'].append(await portal.run(bench_funcs.time_trio_call, n=n) * 1e6)
            start = time.perf_counter()
            for i in range(n):
                await portal.run(bench_funcs.echo, x=i)
            res['rpc_us'].append((time.perf_counter() - start) / n * 1e6)
            res['channel'].append(await portal.run(bench_funcs.time_channel, n=values))
            res['trio_channel'].append(
                await portal.run(bench_funcs.time_trio_channel, n=values))
            progress(f'asyncio rep {rep + 1}/{opts.reps}: run_task {res["run_task_us"][-1]:.1f} us'
                     f' (portal.run {res["rpc_us"][-1]:.1f} us); channel '
                     f'{res["channel"][-1]:,.0f}/s (trio {res["trio_channel"][-1]:,.0f}/s)')
        await portal.cancel_actor()
    table.section(f'asyncio: an actor with infect_asyncio=True; {n:,} calls and '
                  f'{values:,} channel values per rep, all inside that actor but portal.run')
    table.add('to_asyncio.run_task round trip (us)', res['run_task_us'], res['rpc_us'],
              'portal.run round trip to that actor', fmt='.1f')
    table.add('to_asyncio.run_task round trip (us)', res['run_task_us'], res['trio_call_us'],
              'a plain trio call (one checkpoint)', fmt='.1f')
    table.add('open_channel_from values/s', res['channel'], res['trio_channel'],
              'trio memory channel, two tasks', fmt=',.0f')
    return res


# --- durable jobs --------------------------------------------------------------------

def temp_postgres() -> Tuple[Any, str]:
    """A throwaway PostgreSQL server with fsync on (the job tests' helper),
    or ``None`` and why there is none."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, 'psycopg not installed (pip install "tractorish[postgres]")'
    sys.path.insert(0, os.path.join(_PACKAGE_PARENT, 'tests', 'jobs'))
    import pg_server
    bin_dir = pg_server.find_bin_dir()
    if bin_dir is None:
        return None, 'no PostgreSQL server installed'
    return pg_server.TempPostgres(bin_dir, durable=True).start(), ''


async def jobs_group(opts: argparse.Namespace, progress: Callable[[str], None],
                     table: Table) -> Dict[str, Any]:
    n, serial = opts.job_items, opts.job_serial
    kinds = ('plain', 'sqlite', 'postgres')
    res: Dict[str, Any] = {'many': {k: [] for k in kinds}, 'serial': {k: [] for k in kinds},
                           'items': n, 'serial_items': serial}
    server, missing = await trio.to_thread.run_sync(temp_postgres)
    tmp = tempfile.mkdtemp(prefix='bench-jobs-')
    stores = itertools.count()

    def new_store(kind: str) -> str:
        index = next(stores)
        if kind == 'sqlite':
            return os.path.join(tmp, f'jobs-{index}.db')
        server.sql(f'CREATE DATABASE bench_{index}')
        return server.url(f'bench_{index}')

    async def timed_calls(call: Callable[[int], Awaitable[Any]], count: int,
                          at_once: bool) -> float:
        """``count`` calls (all at once, or one after another): per second."""
        out: List[Any] = [None] * count

        async def one(i: int) -> None:
            out[i] = await call(i)
        t0 = time.perf_counter()
        if at_once:
            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(one, i)
        else:
            for i in range(count):
                await one(i)
        elapsed = time.perf_counter() - t0
        if out != list(range(count)):
            raise RuntimeError('the jobs or calls returned the wrong values')
        return count / elapsed

    async def measure(pool: tractorish.ActorPool, kind: str, count: int,
                      at_once: bool) -> float:
        if kind == 'plain':
            return await timed_calls(lambda i: pool.run(bench_funcs.echo, x=i), count,
                                     at_once)
        store = await trio.to_thread.run_sync(new_store, kind)
        async with tractorish.open_job_queue(pool, store) as jobs:
            return await timed_calls(
                lambda i: jobs.run(bench_funcs.echo, id=f'job-{i}', x=i), count, at_once)

    try:
        async with tractorish.open_actor_pool(
                POOL_SIZE, concurrency=POOL_CONCURRENCY, enable_modules=['bench_funcs'],
                name='bench-jobs', registry_addrs=[('127.0.0.1', free_port())]) as pool:
            await pool.wait_ready()
            ran = [k for k in kinds if k != 'postgres' or server is not None]
            for kind in ran:  # warm-ups, untimed
                await measure(pool, kind, 50, True)
            for rep in range(opts.reps):
                order = ran[rep % len(ran):] + ran[:rep % len(ran)]
                for kind in order:
                    gc.collect()
                    res['many'][kind].append(await measure(pool, kind, n, True))
                    res['serial'][kind].append(await measure(pool, kind, serial, False))
                many = res['many']
                progress(f'jobs rep {rep + 1}/{opts.reps}: {n:,} at once, per s: pool.run '
                         f'{many["plain"][-1]:,.0f}, SQLite jobs {many["sqlite"][-1]:,.0f}'
                         + (f', PostgreSQL jobs {many["postgres"][-1]:,.0f}' if server else ''))
    finally:
        with trio.CancelScope(shield=True):
            if server is not None:
                await trio.to_thread.run_sync(server.stop)
            shutil.rmtree(tmp, ignore_errors=True)

    table.section(f'jobs: open_actor_pool({POOL_SIZE}, concurrency={POOL_CONCURRENCY}); '
                  f'{n:,} jobs (or calls) of a no-op at once, then {serial} one at a time, '
                  f'per rep; each rep a new store')
    for what, label, base in (('many', f'{n:,} at once', 'concurrent pool.run calls'),
                              ('serial', 'one at a time', 'pool.run calls, one at a time')):
        for kind, name in (('sqlite', 'SQLite'), ('postgres', 'PostgreSQL')):
            table.add(f'durable jobs/s, {name}, {label}', res[what][kind] or None,
                      res[what]['plain'], base if res[what][kind] else missing, fmt=',.0f')
    res['postgres_missing'] = missing
    return res


# --- entities ------------------------------------------------------------------------

ENTITY_WORKERS = 4


async def one_at_a_time(call: Callable[[int], Awaitable[Any]],
                        calls: int) -> Tuple[List[int], float]:
    """``calls`` sequential ``call(i)``: each one's latency (ns), the wall time (s)."""
    perf = time.perf_counter_ns
    latencies = [0] * calls
    start = perf()
    for i in range(calls):
        t0 = perf()
        reply = await call(i)
        latencies[i] = perf() - t0
        if reply != i:
            raise RuntimeError(f'sent {i}, got {reply!r}')
    return latencies, (perf() - start) / 1e9


async def many_at_once(call: Callable[[int], Awaitable[Any]], tasks: int, calls: int) -> float:
    """About ``calls`` calls from ``tasks`` tasks, each one after another: per second."""
    per_task = max(1, calls // tasks)

    async def worker(first: int) -> None:
        for i in range(first, first + per_task):
            if await call(i) != i:
                raise RuntimeError(f'call {i} returned the wrong value')
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for t in range(tasks):
            nursery.start_soon(worker, t * per_task)
    return tasks * per_task / (time.perf_counter() - t0)


async def entities_group(opts: argparse.Namespace, progress: Callable[[str], None],
                         table: Table) -> Dict[str, Any]:
    n, tasks = opts.entity_calls, opts.tasks
    keys = [f'key-{i}' for i in range(opts.entity_keys)]
    res: Dict[str, Any] = {k: [] for k in ('ask', 'run', 'ask_many', 'run_many', 'stored',
                                          'unstored')}
    tmp = tempfile.mkdtemp(prefix='bench-entities-')
    cluster_of = functools.partial(tractorish.open_entity_cluster, bench_funcs.BenchEntity,
                                   workers=ENTITY_WORKERS)
    try:
        async with open_tree() as an:
            portals = [await an.start_actor(f'bench-plain-{i}', enable_modules=['bench_funcs'])
                       for i in range(ENTITY_WORKERS)]
            states = os.path.join(tmp, 'states.db')
            async with cluster_of(name='bench-entities') as cluster, \
                    cluster_of(name='bench-stored', store=states) as stored:

                def ask(i: int) -> Awaitable[Any]:
                    return cluster.ask(keys[i % len(keys)], 'echo', x=i)

                def run(i: int) -> Awaitable[Any]:
                    return portals[i % ENTITY_WORKERS].run(bench_funcs.echo, x=i)

                def incr(on: Any) -> Callable[[int], Awaitable[Any]]:
                    return lambda i: on.ask(keys[i % len(keys)], 'incr', x=i)
                for call in (ask, run, incr(stored), incr(cluster)):  # warm-ups, untimed
                    await many_at_once(call, tasks, max(len(keys), opts.warmup))
                for rep in range(opts.reps):
                    first, second = (ask, run) if rep % 2 == 0 else (run, ask)
                    for call in (first, second):
                        gc.collect()
                        key = 'ask' if call is ask else 'run'
                        res[key].append(rtt_summary(*await one_at_a_time(call, n)))
                        res[f'{key}_many'].append(await many_at_once(call, tasks, n))
                    res['stored'].append(await many_at_once(incr(stored), tasks, n))
                    res['unstored'].append(await many_at_once(incr(cluster), tasks, n))
                    progress(f'entities rep {rep + 1}/{opts.reps}: ask p50 '
                             f'{res["ask"][-1]["p50_us"]:.0f} us (portal.run '
                             f'{res["run"][-1]["p50_us"]:.0f}); {tasks} tasks: '
                             f'{res["ask_many"][-1]:,.0f} asks/s (portal.run '
                             f'{res["run_many"][-1]:,.0f}); with a store '
                             f'{res["stored"][-1]:,.0f} asks/s')
            await stop_all(an, portals)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def col(key: str, field: str) -> List[float]:
        return [r[field] for r in res[key]]
    base = f'portal.run to {ENTITY_WORKERS} actors, round-robin'
    table.section(f'entities: open_entity_cluster(workers={ENTITY_WORKERS}), {len(keys):,} '
                  f'keys; {n:,} asks (or calls) per rep one at a time, then from {tasks} '
                  f'tasks at once')
    table.add('ask p50 (us), one at a time', col('ask', 'p50_us'), col('run', 'p50_us'), base)
    table.add('ask p99 (us), one at a time', col('ask', 'p99_us'), col('run', 'p99_us'), base)
    table.add('asks/s, one at a time', col('ask', 'calls_per_s'), col('run', 'calls_per_s'),
              base, fmt=',.0f')
    table.add(f'asks/s, {tasks} tasks at once', res['ask_many'], res['run_many'],
              f'{base}, {tasks} tasks', fmt=',.0f')
    table.add(f'asks/s changing state, {tasks} tasks, SQLite store', res['stored'],
              res['unstored'], 'the same asks without a store', fmt=',.0f')
    return res


# --- the run ---------------------------------------------------------------------------

GROUP_FUNCS = {
    'spawn': spawn_group, 'first_actor': first_actor_group, 'rpc': rpc_group, 'streams': streams_group,
    'errors': errors_group, 'memory': memory_group, 'import': import_group,
    'pool': pool_group, 'asyncio': asyncio_group, 'jobs': jobs_group,
    'entities': entities_group,
}


def loadavg() -> Optional[float]:
    return os.getloadavg()[0] if hasattr(os, 'getloadavg') else None


async def run_all(opts: argparse.Namespace, progress: Callable[[str], None]) -> Dict[str, Any]:
    load_at_start = loadavg()
    table = Table()
    results: Dict[str, Any] = {}
    wall: Dict[str, float] = {}
    started = time.perf_counter()
    for group in opts.only:
        t0 = time.perf_counter()
        results[group] = await GROUP_FUNCS[group](opts, progress, table)
        wall[group] = time.perf_counter() - t0
    return {
        'config': {key: getattr(opts, key) for key in (*DEFAULTS, 'quick', 'only')},
        'machine': {
            'python': platform.python_version(),
            'implementation': platform.python_implementation(),
            'platform': platform.platform(),
            'cpus': os.cpu_count(),
            'trio': trio.__version__,
            'msgpack': '.'.join(map(str, msgpack.version)),
            'tractorish': tractorish.__version__,
            'trio_parallel': getattr(trio_parallel, '__version__', None)
            if trio_parallel else None,
            'loadavg_1min_at_start': load_at_start,
            'loadavg_1min_at_end': loadavg(),
        },
        'rows': [{k: v for k, v in row.items() if k != 'fmt'} for row in table.rows],
        'table_rows': table.rows,
        'results': results,
        'group_wall_s': wall,
        'wall_s': time.perf_counter() - started,
    }


# --- output -------------------------------------------------------------------------------

def format_table(res: Dict[str, Any]) -> str:
    cfg, mach = res['config'], res['machine']
    head = (f'tractorish {mach["tractorish"]} bench: {mach["implementation"]} '
            f'{mach["python"]}, trio {mach["trio"]}, msgpack {mach["msgpack"]}, '
            f'{mach["cpus"]} CPUs, {mach["platform"]}\n'
            f'{cfg["reps"]} reps (spawn {cfg["spawn_reps"]}, memory {cfg["mem_reps"]})'
            f'{" (--quick)" if cfg["quick"] else ""}; groups: '
            f'{", ".join(cfg["only"])}; values are medians across reps, [min..max] in '
            f'brackets;\nratio = tractorish / baseline (for rates above 1 is better, for '
            f'times and memory below 1); the backend is forkserver unless named')
    rows: List[Tuple[str, ...]] = [('metric', 'tractorish', 'baseline', 'ratio', 'baseline is')]
    for row in res['table_rows']:
        if 'section' in row:
            rows.append(('[' + row['section'] + ']',))
            continue
        fmt = row['fmt']
        rows.append(('  ' + row['metric'], _show(row['tractorish'], fmt),
                     _show(row['baseline'], fmt), _show_ratio(row['ratio']),
                     row['baseline_is']))
    cells = [r for r in rows if len(r) > 1]
    widths = [max(len(r[i]) for r in cells) for i in range(5)]

    def line(r: Sequence[str]) -> str:
        if len(r) == 1:
            return r[0]
        return '  '.join([r[0].ljust(widths[0])]
                         + [c.rjust(w) for c, w in zip(r[1:4], widths[1:4])]
                         + [r[4]]).rstrip()

    rule = '-' * len(line(rows[0]).rstrip().ljust(sum(widths) + 8))
    body = [line(rows[0]), rule] + [line(r) for r in rows[1:]]
    walls = ', '.join(f'{g} {s:.0f} s' for g, s in res['group_wall_s'].items())
    tail = [rule, f'total wall time {res["wall_s"]:.1f} s ({walls})']
    start, end = mach['loadavg_1min_at_start'], mach['loadavg_1min_at_end']
    if start is not None and end is not None:
        # this run itself keeps about one CPU busy; more means other work
        busy = start > 0.5 * (mach['cpus'] or 1) or end > 1.0 + 0.5 * (mach['cpus'] or 1)
        tail.append(f'1-min load average: {start:.2f} at start, {end:.2f} at end'
                    + (' (the machine was busy: expect noisy numbers)' if busy else ''))
    return '\n'.join([head, '', *body, *tail])


# --- entry point -------------------------------------------------------------------------

def parse_only(text: str) -> List[str]:
    names = [n.strip() for n in text.split(',') if n.strip()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f'unknown group(s) {", ".join(unknown) or "(none)"}; choose from {", ".join(GROUPS)}')
    return [g for g in GROUPS if g in names]  # always in the table's order


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f'groups: {", ".join(GROUPS)}')
    p.add_argument('--only', type=parse_only, default=list(GROUPS), metavar='GROUP[,GROUP]',
                   help=f'run only these groups (of: {", ".join(GROUPS)})')
    p.add_argument('--reps', type=int, help=f'repetitions (default {DEFAULTS["reps"]}, '
                                            f'--quick {QUICK["reps"]})')
    p.add_argument('--quick', action='store_true',
                   help='fewer reps, calls, spawns and values: a smoke run of seconds')
    p.add_argument('--calls', type=int, help='measured sequential calls per rep '
                                             f'(default {DEFAULTS["calls"]:,})')
    p.add_argument('--warmup', type=int, help='untimed calls before each rep '
                                              f'(default {DEFAULTS["warmup"]})')
    p.add_argument('--spawns', type=int, help='actors spawned one after another per backend '
                                              f'per rep (default {DEFAULTS["spawns"]})')
    p.add_argument('--stream-ints', type=int, metavar='N',
                   help='small ints per timed stream '
                        f'(default {DEFAULTS["stream_ints"]:,}, --quick {QUICK["stream_ints"]:,})')
    p.add_argument('--stream-kib', type=int, metavar='N',
                   help='1 KiB values per timed stream '
                        f'(default {DEFAULTS["stream_kib"]:,}, --quick {QUICK["stream_kib"]:,})')
    p.add_argument('--mem-actors', type=int, metavar='N',
                   help=f'idle actors per backend for the memory increment '
                        f'(default {DEFAULTS["mem_actors"]}, --quick {QUICK["mem_actors"]})')
    p.add_argument('--json', metavar='PATH', help='also write the results as JSON here')
    p.add_argument('-q', '--no-progress', action='store_true',
                   help='print only the table')
    opts = p.parse_args(argv)
    base = QUICK if opts.quick else DEFAULTS
    if opts.reps is not None:  # the spawn group's reps follow an explicit --reps
        opts.spawn_reps = opts.reps
    for key, value in base.items():
        if getattr(opts, key, None) is None:
            setattr(opts, key, value)
    for key in ('reps', 'calls', 'spawns', 'stream_ints', 'stream_kib'):
        if getattr(opts, key) < 1:
            p.error(f'--{key.replace("_", "-")} must be at least 1')
    if opts.mem_actors < 2:
        p.error('--mem-actors must be at least 2')
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


def compile_bytecode() -> None:
    """Byte-compile tractorish, as installing it from a wheel would.

    An editable install leaves no ``.pyc`` files, and with
    ``PYTHONDONTWRITEBYTECODE`` set none are ever written: every process
    would then compile the package from source on import, which the
    baselines (trio and msgpack, compiled when pip installed them) never
    pay. The files go to ``__pycache__`` (ignored by git).
    """
    import compileall
    package = os.path.dirname(os.path.abspath(tractorish.__file__))
    compileall.compile_dir(package, quiet=1)
    # and the functions the actors import (a user's modules, as it were)
    compileall.compile_dir(os.path.dirname(os.path.abspath(__file__)), quiet=1,
                           maxlevels=0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = parse_args(argv)
    compile_bytecode()
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
            json.dump({k: v for k, v in res.items() if k != 'table_rows'}, f, indent=2)
            f.write('\n')
        print(f'wrote {opts.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
