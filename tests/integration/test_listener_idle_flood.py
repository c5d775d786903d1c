"""Idle connections that never authenticate cannot lock anyone out.

Another local process holds hundreds of plain TCP connections open to an
actor's listeners and opens a new one whenever the actor drops one. New
actors must still start (they connect back to their parent), calls must
go through, and registry lookups must still answer.
"""
from __future__ import annotations

import resource
import socket
import threading
from typing import Dict, List, Optional, Tuple

import trio

import actor_funcs
import tractorish
from tractorish.ipc import connect, normalize_addr

IDLE_PER_LISTENER = 500
RENEW_EVERY = 0.5  # seconds between the flood's passes over its sockets


class IdleFlood:
    """From a thread: ``count`` idle connections to each address, each one
    reopened when the actor closes it. Closes them all when stopped."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.socks: Dict[Tuple[str, int], List[Optional[socket.socket]]] = {}
        self.reopened = 0  # connections the actor closed and we opened again
        self.passes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add(self, addr: Tuple[str, int]) -> None:
        with self._lock:
            self.socks.setdefault(addr, [None] * self.count)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for socks in self.socks.values():
            for sock in socks:
                if sock is not None:
                    sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                targets = list(self.socks.items())
            for addr, socks in targets:
                for i, sock in enumerate(socks):
                    if self._stop.is_set():
                        return
                    if sock is not None and not _closed_by_peer(sock):
                        continue
                    if sock is not None:
                        sock.close()
                        self.reopened += 1
                    socks[i] = _open_idle(addr)
            self.passes += 1
            self._stop.wait(RENEW_EVERY)

    async def wait_passes(self, n: int) -> None:
        """Until the flood has been over all its sockets ``n`` more times."""
        target = self.passes + n
        while self.passes < target:
            await trio.sleep(0.05)


def _open_idle(addr: Tuple[str, int]) -> Optional[socket.socket]:
    try:
        return socket.create_connection(addr, timeout=2)
    except OSError:
        return None


def _closed_by_peer(sock: socket.socket) -> bool:
    """Drain what the actor sent (its hello); True once it has hung up."""
    while True:
        try:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True


def _room_for_descriptors(needed: int) -> Tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    return soft, hard


async def test_500_idle_connections_do_not_stop_spawning_calls_or_lookups():
    limits = _room_for_descriptors(8192)
    flood = IdleFlood(IDLE_PER_LISTENER)
    try:
        with trio.fail_after(90):
            async with tractorish.open_nursery() as an:
                me = tractorish.current_actor()
                for addr in me.listen_addrs:  # its own and the registry's
                    flood.add(addr)
                flood.start()
                await flood.wait_passes(2)  # all open, then renewed once
                assert flood.reopened > 0  # the actor drops what it must
                portal = await an.start_actor('under-flood', enable_modules=['actor_funcs'])
                child_addr = normalize_addr(portal.channel.peer_info['addrs'][0])
                flood.add(child_addr)
                await flood.wait_passes(1)  # the child's listener is flooded too
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(flood.wait_passes, 3)
                    while nursery.child_tasks:  # spawn, call, look up: meanwhile
                        second = await an.start_actor('second', enable_modules=['actor_funcs'])
                        assert await second.run(actor_funcs.add, a=2, b=2) == 4
                        for i in range(20):
                            assert await portal.run(actor_funcs.add, a=i, b=1) == i + 1
                        async with tractorish.find_actor('under-flood') as found:
                            assert found is not None
                            assert await found.run(actor_funcs.echo, value='hi') == 'hi'
                        await second.cancel_actor()
                        async with connect(child_addr, uid=('prober', 'p' * 32),
                                           secret=me.secret) as chan:
                            assert chan.peer_uid == portal.peer_uid
                await portal.cancel_actor()
    finally:
        flood.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
