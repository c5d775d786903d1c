"""The ``tractorish`` command: registry daemon, ls, tree, call, top, stats, demo, jobs, entities.

Exit status (docs/cli.md states the same table): 0 done; 1 the command
failed at run time (one line on standard error, no traceback); 2 wrong
arguments, whether argparse or one of our own checks found them (a usage
message); 130 Ctrl-C; 141 standard output was closed before the command
was done (``tractorish demo | head``), as for a program killed by SIGPIPE.
Every argument is checked while parsing, before any actor starts.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import trio

from . import __version__, discovery
from ._exceptions import AuthenticationError, RemoteActorError, TractorishError, TransportClosed
from ._groups import _leaves
from .devx._top import plain_table
from .discovery import _registrar
from .discovery._client import _portal_to
from .discovery._service import answers
from .ipc import Address, format_addr, parse_addr
from .runtime import RuntimeConfig
from .supervise import default_registry_addrs, open_root_actor

EXIT_FAILED = 1  # and 2, wrong arguments, is argparse's own
EXIT_INTERRUPTED = 130
EXIT_STDOUT_CLOSED = 128 + signal.SIGPIPE  # 141, what a shell shows for SIGPIPE

DEFAULT_TIMEOUT = 5.0

Uid = Tuple[str, str]


class CliError(Exception):
    """A failure to report in one line, with exit status 1."""


# --- argument types: each raises ArgumentTypeError, which argparse turns into
# its usage message and exit status 2 ------------------------------------------------

def _whole_number(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be at least {minimum}, not {value}')
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f'must be at most {maximum}, not {value}')
        return value
    return whole_number


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds') from None
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f'must be more than 0 seconds, not {text}')
    return value


def registry_address(text: str) -> Address:
    """``host:port``, a Unix socket path, or a bare port meaning ``127.0.0.1:port``."""
    given = text.strip()
    try:
        addr = parse_addr(f'127.0.0.1:{given}' if given.isdigit() else given)
    except ValueError:
        addr = None
    if addr is None or (isinstance(addr, tuple) and not 0 < addr[1] < 65536):
        raise argparse.ArgumentTypeError(
            f'{given!r} is not an address: use HOST:PORT, a bare PORT (for 127.0.0.1:PORT) '
            f'or a Unix socket path')
    return addr


def _function_path(text: str) -> Tuple[str, str]:
    module, _, function = text.rpartition('.')
    if not (module and function.isidentifier()
            and all(part.isidentifier() for part in module.split('.'))):
        raise argparse.ArgumentTypeError(f'{text!r} is not module.function')
    return module, function


def parse_value(text: str) -> Any:
    """A ``key=value`` argument's value: JSON if ``text`` is valid JSON, else
    ``text`` itself as a string (``40`` is a number, ``'"40"'`` and ``abc``
    are strings)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class _KeywordArguments(argparse.Action):
    """Collect ``key=value`` arguments into a dict, refusing malformed ones."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        kwargs: Dict[str, Any] = {}
        for pair in values or ():
            key, sep, text = pair.partition('=')
            if not sep or not key.isidentifier():
                raise argparse.ArgumentError(
                    self, f'{pair!r} is not key=value (key a Python identifier)')
            if key in kwargs:
                raise argparse.ArgumentError(self, f'{key!r} is given twice')
            kwargs[key] = parse_value(text)
        setattr(namespace, self.dest, kwargs)


# --- reaching a registry -------------------------------------------------------------

def _target(args: argparse.Namespace) -> Address:
    """``--registry``, else ``$TRACTORISH_REGISTRY`` (a usage error if malformed)."""
    if getattr(args, 'registry', None) is not None:
        return args.registry
    try:
        return default_registry_addrs()[0]
    except ValueError:
        usage: argparse.ArgumentParser = args.usage_parser
        usage.error(f'TRACTORISH_REGISTRY={os.environ.get("TRACTORISH_REGISTRY")!r} is '
                    f'not an address: use HOST:PORT or a Unix socket path (or pass '
                    f'--registry)')


async def _client_root(addr: Address) -> Any:
    if not await answers(addr):
        raise CliError(f'nothing answers at {format_addr(addr)}: is a registry '
                       f'running there? (start one with: tractorish registry)')
    return open_root_actor('tractorish-cli', registry_addrs=[addr],
                           config=RuntimeConfig(discovery='client'))


def _no_answer(what: str, timeout: float) -> CliError:
    return CliError(f'no answer from {what} within {timeout:g} s (a stopped or '
                    f'overloaded process, or not a tractorish one? --timeout waits longer)')


# --- registry -------------------------------------------------------------------

async def run_registry(host: str, port: int, out: Any = None) -> None:
    """Serve a standalone registry until SIGINT or SIGTERM."""
    out = out or sys.stdout
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


def _address(entry: dict, registry: Optional[Address], registrar_uid: Optional[Uid]) -> str:
    # The registrar listens on a port of its own (as every actor does) and on
    # the registry address; its entry lists its own port first. The address
    # it was started on, and that we reached it at, is the one worth showing.
    if registry is not None and registrar_uid is not None \
            and tuple(entry['uid']) == tuple(registrar_uid):
        return f'{format_addr(registry)} (registry)'
    return format_addr(parse_addr_wire(entry['addrs'][0]))


def format_table(entries: List[dict], registry: Optional[Address] = None,
                 registrar_uid: Optional[Uid] = None) -> str:
    header = ('NAME', 'UID', 'PID', 'ADDRESS', 'UPTIME')
    rows = [[e['name'], e['uid'][1][:12], str(e.get('pid', '?')),
             _address(e, registry, registrar_uid), _uptime(e.get('started_at', 0))]
            for e in entries]
    return plain_table(rows, header)


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


async def _list(addr: Address, timeout: float) -> Tuple[List[dict], Optional[Uid]]:
    """The registry's entries, and the uid of the registrar that gave them."""
    async with await _client_root(addr):
        return await _ask_registry(addr, timeout)


