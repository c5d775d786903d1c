"""Prometheus export of an actor's live counters (``metrics_port=``).

A small HTTP endpoint served by the actor's own trio loop (no thread):
``GET /metrics`` renders :meth:`Actor.stats` with ``prometheus_client``'s
text format, so the numbers are read in the trio thread, consistently,
and only when scraped. It binds the actor's ``host`` (loopback unless
told otherwise), as every listener of the runtime does.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Iterator, List, Tuple

import trio

from ..runtime import Actor

log = logging.getLogger('tractorish.devx')

INSTALL_HINT = "pip install 'tractorish[metrics]'"
REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 8192

# (stats key, metric name, kind, help)
METRICS: List[Tuple[str, str, str, str]] = [
    ('calls_served', 'tractorish_calls_served', 'counter',
     'Calls this actor has served (the runtime\'s own included)'),
    ('calls_failed', 'tractorish_calls_failed', 'counter',
     'Calls served here that ended in an error'),
    ('calls_in_flight', 'tractorish_calls_in_flight', 'gauge', 'Calls running here now'),
    ('calls_waiting', 'tractorish_calls_waiting', 'gauge',
     'Calls this actor made that wait for their replies'),
    ('streams_open', 'tractorish_streams_open', 'gauge', 'Open streams, either side'),
    ('contexts_open', 'tractorish_contexts_open', 'gauge', 'Open contexts, either side'),
    ('credit_waits', 'tractorish_credit_waits', 'counter',
     'Stream sends that waited for the receiver\'s credit'),
    ('restarts', 'tractorish_restarts', 'counter',
     'Children restarted by supervisors in this actor'),
    ('messages_in', 'tractorish_messages_received', 'counter', 'Messages received'),
    ('messages_out', 'tractorish_messages_sent', 'counter', 'Messages sent'),
    ('bytes_in', 'tractorish_received_bytes', 'counter', 'Bytes received'),
    ('bytes_out', 'tractorish_sent_bytes', 'counter', 'Bytes sent'),
    ('rss', 'tractorish_resident_memory_bytes', 'gauge', 'Resident memory'),
    ('uptime', 'tractorish_uptime_seconds', 'gauge', 'Seconds since the actor started'),
]


class ActorCollector:
    """A ``prometheus_client`` collector reading one actor's stats."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        stats = self.actor.stats()
        labels = ['actor', 'uid']
        values = [stats['name'], stats['uid'][1]]
        for key, name, kind, text in METRICS:
            if stats.get(key) is None:
                continue
            family_type = CounterMetricFamily if kind == 'counter' else GaugeMetricFamily
            family = family_type(name, text, labels=labels)
            family.add_metric(values, stats[key])
            yield family


def _import_prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise RuntimeError(f'metrics_port needs prometheus_client, which is not '
                           f'installed: {INSTALL_HINT}') from None
    return prometheus_client


def render(actor: Actor) -> Tuple[bytes, str]:
    """The metrics page of ``actor`` and its content type."""
    prometheus_client = _import_prometheus()
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(ActorCollector(actor))
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


def _response(status: str, body: bytes, content_type: str = 'text/plain') -> bytes:
    head = (f'HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n'
            f'Content-Length: {len(body)}\r\nConnection: close\r\n\r\n')
    return head.encode('ascii') + body


async def _answer(actor: Actor, stream: trio.abc.Stream) -> None:
    async with stream:
        request = b''
        with trio.move_on_after(REQUEST_TIMEOUT):
            while b'\r\n\r\n' not in request and len(request) < MAX_REQUEST:
                try:
                    chunk = await stream.receive_some(4096)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not chunk:
                    break
                request += chunk
        words = request.split(b'\r\n', 1)[0].split()
        if len(words) < 2 or words[0] not in (b'GET', b'HEAD'):
            reply = _response('405 Method Not Allowed', b'GET /metrics\n')
        elif words[1].split(b'?', 1)[0] not in (b'/metrics', b'/'):
            reply = _response('404 Not Found', b'see /metrics\n')
        else:
            body, content_type = render(actor)
            reply = _response('200 OK', b'' if words[0] == b'HEAD' else body, content_type)
        try:
            await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def serve_metrics(actor: Actor, port: int,
                        task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``actor``'s metrics on ``port`` until cancelled."""
    _import_prometheus()  # say what is missing before listening
    listeners = await trio.open_tcp_listeners(port, host=actor.config.host)
    log.info('%r serves its metrics at http://%s:%d/metrics', actor, actor.config.host, port)
    task_status.started(port)
    await trio.serve_listeners(functools.partial(_answer, actor), listeners)
