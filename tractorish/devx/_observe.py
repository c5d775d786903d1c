"""Every actor's start-up hook for being seen: its process title, its
Prometheus endpoint, its tracing; and the tree debugger in debug mode.

Installed as a runtime start-up service by the package root
(``tractorish/__init__.py``), so it runs in every actor. Each part costs nothing unless asked for: the
title only where ``setproctitle`` is installed, metrics only with
``RuntimeConfig(metrics_port=...)``, tracing only where the program has
imported OpenTelemetry and configured a tracer provider. Nothing here
runs per call; tracing, once on, replaces the runtime's call entry points
with traced ones (see ``_tracing``), so it costs nothing while off.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Optional

import trio

from ..runtime import Actor

log = logging.getLogger('tractorish.devx')

TITLE_PREFIX = 'tractorish: '


def name_process(actor: Actor) -> bool:
    """Set a spawned actor's process title to its name, so that ``ps`` and
    ``top`` tell actors apart (``setproctitle``, if installed; the root
    keeps its program's title). True if set."""
    if actor.is_root:
        return False
    try:
        from setproctitle import setproctitle
    except ImportError:
        return False
    setproctitle(f'{TITLE_PREFIX}{actor.name} [{actor.uid[1][:8]}]')
    return True


def maybe_trace(actor: Actor) -> Optional[Callable[[], None]]:
    """Turn tracing on for ``actor`` if this program configured
    OpenTelemetry; return what turns it off again (None: it stays off).
    OpenTelemetry is never imported here: a program that configured a
    tracer provider has imported it already."""
    if 'opentelemetry.trace' not in sys.modules:
        return None
    from . import _tracing
    if not _tracing.provider_configured():
        return None
    return _tracing.enable(actor)


async def observe(actor: Actor, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The start-up service: title, metrics, tracing, the debugger; then,
    if any of those needs undoing or serving, wait until the runtime ends."""
    name_process(actor)
    stop_tracing = maybe_trace(actor)
    port = actor.config.metrics_port
    debug = actor.config.debug_mode
    if port is None and stop_tracing is None and not debug:
        task_status.started()
        return
    try:
        async with trio.open_nursery() as nursery:
            if port is not None:
                from ._metrics import serve_metrics
                await nursery.start(serve_metrics, actor, port)
            if debug:  # the tree debugger (debug_mode=True)
                from ._debug import serve as serve_debugger
                await nursery.start(serve_debugger, actor)
            task_status.started()
            await trio.sleep_forever()
    finally:
        if stop_tracing is not None:
            stop_tracing()

