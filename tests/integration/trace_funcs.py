"""Functions for the tracing tests: each actor that imports this module
records its spans in memory (an OpenTelemetry SDK tracer provider with an
in-memory exporter), and hands them over with ``finished_spans``."""
from __future__ import annotations

from typing import List

import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tractorish

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


def _plain(span) -> dict:
    return {'name': span.name, 'kind': span.kind.name,
            'trace_id': f'{span.context.trace_id:032x}',
            'span_id': f'{span.context.span_id:016x}',
            'parent_id': f'{span.parent.span_id:016x}' if span.parent else None,
            'actor': tractorish.current_actor().name,
            'attributes': dict(span.attributes or {}),
            'status': span.status.status_code.name}


async def finished_spans() -> List[dict]:
    """The spans this actor has ended so far."""
    return [_plain(span) for span in EXPORTER.get_finished_spans()]


async def leaf(x: int) -> int:
    await trio.sleep(0)
    return x + 1


async def middle(x: int) -> dict:
    """Calls ``leaf`` in a grandchild; returns the result and its spans."""
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('leaf', enable_modules=[__name__])
        value = await portal.run(leaf, x=x)
        spans = await portal.run(finished_spans)
        await portal.cancel_actor()
    return {'value': value, 'leaf_spans': spans}


async def fails() -> None:
    raise ValueError('traced failure')


async def count(n: int):
    for i in range(n):
        yield i


@tractorish.context
async def echo(ctx: tractorish.Context) -> str:
    await ctx.started('ready')
    async with ctx.open_stream() as stream:
        async for message in stream:
            await stream.send(message)
    return 'done'
