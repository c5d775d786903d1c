"""The ``tractorish`` command: registry daemon, ls, tree, call, demo."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

import trio

from . import discovery
from ._exceptions import AuthenticationError, RemoteActorError, TractorishError, TransportClosed
from .discovery._service import answers
from .ipc import Address, format_addr, parse_addr
from .runtime import RuntimeConfig
from .supervise import default_registry_addrs, open_root_actor


class CliError(Exception):
    """A failure to report in one line, with exit status 1."""


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1')
    return value


def _registry_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--registry', metavar='HOST:PORT', type=parse_addr, default=None,
        help='the registry to ask (default: $TRACTORISH_REGISTRY or 127.0.0.1:1616)')


async def _client_root(addr: Address) -> Any:
    if not await answers(addr):
        raise CliError(f'nothing answers at {format_addr(addr)}: is a registry '
                       f'running there? (start one with: tractorish registry)')
    return open_root_actor('tractorish-cli', registry_addrs=[addr],
                           config=RuntimeConfig(discovery='client'))


def _target(args: argparse.Namespace) -> Address:
    return args.registry or default_registry_addrs()[0]


# --- registry -------------------------------------------------------------------

async def run_registry(host: str, port: int, out: Any = sys.stdout) -> None:
    """Serve a standalone registry until SIGINT or SIGTERM."""
    config = RuntimeConfig(discovery='serve', host=host)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_root_actor('registrar', registry_addrs=[(host, port)],
                                   config=config) as actor:
            where = format_addr(actor.registry_addrs[0])
            print(f'tractorish registry listening on {where} (pid {os.getpid()})', file=out)
            print(f'join it from another program with TRACTORISH_REGISTRY={where} '
                  f'(or registry_addrs=[{actor.registry_addrs[0]!r}]) and the same '
                  f'secret ($TRACTORISH_SECRET or the per-user secret file)',
                  file=out, flush=True)
            async for signum in signals:
                print(f'{signal.Signals(signum).name}: registry stopping', file=out, flush=True)
                break


# --- ls / tree --------------------------------------------------------------------

def _uptime(started_at: float) -> str:
    seconds = max(0, int(time.time() - started_at))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f'{hours}:{minutes:02}:{seconds:02}' if hours else f'{minutes}:{seconds:02}'


def format_table(entries: List[dict]) -> str:
    header = ('NAME', 'UID', 'PID', 'ADDRESS', 'UPTIME')
    rows = [(e['name'], e['uid'][1][:12], str(e.get('pid', '?')),
             format_addr(parse_addr_wire(e['addrs'][0])), _uptime(e.get('started_at', 0)))
            for e in entries]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return '\n'.join('  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in [header, *rows])


def parse_addr_wire(addr: Any) -> Address:
    return addr if isinstance(addr, str) else (addr[0], addr[1])


def format_tree(entries: List[dict]) -> str:
    by_uid: Dict[tuple, dict] = {tuple(e['uid']): e for e in entries}
    children: Dict[Optional[tuple], List[dict]] = {}
    for entry in entries:
        parent = tuple(entry['parent']) if entry.get('parent') else None
        children.setdefault(parent if parent in by_uid else None, []).append(entry)
    lines: List[str] = []

    def walk(entry: dict, prefix: str, last: bool, top: bool) -> None:
        label = f"{entry['name']} [{entry['uid'][1][:8]}] pid {entry.get('pid', '?')}"
        lines.append(label if top else f"{prefix}{'└── ' if last else '├── '}{label}")
        kids = children.get(tuple(entry['uid']), [])
        for i, kid in enumerate(kids):
            walk(kid, '' if top else prefix + ('    ' if last else '│   '),
                 i == len(kids) - 1, False)
    for root in children.get(None, []):
        walk(root, '', True, True)
    return '\n'.join(lines)


async def _list(addr: Address) -> List[dict]:
    async with await _client_root(addr):
        return await discovery.list_actors(addr)


# --- call ---------------------------------------------------------------------------

def parse_kwargs(pairs: List[str]) -> Dict[str, Any]:
    """``key=value`` pairs; a value is JSON if it parses as JSON, else a string."""
    kwargs: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key.isidentifier():
            raise CliError(f'arguments are key=value pairs, not {pair!r}')
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return kwargs


async def _call(addr: Address, name: str, target: str, kwargs: Dict[str, Any]) -> Any:
    module, _, func = target.rpartition('.')
    if not module or not func:
        raise CliError(f'name the function as module.function, not {target!r}')
    async with await _client_root(addr):
        async with discovery.find_actor(name, registry_addrs=[addr]) as portal:
            if portal is None:
                raise CliError(f'no actor named {name!r} is registered at {format_addr(addr)}')
            return await portal.run_from_ns(module, func, **kwargs)


# --- the parser -----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tractorish', description='tractorish: actor trees on trio.')
    commands = parser.add_subparsers(dest='command', required=True)

    demo = commands.add_parser(
        'demo', help='count primes in parallel across an actor tree',
        description='Start one actor per core, split a prime count across '
                    'them and print each finished chunk as it arrives.')
    demo.add_argument('--workers', type=_at_least_one, default=os.cpu_count() or 2,
                      help='number of worker actors (default: one per core)')
    demo.add_argument('--limit', type=int, default=2_000_000,
                      help='count primes below this number (default 2,000,000)')
    demo.add_argument('--chunks', type=int, default=20,
                      help='how many pieces to split the range into (default 20)')

    registry = commands.add_parser(
        'registry', help='run a standalone registry (registrar daemon)',
        description='Serve the registry that separate programs join to find '
                    'each other; runs until Ctrl-C or SIGTERM.')
    registry.add_argument('--host', default='127.0.0.1',
                          help='address to listen on (default 127.0.0.1)')
    registry.add_argument('--port', type=int, default=1616, help='port (default 1616)')

    ls = commands.add_parser('ls', help='list the actors a registry knows',
                             description='One line per actor: name, uid, pid, address, uptime.')
    _registry_arg(ls)
    tree = commands.add_parser('tree', help='show the registered actors as a tree',
                               description='The registered actors under their parents.')
    _registry_arg(tree)

    call = commands.add_parser(
        'call', help='call a function in a named actor and print the result',
        description='Find the actor by name and run module.function(key=value, ...) '
                    'in it; values are JSON if they parse as JSON, else strings.')
    call.add_argument('name', help='the actor, by registered name')
    call.add_argument('function', help='module.function (must be exposed by the actor)')
    call.add_argument('kwargs', nargs='*', metavar='key=value')
    _registry_arg(call)
    return parser


def run_command(args: argparse.Namespace) -> int:
    if args.command == 'demo':
        from ._demo import run_demo
        trio.run(run_demo, args.workers, args.limit, args.chunks)
    elif args.command == 'registry':
        trio.run(run_registry, args.host, args.port)
    elif args.command == 'ls':
        print(format_table(trio.run(_list, _target(args))))
    elif args.command == 'tree':
        print(format_tree(trio.run(_list, _target(args))))
    elif args.command == 'call':
        result = trio.run(_call, _target(args), args.name, args.function,
                          parse_kwargs(args.kwargs))
        print(json.dumps(result, default=repr, ensure_ascii=False))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except CliError as err:
        print(f'tractorish {args.command}: {err}', file=sys.stderr)
        return 1
    except AuthenticationError as err:
        print(f'tractorish {args.command}: refused: {err} (check that the secret '
              f'and the TLS settings match the registry\'s)', file=sys.stderr)
        return 1
    except TypeError as err:  # e.g. calling a generator or context with `call`
        print(f'tractorish {args.command}: {err}', file=sys.stderr)
        return 1
    except RemoteActorError as err:
        print(f'tractorish {args.command}: the call failed remotely:\n{err}', file=sys.stderr)
        return 1
    except (TransportClosed, TractorishError, OSError) as err:
        print(f'tractorish {args.command}: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted; every actor was torn down', file=sys.stderr)
        return 130
