"""Contexts: a started value, a two-way stream and a final result.

Run: python examples/context_echo.py
"""
import trio

import tractorish


@tractorish.context
async def echo(ctx: tractorish.Context, prefix: str) -> int:
    """Echo every message back with a prefix; return how many there were."""
    await ctx.started(f'echo server in {tractorish.current_actor().name!r} ready')
    count = 0
    async with ctx.open_stream() as stream:
        async for message in stream:  # ends when the caller closes its side
            await stream.send(f'{prefix}{message}')
            count += 1
    return count


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('echoer', enable_modules=[__name__])
        async with portal.open_context(echo, prefix='echo: ') as (ctx, first):
            print(first)
            async with ctx.open_stream() as stream:
                for word in ('one', 'two', 'three'):
                    await stream.send(word)
                    print(await stream.receive())
            # leaving the stream block sent 'stop': the callee's loop ended
            print('the callee echoed', await ctx.result(), 'messages')
        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
