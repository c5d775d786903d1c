"""A party without the secret cannot relay another actor's proof."""
from __future__ import annotations

import pytest
import trio

from tractorish import AuthenticationError, msg
from tractorish.ipc import connect, open_channel, open_listener, serve_listener
from tractorish.msg import Decoder

SECRET = b'the user secret'


async def test_a_relayed_connect_proof_is_refused():
    served = []

    async def handler(chan):
        served.append(chan.peer_uid)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        # B: a genuine actor listening
        listener, b_addr = await open_listener(('127.0.0.1', 0))
        await nursery.start(lambda task_status: serve_listener(
            listener, b_addr, handler, uid=('B', 'b' * 32), secret=SECRET,
            task_status=task_status))
        # the attacker listens where C will connect (say, a squatted port)
        trap, trap_addr = await open_listener(('127.0.0.1', 0))

        async def victim_c():  # C: a genuine actor, tricked into connecting
            with pytest.raises(AuthenticationError):
                async with connect(trap_addr, uid=('C', 'c' * 32), secret=SECRET):
                    pass
        nursery.start_soon(victim_c)

        with trio.fail_after(10):
            async with open_channel(await trio.open_tcp_stream(*b_addr)) as to_b:
                hello_b = (await to_b.receive())['hello']
                stream_c = await trap.accept()
                hello_c = Decoder().feed(await stream_c.receive_some(65536))[0]['hello']
                async with open_channel(stream_c) as from_c:
                    # pose as B to C, with B's nonce, to get C's proof for it
                    await from_c.send(msg.hello(['B', 'b' * 32], hello_b['nonce']))
                    proof = (await from_c.receive())['auth']
                    # and replay that proof to B as if we were C
                    await to_b.send(msg.hello(['C', 'c' * 32], hello_c['nonce']))
                    await to_b.send(msg.auth(proof))
                    with pytest.raises(Exception):  # B hangs up: no 'auth' for us
                        reply = await to_b.receive()
                        assert 'auth' not in reply
                        raise AssertionError(f'B answered {reply}')
        assert served == []
        nursery.cancel_scope.cancel()
        await trap.aclose()
