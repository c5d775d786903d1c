"""The protocol as docs/protocol.md writes it down is the protocol that runs.

The minimal client on that page is taken from it and run, in a process of
its own with only the standard library and msgpack, against a live actor.
And what an actor tells a peer before that peer has proved the secret is
checked with a raw socket.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import msgpack
import trio

import tractorish
from tractorish.ipc import normalize_addr
from tractorish.msg import Decoder

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / 'docs' / 'protocol.md'
CLIENT_MARK = '# tractorish_client.py'
# what the client may import: the doc promises these and nothing else
ALLOWED_IMPORTS = {'hashlib', 'hmac', 'os', 'socket', 'sys', 'msgpack'}


def doc_client_source() -> str:
    blocks = re.findall(r'```python\n(.*?)```', PROTOCOL_DOC.read_text(), re.S)
    [client] = [b for b in blocks if b.startswith(CLIENT_MARK)]
    return client


def test_the_doc_client_imports_only_what_it_says():
    imported = set(re.findall(r'^import (\w+)', doc_client_source(), re.M))
    assert not re.search(r'^from ', doc_client_source(), re.M)
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS


async def run_doc_client(tmp_path: Path, addr, *args: str, env=None):
    script = tmp_path / 'tractorish_client.py'
    script.write_text(doc_client_source())
    host, port = addr
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, '-I', str(script), host, str(port), *args],
            capture_stdout=True, capture_stderr=True, check=False,
            env=env if env is not None else dict(os.environ))


async def test_the_doc_client_calls_a_live_actor(tmp_path, reg_addr):
    async with tractorish.open_root_actor('doc-target', enable_modules=['actor_funcs'],
                                          registry_addrs=[reg_addr]):
        addr = tractorish.current_actor().listen_addrs[0]
        done = await run_doc_client(tmp_path, addr, 'actor_funcs', 'add', 'a=40', 'b=2')
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().strip() == '42'
        assert f'connected to pid {os.getpid()}' in done.stderr.decode()
        # a module the actor does not expose: an error, as the doc says
        refused = await run_doc_client(tmp_path, addr, 'os', 'system', 'command=true')
        assert refused.returncode == 1
        assert 'ModuleNotExposed' in refused.stderr.decode()


async def test_the_doc_client_reads_the_secret_file_as_the_runtime_does(
        tmp_path, reg_addr, monkeypatch):
    secret_file = tmp_path / 'secret'
    secret_file.write_text(os.urandom(32).hex() + '\n')  # as the runtime makes one
    secret_file.chmod(0o600)
    monkeypatch.delenv('TRACTORISH_SECRET')
    monkeypatch.setenv('TRACTORISH_SECRET_FILE', str(secret_file))
    async with tractorish.open_root_actor('doc-target', enable_modules=['actor_funcs'],
                                          registry_addrs=[reg_addr]):
        addr = tractorish.current_actor().listen_addrs[0]
        done = await run_doc_client(tmp_path, addr, 'actor_funcs', 'echo', 'value=from-file')
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().strip() == "'from-file'"
        # and with another secret it is refused
        env = dict(os.environ, TRACTORISH_SECRET='not-the-secret')
        wrong = await run_doc_client(tmp_path, addr, 'actor_funcs', 'add', 'a=1', 'b=1',
                                     env=env)
        assert wrong.returncode == 1
        assert 'refused' in wrong.stderr.decode()


async def read_messages_until_closed(stream: trio.SocketStream) -> list:
    decoder, messages = Decoder(), []
    with trio.fail_after(15):
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return messages
            if not data:
                return messages
            messages.extend(decoder.feed(data))


async def test_an_actor_tells_a_stranger_nothing_but_the_handshake_fields():
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('discreet', enable_modules=['actor_funcs'])
        # the parent, which proved the secret, got the actor's info
        assert portal.channel.peer_info['pid'] > 0
        assert portal.channel.peer_info['addrs']
        addr = normalize_addr(portal.channel.peer_info['addrs'][0])
        stream = await trio.open_tcp_stream(*addr)
        async with stream:
            await stream.send_all(msgpack.packb(
                {'hello': {'uid': ['stranger', 's' * 32], 'proto': 2,
                           'nonce': os.urandom(16)}}))
            # a proof made without the secret: the actor hangs up
            await stream.send_all(msgpack.packb({'auth': os.urandom(32)}))
            messages = await read_messages_until_closed(stream)
        [only] = messages  # its hello, and nothing more: no auth, no info
        assert set(only) == {'hello'}
        assert set(only['hello']) == {'uid', 'proto', 'nonce'}
        assert only['hello']['uid'] == list(portal.peer_uid)
        await portal.cancel_actor()
