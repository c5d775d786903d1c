"""The ``first_actor`` group of bench/run.py: a fresh program's first actor.

Each sample is a new program (``first_actor_program.py``) that times itself
from ``trio.run(main)`` to its first actor's first answer, then a second
actor asked for right after it. Next to each, the process start floor of
``floors.py`` (a bare ``python`` importing trio and msgpack that connects
back and sends a byte, from ``Popen`` to the byte); who goes first
alternates. Once per backend: the default (``forkserver``) and ``trio``.

The programs (and the actors and zygotes they start) read and write their
compiled bytecode in a cache of this run's own (``PYTHONPYCACHEPREFIX``),
filled by untimed warm-up programs, whatever ``PYTHONDONTWRITEBYTECODE``
says: an installed tractorish has its bytecode, as the floor's trio and
msgpack have theirs, and a source file edited since its last compile would
otherwise be compiled again in every fresh process, which measures the
checkout, not a start.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
from typing import Any, Callable, Dict, List

import trio

import floors  # the bench directory is on sys.path

PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'first_actor_program.py')
BACKENDS = ('forkserver', 'trio')
PROGRAMS_PER_REP = 3
PROGRAM_TIMEOUT = 60.0  # s; a bound on a hung program, never on a measurement


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


async def run_program(start_method: str, bytecode_cache: str) -> Dict[str, Any]:
    """One fresh program on ``start_method``, with a registry of its own
    and its bytecode in ``bytecode_cache``; its report. Killed (and so its
    tree) if it hangs."""
    env = {name: value for name, value in os.environ.items()
           if name != 'PYTHONDONTWRITEBYTECODE'}
    env.update(TRACTORISH_START_METHOD=start_method, PYTHONPYCACHEPREFIX=bytecode_cache,
               TRACTORISH_REGISTRY=f'127.0.0.1:{_free_port()}')
    with trio.fail_after(PROGRAM_TIMEOUT):
        done = await trio.run_process([sys.executable, PROGRAM], env=env,
                                      capture_stdout=True, cwd=os.path.dirname(PROGRAM))
    report: Dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return report


async def first_actor_group(opts: argparse.Namespace, progress: Callable[[str], None],
                            table: Any) -> Dict[str, Any]:
    res: Dict[str, List[Dict[str, Any]]] = {method: [] for method in BACKENDS}
    floor: List[float] = []
    bytecode_cache = tempfile.mkdtemp(prefix='tractorish-bench-bytecode-')
    try:
        async with floors.byte_listener() as listener:
            await floors.process_floor_once(listener)  # warm-ups, untimed
            for method in BACKENDS:  # (these compile the bytecode cache)
                await run_program(method, bytecode_cache)
            await _measure(opts, progress, listener, bytecode_cache, res, floor)
    finally:
        shutil.rmtree(bytecode_cache, ignore_errors=True)
    samples = opts.spawn_reps * PROGRAMS_PER_REP
    table.section(f'first actor: a fresh program per sample ({samples} per backend), '
                  f'medians [min..max]')
    for method in BACKENDS:
        label = 'forkserver (default)' if method == 'forkserver' else method
        table.add(f'{label}: trio.run to the first answer (ms)',
                  [r['first_ms'] for r in res[method]], floor,
                  'process start floor: to the byte', fmt='.0f')
        # each program against the floor run next to it, under the same
        # moment's load (the floors alternate between the backends' programs)
        beside = floor[BACKENDS.index(method)::len(BACKENDS)]
        table.add(f'{label}:   each over the floor beside it (x)',
                  [r['first_ms'] / f for r, f in zip(res[method], beside)], fmt='.2f')
        table.add(f'{label}:   then a second actor, start+call (ms)',
                  [r['second_ms'] for r in res[method]], fmt='.1f')
    fresh = sorted({(r['fresh'], r['forked']) for r in res['forkserver']})
    if fresh != [(1, 1)]:  # the first started fresh, the second forked: else say so
        progress(f'first_actor: forkserver programs started (fresh, forked) = {fresh}')
    return {'programs': res, 'process_floor_start_ms': floor}


async def _measure(opts: argparse.Namespace, progress: Callable[[str], None], listener: Any,
                   bytecode_cache: str, res: Dict[str, List[Dict[str, Any]]],
                   floor: List[float]) -> None:
    """The timed programs, each next to a floor (who goes first alternates)."""
    for rep in range(opts.spawn_reps):
        for i in range(PROGRAMS_PER_REP):
            for method in BACKENDS:
                if i % 2:
                    floor.append((await floors.process_floor_once(listener))['start_ms'])
                res[method].append(await run_program(method, bytecode_cache))
                if not i % 2:
                    floor.append((await floors.process_floor_once(listener))['start_ms'])
        progress(f'first_actor rep {rep + 1}/{opts.spawn_reps}: forkserver '
                 f'{res["forkserver"][-1]["first_ms"]:.0f} ms (second '
                 f'{res["forkserver"][-1]["second_ms"]:.0f} ms), trio '
                 f'{res["trio"][-1]["first_ms"]:.0f} ms; process floor {floor[-1]:.0f} ms')
