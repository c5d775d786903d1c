"""A throwaway PostgreSQL server for the job store's tests and benchmark.

``TempPostgres().start()`` runs ``initdb`` into a temporary directory and
``pg_ctl start`` on a Unix socket in it (no TCP listener), as the
``postgres`` user when run as root (the server refuses to run as root);
``stop()`` stops it, waits for its processes to exit and removes the
directory. ``find_bin_dir()`` is ``None`` when no server is installed
(``.ci/run`` installs Debian's ``postgresql`` package then).

The server runs without fsync and autovacuum unless asked (``durable=True``,
for the benchmark): the tests crash programs, never the machine, and
without autovacuum (and parallel query) the server starts no processes of
its own between tests.
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from typing import List, Optional

START_TIMEOUT = 60


def _version_key(path: str) -> tuple:
    match = re.search(r'/postgresql/(\d+)', path)
    return (int(match.group(1)) if match else 0,)


def find_bin_dir() -> Optional[str]:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest version first)."""
    candidates = sorted(glob.glob('/usr/lib/postgresql/*/bin'), key=_version_key, reverse=True)
    on_path = shutil.which('pg_ctl')
    if on_path:
        candidates.append(os.path.dirname(os.path.realpath(on_path)))
    for directory in candidates:
        if all(os.access(os.path.join(directory, tool), os.X_OK)
               for tool in ('initdb', 'pg_ctl', 'postgres')):
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class TempPostgres:
    """One server in a temporary directory; see the module's docstring."""

    def __init__(self, bin_dir: str, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable  # fsync and autovacuum on, as in production
        self.base = tempfile.mkdtemp(prefix='tpg-')  # short: socket paths are limited
        self.data = os.path.join(self.base, 'data')
        self.port = _free_port()
        self.user: Optional[str] = None  # run the server as this user (we are root)
        self.pid: Optional[int] = None

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> None:
        command = [os.path.join(self.bin_dir, args[0]), *args[1:]]
        if self.user is not None:
            command = ['runuser', '-u', self.user, '--', *command]
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=timeout)

    def start(self) -> 'TempPostgres':
        os.chmod(self.base, 0o755)
        if os.geteuid() == 0:
            self.user = self._server_user()
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        options = ["-c listen_addresses=''", f'-k {self.base}', f'-p {self.port}',
                   '-c max_parallel_workers_per_gather=0', '-c max_connections=60',
                   '-c shared_buffers=32MB']
        if not self.durable:
            options += ['-c fsync=off', '-c full_page_writes=off', '-c autovacuum=off']
        try:
            self._run('initdb', '-D', self.data, '-U', 'postgres', '--auth=trust',
                      '-E', 'UTF8', '--no-sync')
            self._run('pg_ctl', '-D', self.data, '-l', os.path.join(self.base, 'log'), '-w',
                      '-t', str(START_TIMEOUT), '-o', ' '.join(options), 'start')
        except BaseException:
            self.stop()
            raise
        with open(os.path.join(self.data, 'postmaster.pid')) as f:
            self.pid = int(f.readline())
        return self

    @staticmethod
    def _server_user() -> str:
        for name in ('postgres', 'tractorish-pg'):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                pass
        subprocess.run(['useradd', '--system', '--no-create-home', 'tractorish-pg'], check=True)
        return 'tractorish-pg'

    def url(self, dbname: str = 'postgres') -> str:
        return f'postgresql://postgres@/{dbname}?host={self.base}&port={self.port}'

    def sql(self, *statements: str, dbname: str = 'postgres') -> List[tuple]:
        """Run ``statements`` (autocommit); the last one's rows."""
        import psycopg
        rows: List[tuple] = []
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            for statement in statements:
                cur = conn.execute(statement)
                rows = cur.fetchall() if cur.description else []
        return rows

    def stop(self) -> None:
        """Stop the server (fast), wait for it, remove its directory."""
        if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            try:
                self._run('pg_ctl', '-D', self.data, '-m', 'fast', '-w', '-t', '30', 'stop')
            except subprocess.SubprocessError:
                if self.pid:
                    try:
                        os.kill(self.pid, 9)
                    except ProcessLookupError:
                        pass
        if self.pid is not None:
            self._reap(self.pid)
        shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def _reap(pid: int) -> None:
        """The server was re-parented to us if we are a subreaper: reap it."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return  # not ours to reap
            if done:
                return
            time.sleep(0.05)
