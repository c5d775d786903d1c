"""Runtime settings, grouped in one object shared by a tree."""
from __future__ import annotations

import dataclasses
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
# the forkserver needs fork(), SOCK_SEQPACKET and SCM_RIGHTS: Linux
DEFAULT_START_METHOD = 'forkserver' if sys.platform.startswith('linux') else 'trio'

# 'auto': register with the registry, and a root becomes the registrar when
# none answers; 'serve': a root must become it; 'client': look things up
# but do not register (command-line tools); 'off': no discovery at all.
DISCOVERY_MODES = frozenset({'auto', 'serve', 'client', 'off'})


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        return os.cpu_count() or 1


def _spin_from_env() -> int:
    text = os.environ.get(SPIN_ENV, '').strip()
    if not text:
        # with one CPU the peer cannot answer while we poll: never poll
        return DEFAULT_SPIN_US if _usable_cpus() > 1 else 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'${SPIN_ENV} must be a whole number of microseconds, '
                         f'not {text!r}') from None


@dataclasses.dataclass
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
    the default.
    ``spin_us`` (or ``$TRACTORISH_SPIN_US``) is how long a reader whose
    peer answered within that long last time polls its socket before
    parking: a wake-up costs more than that on many machines (0 turns it
    off, and is the default on a single CPU; see docs/performance.md).
    ``tls_cert``, ``tls_key`` and ``tls_ca`` (PEM paths, or
    ``$TRACTORISH_TLS_CERT`` / ``_KEY`` / ``_CA``) turn on mutual TLS for
    every TCP channel; the shared secret is still checked inside it.
    """

    secret: Optional[bytes] = dataclasses.field(default=None, repr=False)
    loglevel: Optional[str] = None
    transport: str = dataclasses.field(
        default_factory=lambda: os.environ.get(TRANSPORT_ENV, 'tcp'))
    host: str = dataclasses.field(
        default_factory=lambda: os.environ.get(HOST_ENV, '127.0.0.1'))
    uds_dir: Optional[str] = None
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE
    cancel_timeout: float = 3.0
    grace_period: float = 3.0
    term_timeout: float = 2.0
    start_timeout: float = 60.0
    stream_window: int = 1024
    discovery: str = 'auto'
    start_method: str = dataclasses.field(
        default_factory=lambda: os.environ.get(START_METHOD_ENV, DEFAULT_START_METHOD))
    spin_us: int = dataclasses.field(default_factory=_spin_from_env)
    tls_cert: Optional[str] = dataclasses.field(
        default_factory=lambda: os.environ.get('TRACTORISH_TLS_CERT'))
    tls_key: Optional[str] = dataclasses.field(
        default_factory=lambda: os.environ.get('TRACTORISH_TLS_KEY'))
    tls_ca: Optional[str] = dataclasses.field(
        default_factory=lambda: os.environ.get('TRACTORISH_TLS_CA'))

    def __post_init__(self) -> None:
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

    def to_wire(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, data: Any) -> 'RuntimeConfig':
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(data).items() if k in names})
