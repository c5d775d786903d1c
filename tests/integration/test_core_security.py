"""Hostile or mistaken peers are refused; the actor goes on serving."""
from __future__ import annotations

import os

import pytest
import trio

import actor_funcs
import tractorish
from tractorish.ipc import connect, normalize_addr


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    data = b''
    with trio.fail_after(15):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return data
            if not chunk:
                return data
            data += chunk


async def test_garbage_and_wrong_secret_are_refused_while_a_good_client_works():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('target', enable_modules=['actor_funcs'])
        addr = normalize_addr(portal.channel.peer_info['addrs'][0])

        # 1. raw garbage: the actor hangs up on us
        garbage = await trio.open_tcp_stream(*addr)
        await garbage.send_all(b'\xc1\xc1 this is not msgpack \x00' * 10)
        await read_until_closed(garbage)
        await garbage.aclose()

        # 2. a well-formed hello with the wrong secret: refused, no cmd read
        with pytest.raises(tractorish.AuthenticationError):
            async with connect(addr, uid=('intruder', 'x' * 32),
                               secret=b'not the secret'):
                pass

        # 3. a good client, on the same actor, at the same time as the parent
        me = tractorish.current_actor()
        async with connect(addr, uid=('friend', 'y' * 32),
                           secret=me.config.secret) as chan:
            assert chan.peer_uid == portal.peer_uid
        assert await portal.run(actor_funcs.add, a=1, b=1) == 2
        await portal.cancel_actor()


async def test_a_cmd_before_the_handshake_is_never_run(tmp_path):
    marker = tmp_path / 'ran'
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('strict', enable_modules=['actor_funcs'])
        addr = normalize_addr(portal.channel.peer_info['addrs'][0])
        import msgpack
        stream = await trio.open_tcp_stream(*addr)
        await stream.send_all(msgpack.packb(
            {'cmd': ['actor_funcs', 'write_marker', {'path': str(marker)},
                     ['x', 'y'], '1']}))
        await read_until_closed(stream)
        await stream.aclose()
        assert not marker.exists()
        assert await portal.run(actor_funcs.echo, value='still here') == 'still here'
        await portal.cancel_actor()


async def test_secret_file_readable_by_others_is_refused(tmp_path, monkeypatch):
    path = tmp_path / 'secret'
    path.write_text('s3cret\n')
    os.chmod(path, 0o644)
    monkeypatch.delenv('TRACTORISH_SECRET')
    monkeypatch.setenv('TRACTORISH_SECRET_FILE', str(path))
    with pytest.raises(tractorish.SecretError, match='chmod 600'):
        async with tractorish.open_nursery():
            pass


async def test_a_malformed_error_from_a_peer_closes_only_its_channel():
    from tractorish import msg
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('sturdy', enable_modules=['actor_funcs'])
        addr = normalize_addr(portal.channel.peer_info['addrs'][0])
        me = tractorish.current_actor()
        async with connect(addr, uid=('rogue', 'r' * 32), secret=me.secret) as chan:
            await chan.send(msg.cmd('actor_funcs', 'sleep', {'seconds': 30},
                                    ['rogue', 'r' * 32], 'c0'))
            await chan.send({'error': {'type_str': 'X', 'tb_str': '', 'src_uid': 5,
                                       'boxed_type_path': 'x.X'}, 'cid': 'c0'})
            with trio.fail_after(10), pytest.raises(tractorish.TransportClosed):
                while True:
                    await chan.receive()
        assert await portal.run(actor_funcs.add, a=1, b=1) == 2
        await portal.cancel_actor()


async def test_an_error_too_big_to_send_arrives_shortened():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('verbose', enable_modules=['actor_funcs'])
        with pytest.raises(tractorish.RemoteActorError) as info:
            await portal.run(actor_funcs.raise_huge, size=40 * 1024 * 1024)
        assert info.value.boxed_type is ValueError
        assert 'could not be sent' in info.value.tb_str
        assert await portal.run(actor_funcs.add, a=1, b=1) == 2
        await portal.cancel_actor()
