"""The PostgreSQL job store: one queue shared by programs on several hosts.

Any number of programs may work one store at once. A program takes jobs
with ``SELECT ... FOR UPDATE SKIP LOCKED``, so two programs claiming at the
same moment never take the same job, and holds each for a lease
(``lease_until``) that it renews while it runs; a job whose holder stopped
renewing (the program died, or lost the database) is taken over once its
lease has expired. Times are the database server's clock, so the hosts'
clocks need not agree.

Imported only when a ``postgresql://`` store is opened; needs psycopg 3
(``pip install 'tractorish[postgres]'``). A table that another session
keeps locked for longer than ``lock_timeout`` is a :class:`JobStoreError`,
not a hang.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional, Tuple

import trio

from ._store import SCHEMA_VERSION, JobStoreError, SqlJobStore

SCHEMA = f"""
CREATE TABLE tractorish_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE tractorish_jobs (
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id text PRIMARY KEY,
    fn text NOT NULL,
    args bytea NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    crashes integer NOT NULL DEFAULT 0,
    owner text,
    worker text,
    lease_until double precision,
    result bytea,
    error bytea,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    finished_at double precision);
CREATE INDEX tractorish_jobs_pending ON tractorish_jobs (seq) WHERE status = 'pending';
CREATE INDEX tractorish_jobs_running ON tractorish_jobs (lease_until) WHERE status = 'running';
CREATE TABLE tractorish_functions (fn text PRIMARY KEY);
CREATE TABLE tractorish_attempts (
    job_id text NOT NULL,
    number integer NOT NULL,
    owner text NOT NULL,
    worker text,
    started_at double precision NOT NULL,
    ended_at double precision,
    outcome text,
    detail text,
    PRIMARY KEY (job_id, number));
CREATE INDEX tractorish_attempts_open ON tractorish_attempts (owner) WHERE outcome IS NULL;
INSERT INTO tractorish_meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
# the advisory lock that orders programs creating the schema at once
_SCHEMA_LOCK = 0x7472616374  # 'tract'


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r'(://[^:/@]*):[^@/]*@', r'\1:***@', url)


class PostgresJobStore(SqlJobStore):
    """A job store in a PostgreSQL database; see the module's docstring."""

    claim_suffix = 'FOR UPDATE SKIP LOCKED'
    lock_suffix = 'FOR UPDATE'

    def __init__(self, url: str, *, lock_timeout: float) -> None:
        super().__init__(redacted(url))
        self._url = url
        self.lock_timeout = lock_timeout
        self._statements: Dict[str, str] = {}
        self._psycopg: Any = None

    @classmethod
    async def open(cls, url: str, *, create: bool, lock_timeout: float = 5.0
                   ) -> 'PostgresJobStore':
        """Connect, and check (or create) the schema, in a thread."""
        store = cls(url, lock_timeout=lock_timeout)
        await trio.to_thread.run_sync(store._open, create)
        return store

    def _open(self, create: bool) -> None:
        try:
            import psycopg
        except ImportError:
            raise JobStoreError('a PostgreSQL job store needs psycopg 3: '
                                'pip install "tractorish[postgres]"') from None
        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(self._url, autocommit=True,
                                         connect_timeout=max(2, round(self.lock_timeout)))
        except psycopg.Error as err:
            raise JobStoreError(f'cannot connect to the job store {self.description}: '
                                f'{str(err).strip()}') from None
        try:
            self._conn.execute(f"SET lock_timeout = '{max(1, round(self.lock_timeout * 1000))}ms'")
            # A claim must walk the index of pending jobs in order, stopping at
            # the first it can lock; an index scan also marks the entries of
            # rows updated since as dead, as it passes them. Without fresh
            # statistics (a new table, autovacuum yet to come), the planner
            # picks a bitmap scan instead, which reads every such entry, on
            # every claim. None of our queries gains from a bitmap scan.
            self._conn.execute('SET enable_bitmapscan = off')
            self._conn.execute('BEGIN')
            self._check_schema(create)
            self._conn.execute('COMMIT')
        except BaseException as err:
            self._rollback()
            self._close_connection()
            if isinstance(err, psycopg.Error):
                raise self._translate(err) from err
            raise

    def _check_schema(self, create: bool) -> None:
        conn = self._conn
        conn.execute('SELECT pg_advisory_xact_lock(%s)', (_SCHEMA_LOCK,))
        exists = conn.execute("SELECT to_regclass('tractorish_meta') IS NOT NULL").fetchone()[0]
        if not exists:
            if not create:
                raise JobStoreError(f'no job store in {self.description}')
            conn.execute(SCHEMA)
            return
        row = conn.execute("SELECT value FROM tractorish_meta "
                           "WHERE key = 'schema_version'").fetchone()
        self._check_version(row)
        try:
            self._check_tables()
        except (self._psycopg.errors.UndefinedTable,
                self._psycopg.errors.UndefinedColumn) as err:
            raise JobStoreError(f'{self.description} is corrupt: '
                                f'{str(err).strip()}') from None

    # --- the dialect ----------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        sql = self._statements.get(text)
        if sql is None:  # no statement here holds a literal '?' or '%'
            sql = self._statements[text] = text.replace('?', '%s')
        return sql

    def _begin(self, write: bool) -> Tuple[Any, float]:
        cur = self._conn.cursor()
        # one round trip: with no parameters, both go as one simple query
        cur.execute('BEGIN; SELECT extract(epoch FROM now())::float8')
        cur.nextset()  # the SELECT's result
        return cur, cur.fetchone()[0]

    def _describe(self, err: Exception) -> Optional[str]:
        psycopg = self._psycopg
        if psycopg is None or not isinstance(err, psycopg.Error):
            return None
        text = str(err).strip()
        if isinstance(err, psycopg.errors.LockNotAvailable):
            return (f'{self.description} is locked: another session held a lock '
                    f'it needs for more than {self.lock_timeout:g} s ({text})')
        if isinstance(err, psycopg.OperationalError):
            return f'the job store {self.description} cannot be reached: {text}'
        return f'{self.description}: {type(err).__name__}: {text}'