async def _ask_registry(addr: Address, timeout: float) -> Tuple[List[dict], Optional[Uid]]:
    """:func:`_list`, in a root already open: asked directly, so a registry
    that refuses us or does not answer is reported as such."""
    with trio.move_on_after(timeout):
        async with discovery.get_registry(addr) as registry:
            return await registry.run(_registrar.list_actors), registry.peer_uid
    raise _no_answer(format_addr(addr), timeout)


# --- call ---------------------------------------------------------------------------

async def _call(addr: Address, name: str, function: Tuple[str, str],
                kwargs: Dict[str, Any], timeout: float) -> Any:
    waiting_for = format_addr(addr)
    async with await _client_root(addr):
        # the deadline bounds finding and reaching the actor, not the call
        with trio.CancelScope(deadline=trio.current_time() + timeout) as lookup:
            # asked directly (not through find_actor, which takes a registry
            # that does not answer for an empty one): a silent registry is
            # reported as such, not as "no actor named ..."
            async with discovery.get_registry(addr) as registry:
                entries = await registry.run(_registrar.find, name=name)
            if not entries:
                raise CliError(f'no actor named {name!r} is registered at {waiting_for}')
            newest = entries[-1]  # find_actor's rule: the latest registered
            waiting_for = f'actor {name!r} at {format_addr(parse_addr_wire(newest["addrs"][0]))}'
            async with _portal_to(newest) as portal:
                lookup.deadline = math.inf
                return await portal.run_from_ns(*function, **kwargs)
    raise _no_answer(waiting_for, timeout)


# --- jobs ---------------------------------------------------------------------------

JOB_STATUSES = ('pending', 'running', 'done', 'failed')


