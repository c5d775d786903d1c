"""Mutual TLS on TCP channels, with certificates made at test time."""
from __future__ import annotations

import pytest
import trio
import trustme

import actor_funcs
import tractorish
from tractorish.ipc import TLS, connect, normalize_addr


def write_identity(ca: trustme.CA, tmp_path, name: str) -> dict:
    cert = ca.issue_cert('127.0.0.1', 'localhost')
    paths = {'tls_cert': tmp_path / f'{name}-cert.pem', 'tls_key': tmp_path / f'{name}-key.pem',
             'tls_ca': tmp_path / f'{name}-ca.pem'}
    cert.cert_chain_pems[0].write_to_path(str(paths['tls_cert']))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(paths['tls_cert']), append=True)
    cert.private_key_pem.write_to_path(str(paths['tls_key']))
    ca.cert_pem.write_to_path(str(paths['tls_ca']))
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def tls_paths(tmp_path):
    return write_identity(trustme.CA(), tmp_path, 'tree')


async def test_a_tree_over_tls(tls_paths):
    config = tractorish.RuntimeConfig(**tls_paths)
    async with tractorish.open_nursery(config=config) as an:
        portal = await an.run_in_actor(actor_funcs.spawn_grandchild_result,
                                       name='middle', a=2, b=3)
        assert (await portal.result())[1]['sum'] == 5
        worker = await an.start_actor('tls-worker', enable_modules=['actor_funcs'])
        assert isinstance(worker.channel._io.stream, trio.SSLStream)
        assert await worker.run(actor_funcs.echo, value=b'\x00' * 100_000) == b'\x00' * 100_000
        await worker.cancel_actor()


async def test_plain_and_foreign_clients_are_refused(tls_paths, tmp_path):
    config = tractorish.RuntimeConfig(**tls_paths)
    me_secret = None
    async with tractorish.open_nursery(config=config) as an:
        portal = await an.start_actor('guarded', enable_modules=['actor_funcs'])
        addr = normalize_addr(portal.channel.peer_info['addrs'][0])
        me = tractorish.current_actor()
        me_secret = me.secret
        # no TLS at all: the TLS server hangs up on a plain hello
        with pytest.raises(tractorish.AuthenticationError):
            async with connect(addr, uid=('plain', 'p' * 32), secret=me_secret):
                pass
        # a certificate from another CA: refused by the TLS handshake
        foreign = write_identity(trustme.CA(), tmp_path, 'foreign')
        with pytest.raises(tractorish.AuthenticationError, match='TLS'):
            async with connect(addr, uid=('foreign', 'f' * 32), secret=me_secret,
                               tls=TLS(foreign['tls_cert'], foreign['tls_key'],
                                       foreign['tls_ca'])):
                pass
        # the right certificate but the wrong secret: still refused
        with pytest.raises(tractorish.AuthenticationError):
            async with connect(addr, uid=('insider', 'i' * 32), secret=b'wrong',
                               tls=me.tls):
                pass
        # the right certificate and secret: in
        async with connect(addr, uid=('friend', 'g' * 32), secret=me_secret,
                           tls=me.tls) as chan:
            assert chan.peer_uid == portal.peer_uid
        assert await portal.run(actor_funcs.add, a=1, b=1) == 2
        await portal.cancel_actor()


def test_tls_config_errors_are_clear(tls_paths):
    with pytest.raises(ValueError, match='all three'):
        TLS.from_paths(tls_paths['tls_cert'], None, None)
    with pytest.raises(ValueError, match='cannot load TLS files'):
        TLS('/nonexistent/cert.pem', '/nonexistent/key.pem', tls_paths['tls_ca'])
