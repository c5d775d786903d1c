"""Runtime settings, grouped in one object shared by a tree."""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

from ..msg import DEFAULT_MAX_MSG_SIZE

TRANSPORT_ENV = 'TRACTORISH_TRANSPORT'
HOST_ENV = 'TRACTORISH_HOST'
START_METHOD_ENV = 'TRACTORISH_START_METHOD'
SPIN_ENV = 'TRACTORISH_SPIN_US'
DEFAULT_SPIN_US = 200
MAX_SPIN_US = 10_000
START_METHODS = frozenset({'trio', 'forkserver'})
# tractor's start methods, by what they are here: multiprocessing's spawn is
# a fresh interpreter, as 'trio' is; its forkserver forks from a server
START_METHOD_ALIASES = {'mp_spawn': 'trio', 'mp_forkserver': 'forkserver'}
# the forkserver needs fork(), SOCK_SEQPACKET and SCM_RIGHTS: Linux
DEFAULT_START_METHOD = 'forkserver' if sys.platform.startswith('linux') else 'trio'

# 'auto': register with the registry, and a root becomes the registrar when
# none answers; 'serve': a root must become it; 'client': look things up
# but do not register (command-line tools); 'off': no discovery at all.
DISCOVERY_MODES = frozenset({'auto', 'serve', 'client', 'off'})


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        return os.cpu_count() or 1


def _spin_from_env() -> int:
    text = os.environ.get(SPIN_ENV, '').strip()
    if not text:
        # with one CPU the peer cannot answer while we poll: never poll
        return DEFAULT_SPIN_US if usable_cpus() > 1 else 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'${SPIN_ENV} must be a whole number of microseconds, '
                         f'not {text!r}') from None


class _FromEnvironment:
    """The default of a setting read from the environment when unset."""

    def __repr__(self) -> str:
        return '<from the environment>'


_FROM_ENV: Any = _FromEnvironment()

# every setting, in the order of RuntimeConfig's parameters
_FIELDS = ('secret', 'loglevel', 'transport', 'host', 'uds_dir', 'max_msg_size',
           'cancel_timeout', 'grace_period', 'term_timeout', 'start_timeout',
           'stream_window', 'discovery', 'start_method', 'spin_us',
           'tls_cert', 'tls_key', 'tls_ca', 'forkserver_spare', 'stack_on_signal',
           'max_calls_in_flight', 'metrics_port', 'debug_mode')


