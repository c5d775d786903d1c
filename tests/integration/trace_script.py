"""Run by test_tracing.py in a process of its own (a tracer provider is set
once per process): calls root -> middle -> leaf, a stream, a context and a
failing call with tracing on, and prints every actor's spans as JSON."""
import json
import sys

import trio

import trace_funcs  # sets the tracer provider: before the root actor starts
import tractorish


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('middle', enable_modules=['trace_funcs'])
        result = await portal.run(trace_funcs.middle, x=1)
        assert result['value'] == 2
        async with portal.open_stream_from(trace_funcs.count, n=3) as stream:
            assert [v async for v in stream] == [0, 1, 2]
        async with portal.open_context(trace_funcs.echo) as (ctx, first):
            async with ctx.open_stream() as stream:
                await stream.send('ping')
                assert await stream.receive() == 'ping'
        try:
            await portal.run(trace_funcs.fails)
        except tractorish.RemoteActorError:
            pass
        await portal.run(trace_funcs.leaf, x=0)  # the last of middle's spans end before
        middle_spans = await portal.run(trace_funcs.finished_spans)
        await portal.cancel_actor()
        own = await trace_funcs.finished_spans()
    json.dump({'root': own, 'middle': middle_spans, 'leaf': result['leaf_spans']}, sys.stdout)


if __name__ == '__main__':
    trio.run(main)
