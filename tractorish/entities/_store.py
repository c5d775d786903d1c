"""Entity states in one SQLite file, shared by the workers of a cluster.

One table, ``tractorish_entity_states``, one row per ``(cluster, key)``:
the entity's state, msgpack-encoded (see :func:`state_of`), and when it
was written. Every worker of a cluster opens the file with a connection
of its own; SQLite orders their writes (WAL mode, a busy timeout). A
write is committed with ``synchronous=NORMAL``: it survives the death of
any process (SIGKILL included), not a power cut in the next moments.

Nothing here blocks the trio thread: each store uses one connection in a
worker thread, one call at a time. Saves that arrive while a commit is
under way are committed together in the next one (group commit), so many
entities saving at once cost few commits.
"""
from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Dict, List, Optional, Tuple, Union

import msgpack
import trio

from ._errors import EntityError

TABLE = 'tractorish_entity_states'
SCHEMA = (f'CREATE TABLE IF NOT EXISTS {TABLE} ('
          'cluster TEXT NOT NULL, key TEXT NOT NULL, state BLOB NOT NULL, '
          'updated_at REAL NOT NULL, PRIMARY KEY (cluster, key)) WITHOUT ROWID')
BUSY_TIMEOUT_MS = 30_000


# --- states ------------------------------------------------------------------------

def state_of(instance: Any) -> Any:
    """What is saved of an entity: ``get_state()`` if it has one, else its ``__dict__``."""
    get_state = getattr(instance, 'get_state', None)
    if callable(get_state):
        return get_state()
    try:
        return dict(vars(instance))
    except TypeError:
        raise EntityError(f'{type(instance).__name__} has no __dict__: define '
                          f'get_state() and set_state() to save it') from None


def restore(instance: Any, state: Any) -> None:
    """Give a fresh entity its saved state: ``set_state(state)`` if it has
    one, else its ``__dict__`` updated with ``state``."""
    set_state = getattr(instance, 'set_state', None)
    if callable(set_state):
        set_state(state)
    elif isinstance(state, dict):
        vars(instance).update(state)
    else:
        raise EntityError(f'the saved state of a {type(instance).__name__} is not a '
                          f'dict: define set_state() to restore it')


def encode(state: Any) -> bytes:
    try:
        return msgpack.packb(state, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as err:
        raise EntityError(f'the state cannot be encoded with msgpack: {err}') from None


def decode(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


# --- the store ------------------------------------------------------------------------

def _connect(path: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as err:
        raise EntityError(f'cannot open the entity store {path!r}: {err}') from None
    try:
        conn.execute('PRAGMA journal_mode = WAL')
        conn.execute('PRAGMA synchronous = NORMAL')
        conn.execute(SCHEMA)
    except sqlite3.Error as err:
        conn.close()
        raise EntityError(f'cannot use {path!r} as an entity store: {err}') from None
    return conn


def prepare(path: Union[str, 'os.PathLike[str]']) -> str:
    """Check that ``path`` can hold entity states, creating the file and its
    table if need be; return its absolute path. Blocking: call it in a thread."""
    path = os.fspath(path)
    if '://' in path:
        raise EntityError(f'store= takes the path of a SQLite file, not {path!r}')
    path = os.path.abspath(path)
    _connect(path).close()
    return path


class _Commit:
    """One group commit: the saves it carries wait on it, and learn from
    it whether it failed."""

    __slots__ = ('done', 'error')

    def __init__(self) -> None:
        self.done = False
        self.error: Optional[str] = None


class StateStore:
    """The states of one cluster's entities in a SQLite file."""

    def __init__(self, conn: sqlite3.Connection, path: str, cluster: str) -> None:
        self._conn = conn
        self.path = path
        self.cluster = cluster
        self._thread = trio.CapacityLimiter(1)  # one call at a time on the connection
        self._lock = trio.Lock()                # one commit at a time (FIFO)
        self._pending: Dict[str, bytes] = {}
        self._batch = _Commit()  # the commit that saves what is pending now
        self.commits = 0  # commits made (each saves all the states pending then)

    @classmethod
    async def open(cls, path: str, cluster: str) -> 'StateStore':
        conn = await trio.to_thread.run_sync(_connect, path)
        return cls(conn, path, cluster)

    async def aclose(self) -> None:
        async with self._lock:
            await trio.to_thread.run_sync(self._conn.close, limiter=self._thread)

    async def load(self, key: str) -> Optional[bytes]:
        """The saved state of ``key`` (encoded), or None."""
        def read() -> Optional[bytes]:
            row = self._conn.execute(f'SELECT state FROM {TABLE} WHERE cluster = ? AND key = ?',
                                     (self.cluster, key)).fetchone()
            return None if row is None else bytes(row[0])
        try:
            return await trio.to_thread.run_sync(read, limiter=self._thread)
        except sqlite3.Error as err:
            raise EntityError(f'cannot read the state of {key!r} from {self.path}: '
                              f'{err}') from None

    async def save(self, key: str, blob: bytes) -> None:
        """Write the state of ``key``; return once it is committed.

        Raises :class:`EntityError` if the commit failed. If cancelled while
        committing, the commit still finishes (in its thread) first.
        """
        self._pending[key] = blob
        batch = self._batch
        async with self._lock:
            if not batch.done:
                await self._commit()
        if batch.error is not None:
            raise EntityError(f'cannot save the state of {key!r} in {self.path}: '
                              f'{batch.error}')

    async def _commit(self) -> None:
        items, self._pending = self._pending, {}
        batch, self._batch = self._batch, _Commit()
        self.commits += 1
        rows: List[Tuple[str, str, bytes, float]] = [
            (self.cluster, key, blob, time.time()) for key, blob in items.items()]

        def write() -> None:
            self._conn.execute('BEGIN IMMEDIATE')
            try:
                self._conn.executemany(f'INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)',
                                       rows)
                self._conn.execute('COMMIT')
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute('ROLLBACK')
                raise
        try:
            await trio.to_thread.run_sync(write, limiter=self._thread)
        except sqlite3.Error as err:
            batch.error = str(err)  # told to each of its savers
        finally:
            batch.done = True


def read_state(path: str, cluster: str, key: str) -> Any:
    """The saved state of ``key`` in the store at ``path`` (decoded), or None.
    Blocking; for tools and tests."""
    conn = _connect(path)
    try:
        row = conn.execute(f'SELECT state FROM {TABLE} WHERE cluster = ? AND key = ?',
                           (cluster, key)).fetchone()
    finally:
        conn.close()
    return None if row is None else decode(bytes(row[0]))
