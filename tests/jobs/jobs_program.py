"""A program that runs N durable jobs on a 3-worker pool, for the crash tests.

    python jobs_program.py STORE N [--delay S] [--pid-dir DIR] [--lease S]

Job ``job-i`` is ``job_funcs.compute(i=i, ...)``. The program submits every
job (a job already in the store is the same job: idempotent), waits for
all of them, checks each result, and prints ``all N jobs done``. Killed
midway and started again, it finds the finished jobs stored and takes up
the others.
"""
from __future__ import annotations

import argparse
import os
import sys

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import job_funcs  # noqa: E402
import tractorish  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    async with tractorish.open_actor_pool(3, enable_modules=['job_funcs'],
                                          name=args.name) as pool:
        async with tractorish.open_job_queue(pool, args.store, lease=args.lease,
                                             poll_interval=0.2) as jobs:
            submitted = []
            for i in range(args.n):
                submitted.append(await jobs.submit(
                    job_funcs.compute, id=f'job-{i:04d}', i=i, delay=args.delay,
                    pid_dir=args.pid_dir))
            print(f'submitted {len(submitted)}', flush=True)
            for i, job in enumerate(submitted):
                value = await job.result()
                if value != {'i': i, 'square': i * i}:
                    raise SystemExit(f'job {job.id} gave {value!r}')
            print(f'all {args.n} jobs done', flush=True)


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('store')
    parser.add_argument('n', type=int)
    parser.add_argument('--delay', type=float, default=0.0)
    parser.add_argument('--pid-dir', default=None)
    parser.add_argument('--lease', type=float, default=30.0)
    parser.add_argument('--name', default='jobs')
    trio.run(main, parser.parse_args())
