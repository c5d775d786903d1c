"""Spans across actors with OpenTelemetry (imported only when configured).

Once on (see ``_observe.maybe_trace``), every ``Portal.run``,
``open_stream_from`` and ``open_context`` of a user's function is a
client span, and the call's ``cmd`` message carries that span's context
(W3C trace context, from the configured propagator) in its optional
``meta`` field (docs/protocol.md). The callee runs the function inside a
server span whose parent is that context, so the calls the function makes
in turn are its children: one trace crosses root, child and grandchild.

How it costs nothing while off: nothing on the per-call path asks whether
tracing is on. Turning it on replaces the actor's call entry points
(``start_call``, ``_start_rpc``, ``_run_rpc``, ``_run_inline``: attributes
of the one actor object) and the three ``Portal`` methods with traced
wrappers of themselves; turning it off puts the originals back.

The runtime's own calls (``'self'``: cancel, stats) and the registrar's
are not traced.
"""
from __future__ import annotations

import functools
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Dict, Optional

import trio
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from .. import __version__
from ..msg import MAIN_ALIAS
from ..runtime import Actor, Portal
from ..runtime._portal import function_ref

SYSTEM = 'tractorish'
_UNTRACED_PREFIX = 'tractorish.'  # the runtime's own modules (the registrar)
_EMPTY = otel_context.Context()


