"""The SQLite job store, the default: one file, worked by one program at a time.

The file is in WAL mode with ``synchronous=FULL``: a commit is on disk when
it returns, and readers never wait for the writer. The program whose queue
works the store holds an exclusive ``flock`` on a lock file beside it
(``jobs.db-lock``) while its queue is open. The kernel drops that lock when
the program dies, however it dies, so the next program to open the store
knows that every job still marked ``running`` belonged to a program that is
gone, and takes those jobs up again at once (no lease to wait out).
Programs that only read or retry jobs (``tractorish jobs``) take no lock:
SQLite orders their short transactions with the worker's.

Before writing anything, opening checks the file: not a SQLite database
(corrupt), another application's database, or a schema newer than this
version of tractorish knows are each a :class:`JobStoreError`, and the file
is left as it was.
"""
from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import time
from typing import Any, Optional, Set, Tuple

import trio

from ._store import SCHEMA_VERSION, JobStoreError, SqlJobStore

SCHEMA = f"""
CREATE TABLE tractorish_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tractorish_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    fn TEXT NOT NULL,
    args BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    worker TEXT,
    lease_until REAL,
    result BLOB,
    error BLOB,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL);
CREATE INDEX tractorish_jobs_pending ON tractorish_jobs (seq) WHERE status = 'pending';
CREATE INDEX tractorish_jobs_running ON tractorish_jobs (lease_until) WHERE status = 'running';
CREATE TABLE tractorish_functions (fn TEXT PRIMARY KEY);
CREATE TABLE tractorish_attempts (
    job_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    owner TEXT NOT NULL,
    worker TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,
    detail TEXT,
    PRIMARY KEY (job_id, number));
CREATE INDEX tractorish_attempts_open ON tractorish_attempts (owner) WHERE outcome IS NULL;
INSERT INTO tractorish_meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
_LOCK_POLL = 0.05  # s between tries for the lock file


class SqliteJobStore(SqlJobStore):
    """A job store in one SQLite file; see the module's docstring."""

    def __init__(self, path: str, *, lock_timeout: float) -> None:
        super().__init__(path)
        self.path = path
        self.lock_timeout = lock_timeout
        self._lock_fd: Optional[int] = None

    @classmethod
    async def open(cls, path: str, *, exclusive: bool, create: bool,
                   lock_timeout: float = 5.0) -> 'SqliteJobStore':
        """Open (or create) the store at ``path``; with ``exclusive``, as the one
        program that works it. Runs in a thread: the checks and the lock wait
        (at most ``lock_timeout`` s) do not block the trio thread."""
        store = cls(os.path.abspath(os.fspath(path)), lock_timeout=lock_timeout)
        await trio.to_thread.run_sync(store._open, exclusive, create)
        return store

    # --- opening -------------------------------------------------------------------------

    def _open(self, exclusive: bool, create: bool) -> None:
        try:
            if exclusive:
                self._take_lock_file()
            exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
            if not exists and not create:
                raise JobStoreError(f'no job store at {self.path}')
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False, timeout=self.lock_timeout)
            self._check_schema(create)
        except BaseException as err:
            self._close_connection()
            if isinstance(err, sqlite3.Error):
                raise self._translate(err) from err
            raise

    def _take_lock_file(self) -> None:
        fd = os.open(self.path + '-lock', os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors='replace').strip()
                    os.close(fd)
                    raise JobStoreError(
                        f'{self.path} is locked: another program works it '
                        f'({holder or "holder unknown"}); a SQLite job store is worked by '
                        f'one program at a time (share a queue through PostgreSQL)') from None
                time.sleep(_LOCK_POLL)
        self._lock_fd = fd
        self.exclusive = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'pid {os.getpid()} on {socket.gethostname()}\n'.encode(), 0)

    def _tables(self) -> Set[str]:
        rows = self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}

    def _check_schema(self, create: bool) -> None:
        tables = self._tables()  # the first read: a file that is no database fails here
        if 'tractorish_meta' not in tables:
            others = sorted(t for t in tables if not t.startswith('sqlite_'))
            if others:
                raise JobStoreError(
                    f'{self.path} is not a tractorish job store (it holds the tables '
                    f'{", ".join(others)}); refusing to write to it')
            if not create:
                raise JobStoreError(f'no job store at {self.path} (an empty database)')
            self._set_journal()
            self._conn.executescript(f'BEGIN IMMEDIATE; {SCHEMA} COMMIT;')
            return
        row = self._conn.execute("SELECT value FROM tractorish_meta "
                                 "WHERE key = 'schema_version'").fetchone()
        self._check_version(row)
        try:
            self._check_tables()
        except sqlite3.OperationalError as err:
            raise JobStoreError(f'{self.path} is corrupt: {err}') from None
        self._set_journal()

    def _set_journal(self) -> None:
        mode = self._conn.execute('PRAGMA journal_mode = WAL').fetchone()[0]
        if str(mode).lower() != 'wal':
            raise JobStoreError(f'{self.path}: cannot use WAL mode (journal mode {mode!r})')
        self._conn.execute('PRAGMA synchronous = FULL')

    # --- the dialect ----------------------------------------------------------------------

    def _begin(self, write: bool) -> Tuple[Any, float]:
        cur = self._conn.cursor()
        cur.execute('BEGIN IMMEDIATE' if write else 'BEGIN')
        return cur, time.time()

    def _describe(self, err: Exception) -> Optional[str]:
        if not isinstance(err, sqlite3.Error):
            return None
        text = str(err)
        if isinstance(err, sqlite3.OperationalError) and ('locked' in text or 'busy' in text):
            return (f'{self.path} is locked: another process held a write transaction on it '
                    f'for more than {self.lock_timeout:g} s ({text})')
        if 'not a database' in text or 'malformed' in text:
            return f'{self.path} is corrupt: {text}; it was left as it is'
        return f'{self.path}: {type(err).__name__}: {text}'

    def _close_connection(self) -> None:
        super()._close_connection()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
