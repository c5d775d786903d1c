"""Rendezvous hashing (pure, no processes): one owner per key, even spread,
few moves when membership changes, the same answer in every process."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import pytest

from tractorish.entities import View, owner_of
from tractorish.entities._placement import score

WORKERS = ['accounts-0', 'accounts-1', 'accounts-2', 'accounts-3']
KEYS = [f'user-{i}' for i in range(10_000)]


def spread(keys, members):
    return collections.Counter(owner_of(key, members) for key in keys)


def test_keys_spread_evenly_over_four_workers():
    counts = spread(KEYS, WORKERS)
    assert set(counts) == set(WORKERS)
    fair = len(KEYS) / len(WORKERS)
    for worker, count in counts.items():
        assert abs(count - fair) <= 0.2 * fair, (worker, counts)


def test_losing_a_worker_moves_only_its_keys_and_spreads_them_evenly():
    before = {key: owner_of(key, WORKERS) for key in KEYS}
    survivors = [w for w in WORKERS if w != 'accounts-2']
    after = {key: owner_of(key, survivors) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert moved and all(before[key] == 'accounts-2' for key in moved)
    assert len(moved) == sum(1 for owner in before.values() if owner == 'accounts-2')
    fair = len(moved) / len(survivors)
    for count in spread(moved, survivors).values():
        assert abs(count - fair) <= 0.2 * fair
    # and when it comes back, exactly those keys go back to it
    assert {key: owner_of(key, WORKERS) for key in KEYS} == before


def test_adding_a_worker_takes_a_fair_share_from_every_other():
    more = WORKERS + ['accounts-4']
    before = {key: owner_of(key, WORKERS) for key in KEYS}
    moved = [key for key in KEYS if owner_of(key, more) != before[key]]
    assert all(owner_of(key, more) == 'accounts-4' for key in moved)
    assert abs(len(moved) - len(KEYS) / 5) <= 0.2 * len(KEYS) / 5


def test_the_owner_does_not_depend_on_the_order_of_members():
    assert all(owner_of(key, WORKERS) == owner_of(key, WORKERS[::-1]) for key in KEYS[:500])
    view = View(7, reversed(WORKERS))
    assert view.members == tuple(WORKERS)
    assert [view.owner(key) for key in KEYS[:500]] == [owner_of(k, WORKERS) for k in KEYS[:500]]


def test_every_process_computes_the_same_owner():
    # Python's hash() of a str is salted per process: the owner must not use it
    code = ('import json, sys; from tractorish.entities import owner_of; '
            f'print(json.dumps([owner_of(k, {WORKERS!r}) for k in {KEYS[:300]!r}]))')
    results = []
    for seed in ('1', '2'):
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             env={**os.environ, 'PYTHONHASHSEED': seed}, timeout=60, check=True)
        results.append(json.loads(out.stdout))
    assert results[0] == results[1] == [owner_of(k, WORKERS) for k in KEYS[:300]]


def test_scores_are_stable_values():
    # fixed by the hash (blake2b, 8 bytes, of member NUL key): a change here
    # would route keys differently from clients of an older version
    assert score('accounts-0', 'alice') == int.from_bytes(
        __import__('hashlib').blake2b(b'accounts-0\x00alice', digest_size=8).digest(), 'big')
    assert score('a', 'bc') != score('ab', 'c')


def test_views_travel_and_compare_by_epoch():
    view = View(3, WORKERS)
    assert View.from_wire(view.to_wire()) == view
    assert View(4, WORKERS[:2]).newer_than(view) and not view.newer_than(View(4, []))
    assert view.newer_than(None)
    for bad in (None, [], {'epoch': 'x', 'members': []}, {'epoch': 1, 'members': [1]}):
        assert View.from_wire(bad) is None
    with pytest.raises(LookupError):
        View(1, []).owner('alice')
