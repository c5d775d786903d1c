"""The SQLite state store, without processes: saving, loading, group
commit, several connections on one file, and what an entity's state is."""
from __future__ import annotations

import pytest
import trio

from tractorish.entities import EntityError
from tractorish.entities._store import (StateStore, decode, encode, prepare, read_state,
                                        restore, state_of)


class Plain:
    def __init__(self, key):
        self.key = key
        self.balance = 0


class Custom:
    def __init__(self, key):
        self.key = key
        self.items = set()

    def get_state(self):
        return sorted(self.items)

    def set_state(self, state):
        self.items = set(state)


class Slotted:
    __slots__ = ('key',)

    def __init__(self, key):
        self.key = key


def test_state_is_the_dict_or_what_get_state_gives():
    plain = Plain('a')
    plain.balance = 5
    assert state_of(plain) == {'key': 'a', 'balance': 5}
    fresh = Plain('a')
    restore(fresh, decode(encode(state_of(plain))))
    assert fresh.balance == 5
    custom = Custom('b')
    custom.items = {3, 1}
    assert state_of(custom) == [1, 3]
    again = Custom('b')
    restore(again, decode(encode(state_of(custom))))
    assert again.items == {1, 3}


def test_states_that_cannot_be_saved_say_why():
    with pytest.raises(EntityError, match='get_state'):
        state_of(Slotted('x'))
    with pytest.raises(EntityError, match='msgpack'):
        encode({'a': object()})
    with pytest.raises(EntityError, match='set_state'):
        restore(Plain('x'), [1, 2])


def test_a_store_is_a_file_path(tmp_path):
    with pytest.raises(EntityError, match='SQLite file'):
        prepare('postgresql://localhost/db')
    with pytest.raises(EntityError, match='cannot'):
        prepare(str(tmp_path / 'missing-dir' / 'x.db'))
    (tmp_path / 'junk.db').write_bytes(b'not a database at all' * 100)
    with pytest.raises(EntityError):
        prepare(str(tmp_path / 'junk.db'))


async def test_save_load_and_group_commit_across_two_connections(tmp_path):
    path = prepare(str(tmp_path / 'states.db'))
    one = await StateStore.open(path, 'bank')
    two = await StateStore.open(path, 'bank')
    other = await StateStore.open(path, 'other')
    try:
        assert await one.load('alice') is None
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one.save, f'k{i}', encode({'n': i}))
                nursery.start_soon(two.save, f'j{i}', encode({'n': -i}))
        assert one.commits < 200  # many saves shared a commit
        assert decode(await two.load('k7')) == {'n': 7}
        assert decode(await one.load('j9')) == {'n': -9}
        await one.save('k7', encode({'n': 70}))
        assert decode(await two.load('k7')) == {'n': 70}
        assert await other.load('k7') is None  # each cluster has its own keys
    finally:
        for store in (one, two, other):
            await store.aclose()
    assert read_state(path, 'bank', 'k7') == {'n': 70}
    assert read_state(path, 'bank', 'nobody') is None


async def test_every_save_of_a_failed_commit_raises(tmp_path):
    import sqlite3
    path = prepare(str(tmp_path / 'states.db'))
    store = await StateStore.open(path, 'bank')
    try:
        await store.save('a', encode(1))
        with sqlite3.connect(path) as conn:  # the table goes: every write fails
            conn.execute('DROP TABLE tractorish_entity_states')
        failed = []

        async def save(i: int) -> None:
            try:
                await store.save(f'k{i}', encode(i))
            except EntityError as err:
                failed.append(str(err))

        async with trio.open_nursery() as nursery:
            for i in range(60):
                nursery.start_soon(save, i)
                if i % 3 == 0:
                    await trio.sleep(0)  # several commits, each failing
        assert len(failed) == 60 and all('no such table' in e for e in failed)
        assert store.commits > 2
    finally:
        await store.aclose()
