"""An actor tree whose every TCP channel runs over mutual TLS.

A throw-away certificate authority and one certificate are made at run time
with ``trustme`` (a test helper: ``pip install trustme``, part of the
``test`` extra). In production, use certificates from your own CA.

Run: python examples/tls_tree.py
"""
import os
import secrets
import socket
import subprocess
import sys
import tempfile

import trio

import tractorish

try:
    import trustme
except ImportError:
    trustme = None  # type: ignore[assignment]


def free_port() -> int:
    """A free loopback port, so the example never touches the default 1616."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def make_certs(directory: str) -> dict:
    """A CA, and a certificate it signed for 127.0.0.1, as PEM files."""
    ca = trustme.CA()
    # the name others connect to must be in the certificate: here loopback
    cert = ca.issue_cert('127.0.0.1', 'localhost')
    paths = {name: os.path.join(directory, f'{name}.pem')
             for name in ('tls_cert', 'tls_key', 'tls_ca')}
    cert.private_key_pem.write_to_path(paths['tls_key'])
    ca.cert_pem.write_to_path(paths['tls_ca'])
    cert.cert_chain_pems[0].write_to_path(paths['tls_cert'])
    for pem in cert.cert_chain_pems[1:]:  # the certificate, then its chain
        pem.write_to_path(paths['tls_cert'], append=True)
    return paths


async def square(x: int) -> int:
    return x * x


async def squares_below(n: int) -> list:
    """Runs in a child, which starts a grandchild: every hop is TLS."""
    async with tractorish.open_nursery() as an:
        portal = await an.start_actor('grandchild', enable_modules=[__name__])
        result = [await portal.run(square, x=x) for x in range(n)]
        await portal.cancel_actor()
    return result


def cli_ls(registry: tuple, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'tractorish', 'ls', '--registry', f'{registry[0]}:{registry[1]}'],
        env=env, capture_output=True, text=True, timeout=30)


async def main(paths: dict) -> None:
    registry = ('127.0.0.1', free_port())
    secret = os.environ.get('TRACTORISH_SECRET') or secrets.token_hex(16)
    # children inherit the config: the whole tree uses the same certificates
    config = tractorish.RuntimeConfig(secret=secret.encode(), **paths)
    async with tractorish.open_nursery(registry_addrs=[registry], config=config) as an:
        worker = await an.start_actor('worker', enable_modules=[__name__])
        print('over TLS: 12 * 12 =', await worker.run(square, x=12))
        middle = await an.run_in_actor(squares_below, name='middle', n=5)
        print('over TLS, two levels down:', await middle.result())

        # another program with the right secret but no certificate is refused
        env = {k: v for k, v in os.environ.items() if not k.startswith('TRACTORISH_TLS_')}
        env['TRACTORISH_SECRET'] = secret
        plain = await trio.to_thread.run_sync(cli_ls, registry, env)
        refused = plain.returncode == 1 and 'refused' in plain.stderr
        print('without a certificate: refused:', refused)
        # ... and let in with the tree's certificate ($TRACTORISH_TLS_*)
        env.update({f'TRACTORISH_{name.upper()}': path for name, path in paths.items()})
        with_tls = await trio.to_thread.run_sync(cli_ls, registry, env)
        names = {line.split()[0] for line in with_tls.stdout.splitlines()[1:]}
        print('with the certificate: exit status', with_tls.returncode,
              '- worker listed:', 'worker' in names)
        await worker.cancel_actor()


if __name__ == '__main__':
    if trustme is None:
        print('this example needs trustme to make its certificates: '
              'pip install trustme (skipping)')
        sys.exit(0)
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(main, make_certs(tmp))
