"""Find actors by name through the registry, and wait for ones not up yet.

The root finds no registry answering at the address it is given, so it
becomes the registrar itself; every actor of the tree registers there.

Run: python examples/discovery_find.py
"""
import os
import socket

import trio

import tractorish


def free_port() -> int:
    """A free loopback port, so the example never touches the default 1616."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


async def whoami() -> str:
    return f'{tractorish.current_actor().name} (pid {os.getpid()})'


async def main() -> None:
    registry = ('127.0.0.1', free_port())
    async with tractorish.open_nursery(registry_addrs=[registry]) as an:
        await an.start_actor('alpha', enable_modules=[__name__])

        # find_actor: a portal to the named actor, or None
        async with tractorish.find_actor('alpha') as portal:
            assert portal is not None
            print('found alpha:', await portal.run(whoami))
        async with tractorish.find_actor('nobody') as portal:
            print('find_actor for an unknown name gives', portal)
        # query_actor: only the address (and the registrar that knew it)
        async with tractorish.query_actor('alpha') as (addr, registrar):
            print('alpha listens on', addr)

        # two actors under one name: find_actor picks the one registered
        # last, find_actors gives them all, oldest first
        first = await an.start_actor('twin', enable_modules=[__name__])
        second = await an.start_actor('twin', enable_modules=[__name__])
        async with tractorish.find_actors('twin') as portals:
            print('twins registered:', len(portals))
        async with tractorish.find_actor('twin') as latest:
            assert latest is not None
            print('find_actor picks the newest twin:', latest.peer_uid == second.peer_uid)
        await first.cancel_actor()

        # wait_for_actor: block until an actor registers under the name
        async def wait_for_late() -> None:
            async with tractorish.wait_for_actor('late') as portal:
                print('waited for late:', await portal.run(whoami))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_late)
            await trio.sleep(0.5)  # the waiter is parked until 'late' starts
            print('starting late')
            await an.start_actor('late', enable_modules=[__name__])

        # wait_for_actors: several at once, bounded by a timeout
        async with tractorish.wait_for_actors('alpha', 'late', timeout=5) as by_name:
            print('wait_for_actors got:', sorted(by_name))
        try:
            async with tractorish.wait_for_actors('alpha', 'ghost', timeout=0.5):
                pass
        except TimeoutError as err:
            print('TimeoutError:', err)

        # list_actors: everything the registrar knows
        names = sorted({e['name'] for e in await tractorish.list_actors()})
        print('registered:', ', '.join(names))

        await an.cancel()  # stop the daemon actors; the block then exits


if __name__ == '__main__':
    trio.run(main)
