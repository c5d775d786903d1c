"""Functions run in asyncio-infected actors (test_to_asyncio.py)."""
from __future__ import annotations

import asyncio

import trio

import tractorish
from tractorish import to_asyncio


async def aio_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def aio_fail(text: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(text)


async def aio_sleep_then_mark(seconds: float, marks: list) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        marks.append('cancelled')
        raise
    marks.append('done')


async def aio_cancel_self() -> None:
    asyncio.current_task().cancel()
    await asyncio.sleep(1)


async def add_via_asyncio(a: int, b: int) -> int:
    """trio code in the actor, asking asyncio."""
    return await to_asyncio.run_task(aio_add, a=a, b=b)


async def fail_via_asyncio(text: str) -> None:
    await to_asyncio.run_task(aio_fail, text=text)


async def cancel_from_trio() -> list:
    marks: list = []
    with trio.move_on_after(0.1):
        await to_asyncio.run_task(aio_sleep_then_mark, seconds=30, marks=marks)
    return marks + [len(asyncio.all_tasks()) <= 1]


async def cancelled_by_asyncio() -> str:
    try:
        await to_asyncio.run_task(aio_cancel_self)
    except to_asyncio.AsyncioCancelled as err:
        return f'AsyncioCancelled: {err}'
    return 'no error'


async def infected() -> list:
    actor = tractorish.current_actor()
    loop = asyncio.get_running_loop()
    return [actor.is_infected_aio(), loop.is_running()]


async def echo_server(chan, prefix: str) -> None:
    """asyncio side of a channel: answer each value sent, until 'stop'."""
    chan.started_nowait('ready')
    while True:
        value = await chan.get()
        if value == 'stop':
            return
        chan.send_nowait(f'{prefix}{value}')


async def counter(chan, n: int) -> None:
    chan.started_nowait(n)
    for i in range(n):
        while True:
            try:
                chan.send_nowait(i)
                break
            except trio.WouldBlock:
                await asyncio.sleep(0.001)


async def fails_after_start(chan) -> None:
    chan.started_nowait(1)
    await asyncio.sleep(0.05)
    raise KeyError('asyncio side failed')


async def channel_echo(n: int) -> list:
    got = []
    async with to_asyncio.open_channel_from(echo_server, prefix='echo: ') as (first, chan):
        got.append(first)
        for i in range(n):
            await chan.send(i)
            got.append(await chan.receive())
        await chan.send('stop')
        try:
            await chan.receive()
        except trio.EndOfChannel:
            got.append('end')
    return got + [len(asyncio.all_tasks()) <= 1]


async def channel_count(n: int) -> bool:
    async with to_asyncio.open_channel_from(counter, n=n) as (first, chan):
        values = [x async for x in chan]
    return first == n and values == list(range(n)) and len(asyncio.all_tasks()) <= 1


async def channel_fails() -> str:
    try:
        async with to_asyncio.open_channel_from(fails_after_start) as (first, chan):
            await trio.sleep(30)  # cancelled by the asyncio side's failure
    except KeyError as err:
        return f'KeyError {err} tasks left {len(asyncio.all_tasks()) - 1}'
    return 'no error'


async def channel_cancelled_from_trio() -> list:
    marks: list = []

    async def aio(chan) -> None:
        chan.started_nowait(None)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            marks.append('aio cancelled')
            raise
    with trio.move_on_after(0.1):
        async with to_asyncio.open_channel_from(aio) as (_, chan):
            await trio.sleep(30)
    return marks + [len(asyncio.all_tasks()) <= 1]


async def run_task_here() -> str:
    try:
        await to_asyncio.run_task(aio_add, a=1, b=2)
    except RuntimeError as err:
        return str(err)
    return 'no error'


MARKS: list = []


async def aio_long(seconds: float) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        MARKS.append('asyncio task cancelled')
        raise


async def long_via_asyncio(seconds: float) -> None:
    await to_asyncio.run_task(aio_long, seconds=seconds)


async def marks() -> list:
    return list(MARKS)


async def traceback_names() -> str:
    try:
        await to_asyncio.run_task(aio_fail, text='deep')
    except ValueError:
        import traceback
        return traceback.format_exc()
    return ''


async def aio_ignore_cancellation() -> None:
    while True:
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            pass  # (what a careless library does)


async def run_a_task_that_ignores_cancellation() -> None:
    await to_asyncio.run_task(aio_ignore_cancellation)


async def cancels_itself(chan) -> None:
    chan.started_nowait('ready')
    await asyncio.sleep(0.05)
    asyncio.current_task().cancel()  # asyncio's own cancel, not the trio side's
    await asyncio.sleep(10)


async def channel_cancelled_by_asyncio(read: bool) -> str:
    """The block ends with AsyncioCancelled, whether it waits or reads."""
    try:
        async with to_asyncio.open_channel_from(cancels_itself) as (first, chan):
            if read:
                async for _ in chan:
                    pass
            else:
                await trio.sleep(30)  # cancelled: the task's end ends the block
    except to_asyncio.AsyncioCancelled:
        return 'AsyncioCancelled'
    return 'the block ended normally'
