"""Cross-actor cancellation: a timeout in the root reaches two actors down.

root --open_context--> middle --run_in_actor--> leaf

The leaf task waits forever. When the root's timeout expires, its
cancellation travels down the chain: the root cancels the middle's task,
whose cancelled actor nursery cancels the leaf, whose finally runs before
the root's block exits.

Run: python examples/context_cancel_chain.py
"""
import trio

import tractorish


async def leaf_wait() -> None:
    try:
        await trio.sleep_forever()
    finally:
        print('leaf: cancelled, finally ran', flush=True)


@tractorish.context
async def middle_relay(ctx: tractorish.Context) -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.run_in_actor(leaf_wait, name='leaf')
        await ctx.started()  # the whole chain is up
        await portal.result()


async def ping() -> str:
    return 'pong'


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('middle', enable_modules=[__name__])
        with trio.CancelScope() as scope:
            async with portal.open_context(middle_relay):
                # the timeout starts once the whole chain is up
                scope.deadline = trio.current_time() + 0.5
                print('root: chain is up, waiting for the timeout')
                await trio.sleep_forever()
        print('root: timed out:', scope.cancelled_caught)
        print('root: middle still serves:', await portal.run(ping))
        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
