"""Functions for the tractor-style programs of test_from_tractor.py.

Written as tractor's README and docs write them: ``import tractorish as
tractor``. Kept apart from the test module, so that children import only
this module.
"""
from __future__ import annotations

import trio

import tractorish as tractor


async def fail(n: int = 0) -> None:
    raise ValueError(f'child {n} failed')


async def fail_after(seconds: float, text: str) -> None:
    await trio.sleep(seconds)
    raise RuntimeError(text)


async def sleep_then_return(seconds: float, value: object) -> object:
    await trio.sleep(seconds)
    return value


async def sleep_forever() -> None:
    await trio.sleep_forever()


async def add(a: int, b: int) -> int:
    return a + b


async def whoami() -> dict:
    """The callee's view of itself and of its caller, through tractor's names."""
    actor = tractor.current_actor()
    ctx = tractor.current_ipc_ctx()
    rtv = tractor.get_runtime_vars()
    return {
        'aid': [actor.aid.name, actor.aid.uuid, actor.aid.pid],
        'uid': list(actor.uid),
        'caller': list(ctx.chan.aid.uid),
        'side': ctx.side,
        'is_root': rtv['_is_root'],
        'root_mailbox': list(rtv['_root_mailbox']),
        'is_registrar': actor.is_registrar,
        'transport': rtv['_enable_tpts'],
        'accept_addr': actor.accept_addr,
    }


def sync_whoami() -> list:
    """A plain function (run in a thread) sees its call's context too."""
    return list(tractor.current_ipc_ctx().chan.aid.uid)


async def inline_whoami() -> list:
    """No await: run inline by the reader; still has its call's context."""
    return list(tractor.current_ipc_ctx().chan.aid.uid)


async def grandchild_fails() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(fail, n=99)
        await portal.result()


@tractor.context
async def echo_ctx(ctx: tractor.Context, greeting: str) -> str:
    assert tractor.current_ipc_ctx() is ctx
    await ctx.started(greeting)
    async with ctx.open_stream(allow_overruns=True) as stream:
        async for msg in stream:
            await stream.send(msg)
    return 'done'


@tractor.context
async def counter_ctx(ctx: tractor.Context, start: int) -> None:
    await ctx.started(start)
    await trio.sleep_forever()


@tractor.stream
async def legacy_stream(ctx: tractor.Context, n: int) -> None:
    for i in range(n):
        await ctx.send_yield(i)


async def running_total(start: int):
    total = start
    while True:
        sent = yield total
        if sent is not None:
            total += sent


async def ticks(n: int):
    for i in range(n):
        yield i