def _json(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


def format_jobs(jobs: List[Any], counts: Dict[str, int]) -> str:
    header = ('ID', 'STATUS', 'ATTEMPTS', 'WORKER', 'FUNCTION')
    rows = [[job.id, job.status, str(job.attempt), job.worker or '-', job.function]
            for job in jobs]
    lines = [plain_table(rows, header)]
    total = sum(counts.values())
    lines.append(f'{total} job{"s" if total != 1 else ""} in the store: '
                 + ', '.join(f'{counts.get(s, 0)} {s}' for s in JOB_STATUSES))
    return '\n'.join(lines)


def format_job(job: Any, attempts: List[Any]) -> str:
    lines = [f'id:        {job.id}', f'function:  {job.function}',
             f'arguments: {_json(job.kwargs)}', f'status:    {job.status}']
    if job.status == 'running':
        lines[-1] += f' (attempt {job.attempt} on {job.worker}, held by {job.owner})'
    if job.status == 'done':
        lines.append(f'result:    {_json(job.outcome())}')
    elif job.status == 'failed':
        try:
            job.outcome()
        except RemoteActorError as err:
            lines.append(f'error:     {err.type_str}: {err.message}')
            lines.extend('  ' + line for line in err.tb_str.rstrip().splitlines())
    for attempt in attempts:
        took = (f' after {attempt.ended_at - attempt.started_at:.3f} s'
                if attempt.ended_at is not None else '')
        detail = f': {attempt.detail}' if attempt.detail else ''
        lines.append(f'attempt {attempt.number}: {attempt.outcome or "running"} on '
                     f'{attempt.worker or "-"} (held by {attempt.owner}){took}{detail}')
    return '\n'.join(lines)


async def _jobs(args: argparse.Namespace) -> str:
    from .jobs import open_job_queue
    async with open_job_queue(None, args.store) as jobs:
        if args.jobs_command == 'ls':
            return format_jobs(await jobs.list(args.status, args.limit), await jobs.counts())
        if args.jobs_command == 'show':
            job = await jobs.get(args.id)
            return format_job(job, await job.attempts())
        before = (await jobs.get(args.id)).status
        job = await jobs.retry(args.id)
        if before == 'pending':
            return f'job {job.id!r} is pending already'
        return (f'job {job.id!r} is pending again: the next program that works '
                f'{jobs.store} runs it')


# --- entities -----------------------------------------------------------------------

def format_entities(name: str, workers: List[dict]) -> str:
    header = ('WORKER', 'PID', 'ENTITIES', 'HANDLED', 'PASSIVATED')
    rows = [[w['worker'], str(w.get('pid', '-')), str(w.get('entities', '-')),
             str(w.get('handled', '-')), str(w.get('passivated', '-'))] for w in workers]
    lines = [plain_table(rows, header)]
    for worker in workers:
        if 'error' in worker:
            lines.append(f"{worker['worker']}: no answer: {worker['error']}")
    live = sum(w.get('entities', 0) for w in workers)
    views = [w['view'] for w in workers if w.get('view')]
    newest = max(views, key=lambda v: v['epoch']) if views else None
    lines.append(f'{len(workers)} worker{"s" if len(workers) != 1 else ""} of {name!r}, '
                 f'{live} live entit{"ies" if live != 1 else "y"}'
                 + (f'; membership: {", ".join(newest["members"])}' if newest else ''))
    return '\n'.join(lines)


async def _entities(addr: Address, name: str, timeout: float) -> str:
    from .entities import connect_entity_cluster
    async with await _client_root(addr):
        # the registry first: the cluster's client takes one that refuses us
        # or does not answer for one where no worker registered
        await _ask_registry(addr, timeout)
        with trio.move_on_after(timeout * 2):  # finding the workers, then asking each
            async with connect_entity_cluster(name, registry_addrs=[addr],
                                              timeout=0) as cluster:
                return format_entities(name, await cluster.status(timeout))
    raise _no_answer(f'the workers of {name!r}', timeout)


# --- top, stats ----------------------------------------------------------------------

async def _top(addr: Address, interval: float, iterations: Optional[int], timeout: float,
               plain: bool) -> None:
    from .devx._top import make_view, top_loop
    async with await _client_root(addr):
        await top_loop(addr, make_view(sys.stdout, plain=plain), interval=interval,
                       iterations=iterations, timeout=timeout)


# --- the parser -----------------------------------------------------------------------

_CALL_EPILOG = '''\
how KEY=VALUE values are parsed: a VALUE that is valid JSON is passed as the
value it spells; anything else is passed as a string, exactly as typed:
  a=40            the number 40
  a='"40"'        the string "40" (quoted as JSON)
  y=abc           the string "abc" (not JSON)
  y=              the empty string
  ok=true         True (and false, null: False, None)
  xs='[1, 2]'     the list [1, 2]
  m='{"k": 1}'    the dict {'k': 1}
(the outer quotes are for the shell: they pass quotes, spaces and brackets on)
'''


def _command(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, **kwargs)
    parser.set_defaults(usage_parser=parser)  # for our own usage errors
    return parser


def _registry_options(parser: argparse.ArgumentParser, waits_for: str) -> None:
    parser.add_argument(
        '--registry', metavar='HOST:PORT', type=registry_address, default=None,
        help='the registry to ask: HOST:PORT, a bare PORT (on 127.0.0.1) or a '
             'Unix socket path (default: $TRACTORISH_REGISTRY, else 127.0.0.1:1616)')
    parser.add_argument(
        '--timeout', metavar='SECONDS', type=_seconds, default=DEFAULT_TIMEOUT,
        help=f'give up after SECONDS (default {DEFAULT_TIMEOUT:g}) if {waits_for}')


def _add_demo(commands: Any) -> None:
    demo = _command(commands, 'demo', help='count primes in parallel across an actor tree',
                    description='Start one actor per core, split a prime count across '
                                'them and print each finished chunk as it arrives.')
    at_least_one = _whole_number(1)
    demo.add_argument('--workers', type=at_least_one, default=os.cpu_count() or 2,
                      help='number of worker actors (default: one per core)')
    demo.add_argument('--limit', type=at_least_one, default=2_000_000,
                      help='count primes below this number (default 2,000,000)')
    demo.add_argument('--chunks', type=at_least_one, default=20,
                      help='how many pieces to split the range into (default 20)')


def _add_registry(commands: Any) -> None:
    registry = _command(commands, 'registry',
                        help='run a standalone registry (registrar daemon)',
                        description='Serve the registry that separate programs join to '
                                    'find each other; runs until Ctrl-C or SIGTERM.')
    registry.add_argument('--host', default='127.0.0.1',
                          help='address to listen on (default 127.0.0.1)')
    registry.add_argument('--port', type=_whole_number(1, 65535), default=1616,
                          help='port (default 1616)')


def _add_ls_and_tree(commands: Any) -> None:
    ls = _command(commands, 'ls', help='list the actors a registry knows',
                  description='One line per actor: name, uid, pid, address, uptime. '
                              'The registrar is shown at the registry address, '
                              'marked "(registry)".')
    _registry_options(ls, 'the registry does not answer')
    tree = _command(commands, 'tree', help='show the registered actors as a tree',
                    description='The registered actors under their parents.')
    _registry_options(tree, 'the registry does not answer')


def _add_call(commands: Any) -> None:
    call = _command(
        commands, 'call', help='call a function in a named actor and print the result',
        description='Find the actor by name, run module.function(key=value, ...)\n'
                    'in it and print the result as JSON.',
        epilog=_CALL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    call.add_argument('name', metavar='NAME', help='the actor, by registered name')
    call.add_argument('function', metavar='MODULE.FUNCTION', type=_function_path,
                      help='the function to run (its module must be exposed by the actor)')
    # a default makes argparse show the arguments as optional (and not demand one)
    call.add_argument('kwargs', nargs='*', metavar='KEY=VALUE', default=[],
                      action=_KeywordArguments,
                      help='keyword arguments: VALUE is JSON if it parses as JSON, '
                           'else a string (see below)')
    _registry_options(call, 'the registry or the actor does not answer (the call '
                            'itself is not bounded)')


def _add_jobs(commands: Any) -> None:
    jobs = _command(commands, 'jobs', help='list, show and retry the jobs of a job store',
                    description='Read a durable job store (tractorish.open_job_queue): '
                                'list its jobs, show one, or make a failed one run again.')
    actions = jobs.add_subparsers(dest='jobs_command', required=True, metavar='ACTION')
    ls = _command(actions, 'ls', help='list the jobs, in submission order',
                  description='One line per job: id, status, attempts, worker, function; '
                              'then the number of jobs per status.')
    ls.add_argument('--status', choices=JOB_STATUSES, help='only the jobs with this status')
    ls.add_argument('--limit', type=_whole_number(1), metavar='N', help='at most N jobs')
    show = _command(actions, 'show', help='show one job: arguments, outcome, attempts',
                    description='The job, its result or error (with the remote '
                                'traceback), and every attempt at it.')
    retry = _command(actions, 'retry', help='make a failed job pending again',
                     description='A failed job becomes pending: the next program that '
                                 'works the store runs it. A done job never runs again.')
    for action in (show, retry):
        action.add_argument('id', metavar='ID', help='the job id')
    for action in (ls, show, retry):
        action.add_argument('--store', default='jobs.db', metavar='PATH|URL',
                            help='a SQLite file or a postgresql:// URL (default jobs.db)')


def _add_entities(commands: Any) -> None:
    entities = _command(commands, 'entities', help='look at an entity cluster',
                        description='Look at a cluster of entities '
                                    '(tractorish.open_entity_cluster) run by a program.')
    actions = entities.add_subparsers(dest='entities_command', required=True,
                                      metavar='ACTION')
    ls = _command(actions, 'ls', help="list a cluster's workers and their live entities",
                  description='One line per worker: name, pid, live entities, messages '
                              'handled, entities passivated; then the totals and the '
                              'membership.')
    ls.add_argument('name', metavar='NAME',
                    help='the cluster (its workers are registered as NAME-0, NAME-1 ...)')
    _registry_options(ls, 'the registry or a worker does not answer')


def _add_top_and_stats(commands: Any) -> None:
    top = _command(commands, 'top', help="show every registered actor's live counters",
                   description='One row per registered actor, refreshed every second: '
                               'calls served (and per second), failed, running; open '
                               'streams and contexts; messages and bytes per second; '
                               'credit waits; restarts. Drawn with rich on a terminal '
                               "when it is installed (pip install 'tractorish[top]'), "
                               'as plain text otherwise. Ctrl-C quits.')
    _registry_options(top, 'the registry does not answer (an actor that does not is '
                           'shown as "(no answer)")')
    top.add_argument('--interval', metavar='SECONDS', type=_seconds, default=1.0,
                     help='seconds between refreshes (default 1)')
    top.add_argument('-n', '--iterations', metavar='N', type=_whole_number(1), default=None,
                     help='stop after N refreshes (default: until Ctrl-C)')
    top.add_argument('--plain', action='store_true',
                     help='plain text even on a terminal with rich installed')
    stats = _command(commands, 'stats', help="print one actor's live counters",
                     description="Find the actor by name and print its counters "
                                 "(Portal.stats()): calls, streams, contexts, messages "
                                 "and bytes in all and per channel, credit waits, "
                                 "restarts, memory, uptime.")
    stats.add_argument('name', metavar='NAME', help='the actor, by registered name')
    stats.add_argument('--json', action='store_true',
                       help='print the counters as one JSON object, for scripts')
    _registry_options(stats, 'the registry or the actor does not answer')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tractorish', description='tractorish: actor trees on trio.')
    parser.add_argument('--version', action='version', version=f'tractorish {__version__}',
                        help='print "tractorish VERSION" and exit')
    commands = parser.add_subparsers(dest='command', required=True)
    _add_demo(commands)
    _add_registry(commands)
    _add_ls_and_tree(commands)
    _add_call(commands)
    _add_top_and_stats(commands)
    _add_jobs(commands)
    _add_entities(commands)
    return parser


def run_command(args: argparse.Namespace) -> int:
    if args.command == 'demo':
        from ._demo import run_demo
        _target(args)  # the demo's root reads $TRACTORISH_REGISTRY: check it first
        trio.run(run_demo, args.workers, args.limit, args.chunks)
    elif args.command == 'registry':
        trio.run(run_registry, args.host, args.port)
    elif args.command in ('ls', 'tree'):
        addr = _target(args)
        entries, registrar_uid = trio.run(_list, addr, args.timeout)
        print(format_table(entries, addr, registrar_uid) if args.command == 'ls'
              else format_tree(entries))
    elif args.command == 'call':
        result = trio.run(_call, _target(args), args.name, args.function,
                          args.kwargs, args.timeout)
        try:
            print(json.dumps(result, default=repr, ensure_ascii=False))
        except (TypeError, ValueError):  # JSON cannot say it (keys of other types)
            print(repr(result))
    elif args.command == 'jobs':
        print(trio.run(_jobs, args))
    elif args.command == 'entities':
        print(trio.run(_entities, _target(args), args.name, args.timeout))
    elif args.command == 'top':
        try:
            trio.run(_top, _target(args), args.interval, args.iterations, args.timeout,
                     args.plain)
        except KeyboardInterrupt:  # how one quits top: no error
            pass
    elif args.command == 'stats':
        stats = trio.run(_call, _target(args), args.name, ('self', '_stats'), {},
                         args.timeout)
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            from .devx._top import format_stats
            print(format_stats(stats))
    return 0


# --- reporting failures ------------------------------------------------------------

def _describe(err: BaseException) -> Optional[str]:
    """One line (a remote error adds its traceback) for an expected failure;
    ``None`` for anything else, a bug, which keeps its traceback."""
    if isinstance(err, AuthenticationError) and not isinstance(err, TimeoutError):
        return (f'refused: {err} (check that the secret and the TLS settings match '
                f'the registry\'s)')
    if isinstance(err, RemoteActorError):
        return f'the call failed remotely:\n{err}'
    if isinstance(err, (CliError, TransportClosed, TractorishError, OSError)):
        return str(err) or type(err).__name__
    if isinstance(err, TypeError):  # e.g. calling a generator or context with `call`
        return str(err)
    return None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail
    again on the closed pipe (the recipe of Python's ``signal`` docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def exit_status(command: str, error: BaseException,
                stderr: Any = None) -> Optional[int]:
    """Report ``error`` on stderr and give the exit status; ``None`` to re-raise."""
    stderr = stderr or sys.stderr
    leaves = [e for e in _leaves([error]) if not isinstance(e, trio.Cancelled)] or [error]
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        print('interrupted; every actor was torn down', file=stderr)
        return EXIT_INTERRUPTED
    if all(isinstance(e, BrokenPipeError) for e in leaves):
        _quiet_stdout()  # whoever reads our output has gone: end quietly
        return EXIT_STDOUT_CLOSED
    lines = [_describe(e) for e in leaves]
    if any(line is None for line in lines):
        return None
    for line in dict.fromkeys(lines):
        print(f'tractorish {command}: {line}', file=stderr)
    return EXIT_FAILED


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)  # exits with status 2 on wrong arguments
    try:
        return run_command(args)
    except BaseException as error:
        if isinstance(error, SystemExit):
            raise
        status = exit_status(args.command, error)
        if status is None:
            raise
        return status
