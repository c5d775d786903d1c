"""Local fan-out: several tasks subscribe to one remote stream.

Run: python examples/stream_subscribe.py
"""
import trio

import tractorish


async def prices(n: int):
    for i in range(n):
        yield {'seq': i, 'price': 100 + i % 7}


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('feed', enable_modules=[__name__])
        async with portal.open_stream_from(prices, n=200) as stream:
            everyone_in = trio.Event()

            async def watcher(name: str, delay: float, task_status=trio.TASK_STATUS_IGNORED):
                async with stream.subscribe(max_buffer=16) as receiver:
                    task_status.started()
                    # a subscriber gets only the values read after it
                    # subscribed, so nobody reads before all are in
                    await everyone_in.wait()
                    seen = []
                    async for quote in receiver:
                        seen.append(quote['seq'])
                        await trio.sleep(delay)  # the slowest sets the pace
                print(f'{name} saw {len(seen)} quotes, in order: {seen == list(range(200))}')

            async with trio.open_nursery() as nursery:
                for name, delay in [('fast', 0), ('slow', 0.002), ('average', 0.001)]:
                    await nursery.start(watcher, name, delay)
                everyone_in.set()
        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
