"""One-way streams: iterate a remote async generator, leave early, see its errors.

Run: python examples/stream_one_way.py
"""
import trio

import tractorish


async def count(n: int):
    for i in range(n):
        yield i


async def ticker():
    """Endless; its finally runs when the caller stops reading."""
    i = 0
    try:
        while True:
            yield i
            i += 1
            await trio.sleep(0.01)
    finally:
        print(f'ticker: finally ran after {i} ticks', flush=True)


async def parse(lines: list):
    for line in lines:
        yield int(line)  # fails on the third line


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('streamer', enable_modules=[__name__])

        # read a stream to its end
        async with portal.open_stream_from(count, n=5) as stream:
            print('received:', [x async for x in stream])

        # leaving the block early cancels the remote generator; its finally
        # has run by the time the block exits
        async with portal.open_stream_from(ticker) as stream:
            async for x in stream:
                if x == 3:
                    break
        print('left the ticker after 4 values')

        # a remote error arrives after the values sent before it
        try:
            async with portal.open_stream_from(parse, lines=['1', '2', 'three']) as stream:
                async for x in stream:
                    print('parsed', x)
        except tractorish.RemoteActorError as err:
            print(f'stream failed remotely: {err.type_str}')

        # many calls share one portal, each on its own call id
        async def total(n: int) -> None:
            async with portal.open_stream_from(count, n=n) as stream:
                print(f'sum(range({n})) = {sum([x async for x in stream])}')

        async with trio.open_nursery() as nursery:
            for n in (10, 100, 1000):
                nursery.start_soon(total, n)

        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
