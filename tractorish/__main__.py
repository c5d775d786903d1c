"""The ``tractorish`` command (also ``python -m tractorish``)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import trio


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo
    trio.run(run_demo, args.workers, args.limit, args.chunks)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tractorish', description='tractorish: actor trees on trio.')
    commands = parser.add_subparsers(dest='command', required=True)
    demo = commands.add_parser(
        'demo', help='count primes in parallel across an actor tree',
        description='Start one actor per core, split a prime count across '
                    'them and print each finished chunk as it arrives.')
    demo.add_argument('--workers', type=int, default=os.cpu_count() or 2,
                      help='number of worker actors (default: one per core)')
    demo.add_argument('--limit', type=int, default=2_000_000,
                      help='count primes below this number (default 2,000,000)')
    demo.add_argument('--chunks', type=int, default=20,
                      help='how many pieces to split the range into (default 20)')
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, 'workers', 1) < 1:
        build_parser().error('--workers must be at least 1')
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print('interrupted; every actor was torn down', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
