"""Errors and cancellation in contexts, in both directions.

Run: python examples/context_errors.py
"""
import trio

import tractorish


@tractorish.context
async def fail_later(ctx: tractorish.Context) -> None:
    await ctx.started()
    await trio.sleep(0.2)
    raise KeyError('the callee gave up')


@tractorish.context
async def consume(ctx: tractorish.Context) -> None:
    await ctx.started()
    async with ctx.open_stream() as stream:
        try:
            async for value in stream:
                print('callee got', value, flush=True)
        except tractorish.RemoteActorError as err:
            # the caller's error arrives here; then this task is cancelled
            print(f'callee saw the caller fail with {err.type_str}', flush=True)
            raise


@tractorish.context
async def wait_forever(ctx: tractorish.Context) -> None:
    await ctx.started()
    try:
        await trio.sleep_forever()
    finally:
        print('callee: cancelled', flush=True)


@tractorish.context
async def cancel_myself(ctx: tractorish.Context) -> None:
    await ctx.started()
    await ctx.cancel()
    await trio.sleep_forever()


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('callee', enable_modules=[__name__])

        # 1. a callee error cancels the caller's block and is raised from it
        try:
            async with portal.open_context(fail_later):
                await trio.sleep_forever()
        except tractorish.RemoteActorError as err:
            print(f'caller: block cancelled by the remote {err.type_str}')

        # 2. a caller error is sent to the callee, which is then cancelled
        try:
            async with portal.open_context(consume) as (ctx, _):
                async with ctx.open_stream() as stream:
                    await stream.send('hello')
                    await trio.sleep(0.1)
                    raise ValueError('the caller gave up')
        except ValueError:
            print('caller: ValueError raised as itself')

        # 3. ctx.cancel() from the caller is not raised back
        async with portal.open_context(wait_forever) as (ctx, _):
            await ctx.cancel()
        print('caller: after ctx.cancel(), result() =', await ctx.result())

        # 4. a cancel asked for by anyone else is a ContextCancelled
        try:
            async with portal.open_context(cancel_myself):
                await trio.sleep_forever()
        except tractorish.ContextCancelled as err:
            print(f'caller: ContextCancelled, canceller {err.canceller[0]!r}')

        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
