"""The authenticated handshake, over an in-memory channel pair."""
from __future__ import annotations

import pytest
import trio
import trio.testing

from tractorish._exceptions import AuthenticationError
from tractorish.ipc import handshake, open_channel, open_memory_channel_pair
from tractorish.ipc._secret import make_mac
from tractorish.msg import PROTOCOL_VERSION, auth, cmd, hello, yield_

SECRET = b'shared-secret-for-tests'
CONNECTOR = ('connector', 'uuid-c')
ACCEPTOR = ('acceptor', 'uuid-a')
TIMEOUT = 10


async def run_both(connector_secret=SECRET, acceptor_secret=SECRET,
                   connector_info=None, acceptor_info=None):
    """Run both ends; return (connector outcome, acceptor outcome, chans)."""
    results = {}
    async with open_memory_channel_pair() as (c_chan, a_chan):
        async def side(name, chan, **kwargs):
            try:
                results[name] = await handshake(chan, **kwargs)
            except AuthenticationError as err:
                results[name] = err
                await chan.aclose()  # what connect/serve_listener do

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: side(
                    'connector', c_chan, uid=CONNECTOR, secret=connector_secret,
                    initiator=True, info=connector_info))
                nursery.start_soon(lambda: side(
                    'acceptor', a_chan, uid=ACCEPTOR, secret=acceptor_secret,
                    initiator=False, info=acceptor_info))
        return results['connector'], results['acceptor'], (c_chan, a_chan)


async def test_success_sets_peer_uid_both_ways():
    c_peer, a_peer, (c_chan, a_chan) = await run_both(
        connector_info={'pid': 11}, acceptor_info={'addr': ['127.0.0.1', 1]})
    assert c_chan.peer_uid == ACCEPTOR
    assert a_chan.peer_uid == CONNECTOR
    assert c_peer['uid'] == list(ACCEPTOR) and c_peer['proto'] == PROTOCOL_VERSION
    assert c_chan.peer_info['addr'] == ['127.0.0.1', 1]
    assert a_chan.peer_info['pid'] == 11


async def test_channel_is_usable_after_handshake():
    async with open_memory_channel_pair() as (c_chan, a_chan):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: handshake(
                    a_chan, uid=ACCEPTOR, secret=SECRET, initiator=False))
                await handshake(c_chan, uid=CONNECTOR, secret=SECRET, initiator=True)
            await c_chan.send(yield_('after', 'c'))
            assert await a_chan.receive() == yield_('after', 'c')


async def test_wrong_secret_fails_on_both_sides():
    c_out, a_out, (c_chan, a_chan) = await run_both(connector_secret=b'wrong')
    assert isinstance(a_out, AuthenticationError)
    assert 'failed authentication' in str(a_out)
    assert "'connector'" in str(a_out)
    assert isinstance(c_out, AuthenticationError)
    assert c_chan.peer_uid is None and a_chan.peer_uid is None


async def test_acceptor_never_proves_itself_to_a_wrong_secret():
    # the acceptor only sends its proof after checking the connector's
    c_out, a_out, _ = await run_both(acceptor_secret=b'other')
    assert isinstance(a_out, AuthenticationError)
    assert isinstance(c_out, AuthenticationError)


async def _fake_acceptor_run(behave):
    """Run a real connector against a hand-written acceptor."""
    async with open_memory_channel_pair() as (c_chan, a_chan):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(behave, a_chan)
                with pytest.raises(AuthenticationError) as info:
                    await handshake(c_chan, uid=CONNECTOR, secret=SECRET, initiator=True)
                nursery.cancel_scope.cancel()
        assert c_chan.peer_uid is None
    return info.value


async def test_reflected_proof_is_refused():
    # an acceptor without the secret echoes the connector's own nonce and
    # proof back; the direction label must make that fail
    async def reflector(chan):
        peer = (await chan.receive())['hello']
        await chan.send(hello(ACCEPTOR, peer['nonce']))
        proof = await chan.receive()
        await chan.send(proof)
        await trio.sleep_forever()

    err = await _fake_acceptor_run(reflector)
    assert 'failed authentication' in str(err)


async def test_proof_for_another_nonce_is_refused():
    # a replayed proof, valid for other nonces, does not pass
    async def replayer(chan):
        await chan.receive()
        await chan.send(hello(ACCEPTOR, b'a' * 16))
        await chan.receive()
        await chan.send(auth(make_mac(SECRET, b'tractorish-accept', b'b' * 16, b'a' * 16)))
        await trio.sleep_forever()

    err = await _fake_acceptor_run(replayer)
    assert 'failed authentication' in str(err)


async def test_other_protocol_version_is_refused():
    async def future_peer(chan):
        await chan.receive()
        await chan.send({'hello': {'uid': list(ACCEPTOR), 'proto': PROTOCOL_VERSION + 1,
                                   'nonce': b'n' * 16}})
        await trio.sleep_forever()

    err = await _fake_acceptor_run(future_peer)
    assert 'protocol' in str(err)


async def test_anything_but_hello_first_is_refused():
    async def rude_peer(chan):
        await chan.receive()
        await chan.send(cmd('os', 'system', {'command': 'true'}, ACCEPTOR, 'c'))
        await trio.sleep_forever()

    err = await _fake_acceptor_run(rude_peer)
    assert "'hello'" in str(err)


async def test_anything_but_auth_second_is_refused():
    async def rude_peer(chan):
        await chan.receive()
        await chan.send(hello(ACCEPTOR, b'n' * 16))
        await chan.receive()
        await chan.send(yield_('not a proof', 'c'))
        await trio.sleep_forever()

    err = await _fake_acceptor_run(rude_peer)
    assert "'auth'" in str(err)


async def test_garbage_instead_of_hello_is_an_authentication_error():
    ours, theirs = trio.testing.memory_stream_pair()
    with trio.fail_after(TIMEOUT):
        async with open_channel(ours) as chan:
            await theirs.send_all(b'\xc1 garbage')
            with pytest.raises(AuthenticationError, match='bad handshake message'):
                await handshake(chan, uid=CONNECTOR, secret=SECRET, initiator=True)


async def test_peer_hanging_up_is_an_authentication_error():
    async def quitter(chan):
        await chan.receive()
        await chan.aclose()

    err = await _fake_acceptor_run(quitter)
    assert 'handshake' in str(err)


async def test_acceptor_refuses_a_connector_that_skips_auth():
    async with open_memory_channel_pair() as (c_chan, a_chan):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                async def skipper():
                    await c_chan.send(hello(CONNECTOR, b'n' * 16))
                    await c_chan.receive()
                    await c_chan.send(cmd('mod', 'fn', {}, CONNECTOR, 'c'))
                nursery.start_soon(skipper)
                with pytest.raises(AuthenticationError):
                    await handshake(a_chan, uid=ACCEPTOR, secret=SECRET, initiator=False)
        assert a_chan.peer_uid is None
