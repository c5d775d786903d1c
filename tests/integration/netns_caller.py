"""The caller on the second host of the multi-host test.

Finds 'calc' through the registry on the first host, then calls, streams
and cancels across the link, printing one line per check.
"""
import trio

import actor_funcs
import stream_funcs
import tractorish


async def main() -> None:
    config = tractorish.RuntimeConfig(discovery='client')
    async with tractorish.open_root_actor('remote-caller', config=config):
        async with tractorish.wait_for_actor('calc') as portal:
            print('call', await portal.run(actor_funcs.add, a=40, b=2), flush=True)
            print('pid', await portal.run(actor_funcs.getpid), flush=True)
            async with portal.open_stream_from(stream_funcs.count, n=1000) as stream:
                print('stream', sum([x async for x in stream]), flush=True)
            with trio.move_on_after(0.3) as scope:
                await portal.run(actor_funcs.sleep_forever_counting_cancels)
            print('cancelled', scope.cancelled_caught,
                  await portal.run(actor_funcs.cancelled_count), flush=True)
            async with portal.open_context(stream_funcs.echo_ctx, greeting='hi') as (ctx, _):
                async with ctx.open_stream() as s:
                    await s.send('over the wire')
                    print('echo', await s.receive(), flush=True)


if __name__ == '__main__':
    trio.run(main)
