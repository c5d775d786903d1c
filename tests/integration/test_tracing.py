"""Tracing across actors with OpenTelemetry: one trace from root to
grandchild when a tracer provider is configured; nothing at all when not.

A tracer provider is set once per process, so the traced tree runs in a
process of its own (trace_script.py), never in the test run's process.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import stats_funcs as sf
import tractorish
from tractorish.runtime import Portal

HERE = Path(__file__).resolve().parent


def run_traced_tree() -> dict:
    proc = subprocess.run([sys.executable, str(HERE / 'trace_script.py')], cwd=HERE,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_one_trace_crosses_root_child_and_grandchild():
    pytest.importorskip('opentelemetry.sdk', reason='opentelemetry-sdk (the test extra) '
                                                    'is not installed')
    spans = run_traced_tree()
    by_name = {}
    for actor, actor_spans in spans.items():
        for span in actor_spans:
            assert span['actor'] == actor
            by_name.setdefault((actor, span['name'], span['kind']), []).append(span)

    def one(actor, name, kind):
        found = by_name[(actor, f'trace_funcs/{name}', kind)]
        assert len(found) == 1, found
        return found[0]

    # root -> middle -> leaf: one trace, each span the child of the one before
    chain = [one('root', 'middle', 'CLIENT'), one('middle', 'middle', 'SERVER'),
             one('middle', 'leaf', 'CLIENT'), one('leaf', 'leaf', 'SERVER')]
    assert len({span['trace_id'] for span in chain}) == 1
    assert chain[0]['parent_id'] is None
    for parent, child in zip(chain, chain[1:]):
        assert child['parent_id'] == parent['span_id']
    assert chain[1]['attributes']['tractorish.peer'] == 'root'
    assert chain[3]['attributes']['tractorish.peer'] == 'middle'
    assert chain[0]['attributes']['rpc.system'] == 'tractorish'
    # a stream and a context are spans too, each side
    for name in ('count', 'echo'):
        client, server = one('root', name, 'CLIENT'), one('middle', name, 'SERVER')
        assert server['parent_id'] == client['span_id']
        assert server['trace_id'] == client['trace_id'] != chain[0]['trace_id']
    # a failed call is an error on both sides
    assert one('root', 'fails', 'CLIENT')['status'] == 'ERROR'
    assert one('middle', 'fails', 'SERVER')['status'] == 'ERROR'
    assert chain[1]['status'] == chain[0]['status'] == 'UNSET'
    # the runtime's own calls (cancel) and the registrar's are not traced
    names = {span['name'] for actor_spans in spans.values() for span in actor_spans}
    assert all(name.startswith('trace_funcs/') for name in names), names


async def test_without_a_tracer_provider_nothing_is_traced_or_imported():
    assert Portal._run.__qualname__ == 'Portal._run'  # not a traced wrapper
    async with tractorish.open_nursery() as an:
        actor = tractorish.current_actor()
        assert 'start_call' not in vars(actor) and '_start_rpc' not in vars(actor)
        portal = await an.start_actor('plain', enable_modules=['stats_funcs'])
        assert await portal.run(sf.imported, name='opentelemetry') is False
        assert await portal.run(sf.imported, name='tractorish.devx._tracing') is False
        await portal.cancel_actor()