def provider_configured() -> bool:
    """True once the program has set a tracer provider (the API's default
    is a proxy that records nothing)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def traced(ns: str) -> bool:
    return ns != 'self' and not ns.startswith(_UNTRACED_PREFIX)


def _attributes(actor: Actor, ns: str, func: str, peer: Any) -> Dict[str, Any]:
    return {'rpc.system': SYSTEM, 'rpc.service': ns, 'rpc.method': func,
            'tractorish.actor': actor.name,
            'tractorish.peer': peer[0] if peer else '?'}


def _tracer() -> trace.Tracer:
    return trace.get_tracer(SYSTEM, __version__)


# --- the caller's side -------------------------------------------------------------------

def _client_span(portal: Portal, ns: str, func: str) -> Any:
    return _tracer().start_as_current_span(
        f'{ns}/{func}', kind=trace.SpanKind.CLIENT,
        attributes=_attributes(portal.actor, ns, func, portal.channel.peer_uid))


def _traced_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _run(self: Portal, ns: str, func: str, kwargs: dict) -> Any:
        if not traced(ns):
            return await original(self, ns, func, kwargs)
        with _client_span(self, ns, func):
            return await original(self, ns, func, kwargs)
    return _run


def _traced_opener(original: Callable[..., Any]) -> Callable[..., Any]:
    """``open_stream_from`` / ``open_context``: a span for the whole block."""
    @functools.wraps(original)
    @asynccontextmanager
    async def opener(self: Portal, fn: Callable[..., Any], *args: Any,
                     **kwargs: Any) -> AsyncIterator[Any]:
        ns, func = function_ref(fn)
        if not traced(ns):
            async with original(self, fn, *args, **kwargs) as value:
                yield value
            return
        with _client_span(self, ns, func):
            async with original(self, fn, *args, **kwargs) as value:
                yield value
    return opener


def _traced_start_call(original: Callable[..., Any]) -> Callable[..., Any]:
    async def start_call(chan: Any, ns: str, func_name: str, kwargs: dict,
                         meta: Optional[dict] = None) -> Any:
        if traced(ns):
            carrier: Dict[str, str] = {}
            propagate.inject(carrier)
            if carrier:
                meta = {**(meta or {}), 'trace': carrier}
        return await original(chan, ns, func_name, kwargs, meta)
    return start_call


# --- the callee's side -----------------------------------------------------------------------

def _traced_start_rpc(original: Callable[..., Any]) -> Callable[..., Any]:
    """Makes the caller's context (none: an empty one) current while the
    call is set off: its task, or the inline run, starts with it."""
    def _start_rpc(state: Any, message: dict) -> bool:
        meta = message.get('meta')
        carrier = meta.get('trace') if type(meta) is dict else None
        parent = _EMPTY
        if type(carrier) is dict:
            try:
                parent = propagate.extract({str(k): str(v) for k, v in carrier.items()})
            except Exception:  # a peer's malformed context: start afresh
                parent = _EMPTY
        token = otel_context.attach(parent)
        try:
            return original(state, message)
        finally:
            otel_context.detach(token)
    return _start_rpc


def _server_span(actor: Actor, ns: str, func: str, peer: Any) -> Any:
    return _tracer().start_as_current_span(
        f'{ns}/{func}', kind=trace.SpanKind.SERVER,
        attributes=_attributes(actor, ns, func, peer))


def _traced_run_rpc(actor: Actor, original: Callable[..., Any]) -> Callable[..., Any]:
    @trio.lowlevel.enable_ki_protection
    async def _run_rpc(task: Any, fn: Callable[..., Any], functype: str, ns: str,
                       func_name: str, kwargs: dict) -> None:
        if not traced(ns):
            return await original(task, fn, functype, ns, func_name, kwargs)
        with _server_span(actor, ns, func_name, task.caller_uid) as span:
            await original(task, fn, functype, ns, func_name, kwargs)
            if task.scope.cancelled_caught:
                span.set_attribute('tractorish.cancelled', True)
    return _run_rpc


def _traced_run_inline(actor: Actor, original: Callable[..., Any]) -> Callable[..., Any]:
    def _run_inline(chan: Any, fn: Callable[..., Any], kwargs: dict, cid: str) -> None:
        ns = fn.__module__
        ns = '__main__' if ns == MAIN_ALIAS else ns
        with _server_span(actor, ns, fn.__name__, chan.peer_uid):
            original(chan, fn, kwargs, cid)
    return _run_inline


def _marking_errors(original: Callable[..., Any]) -> Callable[..., Any]:
    """``_send_error`` / ``_reply_error_now``: the call failed; its span says so."""
    def mark(*args: Any, **kwargs: Any) -> Any:
        span = trace.get_current_span()
        if span.is_recording():
            error = next((a for a in args if isinstance(a, BaseException)), None)
            if error is None:  # a packed error payload
                payload = next((a for a in args if isinstance(a, dict)), {})
                description = str(payload.get('type_str', 'error'))
            else:
                span.record_exception(error)
                description = f'{type(error).__name__}: {error}'
            span.set_status(trace.Status(trace.StatusCode.ERROR, description))
        return original(*args, **kwargs)
    return mark


# --- on and off ------------------------------------------------------------------------------

_PORTAL_METHODS = {'_run': _traced_run, 'open_stream_from': _traced_opener,
                   'open_context': _traced_opener}


def enable(actor: Actor) -> Callable[[], None]:
    """Trace ``actor``'s calls, both ways; return what turns it off."""
    originals = {name: getattr(Portal, name) for name in _PORTAL_METHODS}
    for name, wrap in _PORTAL_METHODS.items():
        setattr(Portal, name, wrap(originals[name]))
    actor.start_call = _traced_start_call(actor.start_call)  # type: ignore[method-assign]
    actor._start_rpc = _traced_start_rpc(actor._start_rpc)  # type: ignore[method-assign]
    actor._run_rpc = _traced_run_rpc(actor, actor._run_rpc)  # type: ignore[method-assign]
    actor._run_inline = _traced_run_inline(actor, actor._run_inline)  # type: ignore[method-assign]
    actor._send_error = _marking_errors(actor._send_error)  # type: ignore[method-assign]
    actor._reply_error_now = _marking_errors(actor._reply_error_now)  # type: ignore[method-assign]

    def disable() -> None:
        for name, method in originals.items():
            setattr(Portal, name, method)
        for name in ('start_call', '_start_rpc', '_run_rpc', '_run_inline', '_send_error',
                     '_reply_error_now'):
            actor.__dict__.pop(name, None)
    return disable
