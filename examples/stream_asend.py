"""Two-way generators: drive a remote async generator with asend().

Run: python examples/stream_asend.py
"""
import trio

import tractorish


async def running_total(start: int):
    """Adds every number it is sent to a total and yields the total."""
    total = start
    while True:
        sent = yield total
        if sent is not None:
            total += sent


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('adder', enable_modules=[__name__])
        async with portal.open_stream_from(running_total, start=100) as stream:
            # as with a local generator, the first asend() must send None:
            # it runs the generator up to its first yield
            print('start:', await stream.asend(None))
            for n in (1, 20, 300):
                print(f'after adding {n}:', await stream.asend(n))
            # receive() is asend(None)
            print('unchanged:', await stream.receive())
        # leaving the block closes the remote generator

        async with portal.open_stream_from(running_total, start=0) as stream:
            # anext() then asend(), as with a local generator
            await stream.receive()
            print('after receive() then adding 5:', await stream.asend(5))
            # a caller that keeps calling receive() lets the generator run
            # ahead (the stream flows faster); asend() then says so
            for _ in range(40):
                await stream.receive()
            try:
                await stream.asend(1)
            except RuntimeError:
                print('asend() after 40 receive() calls is refused')

        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