class RuntimeConfig:
    """How an actor tree runs; children inherit their parent's.

    ``transport`` is ``'tcp'`` (default, or ``$TRACTORISH_TRANSPORT``) or
    ``'uds'``; ``host`` is the address TCP listeners bind (loopback unless
    told otherwise, e.g. by ``$TRACTORISH_HOST``), which other hosts must be
    able to reach; ``uds_dir`` holds the Unix socket files. Teardown waits
    ``cancel_timeout`` for an actor to acknowledge a graceful cancel,
    ``grace_period`` more for it to exit, then sends SIGTERM and after
    ``term_timeout`` SIGKILL. ``stream_window`` is how many stream values a
    receiver lets a sender have in flight (flow control). ``discovery`` says
    how the actor takes part in the registry: ``'auto'`` (register; a root
    with no registry answering becomes the registrar), ``'serve'`` (a root
    must be the registrar), ``'client'`` (look up only) or ``'off'``.
    ``start_method`` is how children start: ``'forkserver'`` (forked from a
    zygote that has already imported the runtime; the default on Linux) or
    ``'trio'`` (a fresh interpreter each); ``$TRACTORISH_START_METHOD`` sets
    the default. With ``forkserver_spare`` (default True) a zygote keeps one
    child forked ahead of the next spawn, its trio already started: a spawn
    takes less (docs/performance.md), for one idle process per zygote. With
    ``stack_on_signal`` an actor prints its task tree to stderr at each
    SIGUSR1 and passes the signal on to its children.
    ``max_calls_in_flight`` bounds the calls one peer may have running in
    an actor while it reads none of their replies: past it, the actor
    reads nothing more from that peer until a call ends or the peer reads
    again, so a caller that stops reading holds up only itself (its
    further messages wait in the kernel's buffers, not in our memory).
    ``spin_us`` (or ``$TRACTORISH_SPIN_US``) is how long a reader whose
    peer answered within that long last time polls its socket before
    parking: a wake-up costs more than that on many machines (0 turns it
    off, and is the default on a single CPU; see docs/performance.md).
    ``tls_cert``, ``tls_key`` and ``tls_ca`` (PEM paths, or
    ``$TRACTORISH_TLS_CERT`` / ``_KEY`` / ``_CA``) turn on mutual TLS for
    every TCP channel; the shared secret is still checked inside it.
    ``metrics_port`` (a TCP port, default None: off) makes the actor
    serve its live counters for Prometheus at ``http://host:port/metrics``
    (``pip install 'tractorish[metrics]'``); it is the one setting a child
    does not inherit (a port serves one actor), see docs/observability.md.
    ``debug_mode`` (set by ``open_root_actor(debug_mode=True)``) runs the
    tree debugger in every actor (docs/debugging.md).

    A setting whose default comes from the environment reads it when the
    config is made, unless given (``None`` given is kept: for the TLS
    paths, no TLS). Configs compare by value; :meth:`replace` makes a
    changed copy, checked again. (A plain class, not a dataclass: making
    a dataclass compiles its methods at import, a few milliseconds of
    every fresh actor's start.)
    """

    __slots__ = _FIELDS
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __init__(self, secret: Optional[bytes] = None, loglevel: Optional[str] = None,
                 transport: str = _FROM_ENV, host: str = _FROM_ENV,
                 uds_dir: Optional[str] = None,
                 max_msg_size: int = DEFAULT_MAX_MSG_SIZE, cancel_timeout: float = 3.0,
                 grace_period: float = 3.0, term_timeout: float = 2.0,
                 start_timeout: float = 60.0, stream_window: int = 1024,
                 discovery: str = 'auto', start_method: str = _FROM_ENV,
                 spin_us: int = _FROM_ENV, tls_cert: Optional[str] = _FROM_ENV,
                 tls_key: Optional[str] = _FROM_ENV,
                 tls_ca: Optional[str] = _FROM_ENV, forkserver_spare: bool = True,
                 stack_on_signal: bool = False, max_calls_in_flight: int = 1024,
                 metrics_port: Optional[int] = None, debug_mode: bool = False) -> None:
        env = os.environ
        self.secret = secret
        self.loglevel = loglevel
        self.transport = env.get(TRANSPORT_ENV, 'tcp') if transport is _FROM_ENV else transport
        self.host = env.get(HOST_ENV, '127.0.0.1') if host is _FROM_ENV else host
        self.uds_dir = uds_dir
        self.max_msg_size = max_msg_size
        self.cancel_timeout = cancel_timeout
        self.grace_period = grace_period
        self.term_timeout = term_timeout
        self.start_timeout = start_timeout
        self.stream_window = stream_window
        self.discovery = discovery
        self.start_method = (env.get(START_METHOD_ENV, DEFAULT_START_METHOD)
                             if start_method is _FROM_ENV else start_method)
        self.spin_us = _spin_from_env() if spin_us is _FROM_ENV else spin_us
        self.tls_cert = env.get('TRACTORISH_TLS_CERT') if tls_cert is _FROM_ENV else tls_cert
        self.tls_key = env.get('TRACTORISH_TLS_KEY') if tls_key is _FROM_ENV else tls_key
        self.tls_ca = env.get('TRACTORISH_TLS_CA') if tls_ca is _FROM_ENV else tls_ca
        self.forkserver_spare = forkserver_spare
        self.stack_on_signal = stack_on_signal
        self.max_calls_in_flight = max_calls_in_flight
        self.metrics_port = metrics_port
        self.debug_mode = debug_mode
        # tractor's names of the two ways of starting a fresh interpreter
        self.start_method = START_METHOD_ALIASES.get(self.start_method, self.start_method)
        self._check()

    def _check(self) -> None:
        if self.transport not in ('tcp', 'uds'):
            raise ValueError(f"transport must be 'tcp' or 'uds', not {self.transport!r}")
        if self.max_msg_size <= 0:
            raise ValueError('max_msg_size must be positive')
        if self.start_method not in START_METHODS:
            raise ValueError(f'start_method must be one of {sorted(START_METHODS)}, '
                             f'not {self.start_method!r}')
        if self.discovery not in DISCOVERY_MODES:
            raise ValueError(f'discovery must be one of {sorted(DISCOVERY_MODES)}, '
                             f'not {self.discovery!r}')
        if not 2 <= self.stream_window <= 65536:
            raise ValueError('stream_window must be between 2 and 65536')
        if type(self.spin_us) is not int or not 0 <= self.spin_us <= MAX_SPIN_US:
            raise ValueError(f'spin_us must be a whole number of microseconds from '
                             f'0 to {MAX_SPIN_US}, not {self.spin_us!r}')
        if type(self.max_calls_in_flight) is not int or self.max_calls_in_flight < 1:
            raise ValueError(f'max_calls_in_flight must be a whole number of at least 1, '
                             f'not {self.max_calls_in_flight!r}')
        if type(self.stack_on_signal) is not bool:
            raise ValueError(f'stack_on_signal must be True or False, '
                             f'not {self.stack_on_signal!r}')
        if self.metrics_port is not None and (type(self.metrics_port) is not int
                                              or not 0 < self.metrics_port < 65536):
            raise ValueError(f'metrics_port must be a TCP port (1 to 65535) or None, '
                             f'not {self.metrics_port!r}')
        if type(self.debug_mode) is not bool:
            raise ValueError(f'debug_mode must be True or False, not {self.debug_mode!r}')
        if type(self.forkserver_spare) is not bool:
            raise ValueError(f'forkserver_spare must be True or False, '
                             f'not {self.forkserver_spare!r}')

    def __repr__(self) -> str:
        shown = ', '.join(f'{name}={getattr(self, name)!r}'
                          for name in _FIELDS if name != 'secret')
        return f'{type(self).__name__}({shown})'

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    def replace(self, **changes: Any) -> 'RuntimeConfig':
        """A copy with ``changes`` made (checked as a new config is)."""
        return type(self)(**{**self.to_wire(), **changes})

    def to_wire(self) -> dict:
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_wire(cls, data: Any) -> 'RuntimeConfig':
        """The config :meth:`to_wire` gave; unknown keys (a newer peer's) are ignored."""
        return cls(**{k: v for k, v in dict(data).items() if k in _FIELDS})
