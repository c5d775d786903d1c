"""An asyncio server inside an actor: an echo server written with
asyncio's streams, run by an actor started with ``infect_asyncio=True``,
and used from trio.

Run: python examples/asyncio_echo_server.py
"""
import asyncio

import trio

import tractorish
from tractorish import to_asyncio


async def echo_server(chan) -> None:
    """asyncio: serve echo on a free loopback port until told to stop."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(b'echo: ' + line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    async with server:
        chan.started_nowait(server.sockets[0].getsockname()[1])
        await chan.get()  # anything from the trio side: stop


@tractorish.context
async def serve(ctx: tractorish.Context) -> str:
    """trio, in the infected actor: run the asyncio server, hand out its port."""
    async with to_asyncio.open_channel_from(echo_server) as (port, chan):
        await ctx.started(port)
        async with ctx.open_stream() as stream:
            await stream.receive()  # the caller says when to stop
        await chan.send('stop')
    return 'server stopped'


async def main() -> None:
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('aio-server', enable_modules=[__name__],
                                      infect_asyncio=True)
        async with portal.open_context(serve) as (ctx, port):
            print(f'asyncio echo server in actor {portal.chan.aid.name!r} on port {port}')
            client = await trio.open_tcp_stream('127.0.0.1', port)
            async with client:
                for word in ('hello', 'from', 'trio'):
                    await client.send_all(word.encode() + b'\n')
                    reply = b''
                    while not reply.endswith(b'\n'):
                        reply += await client.receive_some(100)
                    print(reply.decode().strip())
            async with ctx.open_stream() as stream:
                await stream.send('stop')
        print(await ctx.result())
        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
