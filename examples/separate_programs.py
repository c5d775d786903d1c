"""Separate programs that meet at a registry daemon.

The parent launches two programs that share nothing but a registry address
and a secret: a registry daemon (``python -m tractorish registry``) and a
worker (this same file, run as ``separate_programs.py worker NAME``). It
then finds the worker by name, calls it, and stops both programs.

Run: python examples/separate_programs.py
"""
import os
import secrets
import signal
import socket
import subprocess
import sys

import trio

import tractorish

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    """A free loopback port, so the example never touches the default 1616."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# --- the worker program ----------------------------------------------------

async def greet(who: str) -> str:
    """Runs in the worker; the parent calls it by name."""
    return f'hello {who}, from {tractorish.current_actor().name} (pid {os.getpid()})'


async def serve(name: str) -> None:
    # the registry comes from $TRACTORISH_REGISTRY, the secret from
    # $TRACTORISH_SECRET: both set by whoever launched this program
    async with tractorish.open_root_actor(name, enable_modules=[__name__]):
        print('ready', flush=True)
        await trio.sleep_forever()


def worker_main(name: str) -> None:
    try:
        trio.run(serve, name)
    except KeyboardInterrupt:  # SIGINT is how the parent stops us
        pass


# --- the parent --------------------------------------------------------------

def launch(args: list, env: dict, ready: str) -> subprocess.Popen:
    """Start a program and wait until it prints a line containing ``ready``."""
    proc = subprocess.Popen([sys.executable, *args], env=env, cwd=HERE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if ready in line:
            print(f'[{args[-1] if args[0] != "-m" else "registry"}] {line.strip()}')
            return proc
    proc.wait()
    raise RuntimeError(f'{args} exited with status {proc.returncode} before it was ready')


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C a program and wait for it to exit (SIGKILL if it will not)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


async def call_worker(registry: tuple, secret: str) -> None:
    # discovery='client': look things up, but do not register ourselves
    config = tractorish.RuntimeConfig(secret=secret.encode(), discovery='client')
    async with tractorish.open_root_actor('caller', registry_addrs=[registry],
                                          config=config):
        with trio.fail_after(20):  # wait_for_actor itself waits as long as it takes
            async with tractorish.wait_for_actor('greeter', registry_addr=registry) as portal:
                print(await portal.run(greet, who='parent'))
        for entry in await tractorish.list_actors(registry):
            print(f"registered: {entry['name']} (pid {entry['pid']})")


def main() -> None:
    registry = ('127.0.0.1', free_port())
    secret = os.environ.get('TRACTORISH_SECRET') or secrets.token_hex(16)
    env = {**os.environ, 'TRACTORISH_REGISTRY': f'{registry[0]}:{registry[1]}',
           'TRACTORISH_SECRET': secret}
    daemon = launch(['-m', 'tractorish', 'registry', '--host', registry[0],
                     '--port', str(registry[1])], env, 'listening on')
    try:
        worker = launch([os.path.abspath(__file__), 'worker', 'greeter'], env, 'ready')
        try:
            trio.run(call_worker, registry, secret)
        finally:
            stop(worker)
            print('worker stopped, exit status', worker.returncode)
    finally:
        stop(daemon)
        print('registry stopped, exit status', daemon.returncode)


if __name__ == '__main__':
    if sys.argv[1:2] == ['worker']:
        worker_main(sys.argv[2])
    else:
        main()
