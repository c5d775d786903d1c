"""Fixtures of the job tests: stores, SQLite and a real PostgreSQL server.

The PostgreSQL server is started once per session (``pg_server.py``) and
each test gets a fresh database in it. Without the server's binaries (or
psycopg) the PostgreSQL tests are skipped, saying why; ``.ci/run``
installs the server, so in CI they run. The SQLite tests always run.
"""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Iterator, Optional

import pytest

from pg_server import TempPostgres, find_bin_dir

STORE_KINDS = ['sqlite', 'postgres']


def _pg_missing() -> Optional[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return 'psycopg 3 is not installed (pip install "tractorish[postgres]")'
    if find_bin_dir() is None:
        return ('no PostgreSQL server binaries (initdb, pg_ctl) found under '
                '/usr/lib/postgresql/*/bin or on PATH: apt-get install postgresql '
                '(.ci/run installs it)')
    return None


@pytest.fixture(scope='session')
def pg_server_if_any() -> Iterator[Optional[TempPostgres]]:
    """The session's PostgreSQL server; ``None`` if none can be started here.

    Asked for by name (never through ``getfixturevalue``), so that it starts
    before the process guard notes what runs before a test: the server's
    processes are not the test's.
    """
    if _pg_missing():
        yield None
        return
    server = TempPostgres(find_bin_dir()).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_server(pg_server_if_any: Optional[TempPostgres]) -> TempPostgres:
    if pg_server_if_any is None:
        pytest.skip(_pg_missing() or 'no PostgreSQL server')
    return pg_server_if_any


def _new_database(server: TempPostgres) -> str:
    name = f't_{secrets.token_hex(6)}'
    server.sql(f'CREATE DATABASE {name}')
    return name


@pytest.fixture
def pg_url(pg_server: TempPostgres) -> Iterator[str]:
    """A fresh, empty database for this test."""
    name = _new_database(pg_server)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.sql(f'DROP DATABASE {name} WITH (FORCE)')


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              pg_server_if_any: Optional[TempPostgres]) -> Iterator[str]:
    """A new store of each kind: a SQLite file, a PostgreSQL database."""
    if request.param == 'sqlite':
        yield str(tmp_path / 'jobs.db')
        return
    if pg_server_if_any is None:
        pytest.skip(_pg_missing() or 'no PostgreSQL server')
    name = _new_database(pg_server_if_any)
    try:
        yield pg_server_if_any.url(name)
    finally:
        pg_server_if_any.sql(f'DROP DATABASE {name} WITH (FORCE)')
