"""Packing exceptions for the wire and rebuilding them at the caller."""
from __future__ import annotations

import pickle
import sys
import types

import pytest

from tractorish._exceptions import (
    ContextCancelled, ModuleNotExposed, RemoteActorError, TractorishError,
)
from tractorish.msg import (
    MAIN_ALIAS, Decoder, Encoder, check_message, error, pack_cancelled,
    pack_error, resolve_type, unpack_error,
)

WORKER = ('worker', 'uuid-worker')
RELAY = ('relay', 'uuid-relay')
ROOT = ('root', 'uuid-root')


class AppError(Exception):
    """An exception class that only this test module defines."""


class Outer:
    class InnerError(ValueError):
        pass


def raise_app_error_from_here():
    raise AppError('the app broke: 42')


def capture(func, *args):
    try:
        func(*args)
    except BaseException as exc:  # noqa: B902 - we want every kind
        return exc
    raise AssertionError('did not raise')


def over_the_wire(payload: dict) -> dict:
    """Send ``payload`` as an error message through the codec."""
    [msg] = Decoder().feed(Encoder().encode(error(payload, 'cid-9')))
    return msg['error']


# --- packing ------------------------------------------------------------------

def test_pack_error_fields():
    exc = capture(raise_app_error_from_here)
    payload = pack_error(exc, WORKER)
    assert payload['type_str'] == 'AppError'
    assert payload['src_uid'] == list(WORKER)
    assert payload['boxed_type_path'] == f'{__name__}.AppError'
    assert payload['message'] == 'the app broke: 42'
    assert payload['relay_uids'] == []
    assert 'raise_app_error_from_here' in payload['tb_str']
    assert 'the app broke: 42' in payload['tb_str']
    assert payload['tb_str'].startswith('Traceback')


def test_packed_error_is_a_valid_message():
    payload = pack_error(capture(raise_app_error_from_here), WORKER)
    msg = error(payload, 'cid-1')
    assert check_message(msg) is msg
    assert over_the_wire(payload) == payload


def test_pack_error_extra_fields():
    payload = pack_error(ValueError('x'), WORKER, cid='c-1', note='more')
    assert payload['cid'] == 'c-1' and payload['note'] == 'more'


def test_pack_error_without_traceback():
    # an exception never raised has no traceback; packing still works
    payload = pack_error(KeyError('k'), WORKER)
    assert payload['type_str'] == 'KeyError'
    assert 'KeyError' in payload['tb_str']


def _recurse(n):
    if n == 0:
        raise RecursionError('deep enough')
    _recurse(n - 1)


def _chained(how):
    try:
        raise KeyError('first')
    except KeyError as first:
        if how == 'cause':
            raise ValueError('second') from first
        if how == 'context':
            raise ValueError('second')
        raise ValueError('second') from None


def _with_note():
    err = ValueError('noted')
    if hasattr(err, 'add_note'):
        err.add_note('a note for the reader')
    raise err


def _group():
    from tractorish._compat import ExceptionGroup
    raise ExceptionGroup('several', [capture(raise_app_error_from_here), KeyError('k')])


def _syntax():
    compile('def broken(:\n    pass\n', '<code>', 'exec')


def _message(text):
    raise RuntimeError(text)


@pytest.mark.parametrize('make', [
    lambda: capture(raise_app_error_from_here),
    lambda: capture(_recurse, 30),           # repeated lines are folded
    lambda: capture(_chained, 'cause'),
    lambda: capture(_chained, 'context'),
    lambda: capture(_chained, 'none'),       # context suppressed
    lambda: capture(_with_note),
    lambda: capture(_group),
    lambda: capture(_syntax),
    lambda: KeyError('never raised'),
], ids=['plain', 'recursion', 'cause', 'context', 'suppressed', 'note', 'group',
        'syntax', 'no-traceback'])
def test_the_traceback_text_is_what_traceback_prints(make):
    import traceback
    for _ in range(3):  # the first time, and from what is remembered
        exc = make()
        assert pack_error(exc, WORKER)['tb_str'] == ''.join(
            traceback.format_exception(type(exc), exc, exc.__traceback__))


def test_equal_code_from_two_files_keeps_its_own_file(tmp_path):
    import traceback
    source = "def f():\n    raise ValueError('x')\n"
    texts = []
    for name in ('a_mod.py', 'b_mod.py'):
        path = tmp_path / name
        path.write_text(source)
        namespace: dict = {}
        exec(compile(source, str(path), 'exec'), namespace)
        exc = capture(namespace['f'])
        text = pack_error(exc, WORKER)['tb_str']
        assert text == ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        texts.append(text)
    assert 'a_mod.py' in texts[0] and 'b_mod.py' in texts[1]


@pytest.mark.parametrize('limit', [0, 1])
def test_a_traceback_limit_is_honoured(monkeypatch, limit):
    import traceback
    pack_error(capture(_recurse, 3), WORKER)  # (remembered without a limit)
    monkeypatch.setattr(sys, 'tracebacklimit', limit, raising=False)
    exc = capture(_recurse, 3)
    assert pack_error(exc, WORKER)['tb_str'] == ''.join(
        traceback.format_exception(type(exc), exc, exc.__traceback__))


def test_the_frames_of_a_traceback_are_formatted_once(monkeypatch):
    import traceback
    from tractorish.msg import _errors
    formatted = []
    real = traceback.format_list
    monkeypatch.setattr(traceback, 'format_list', lambda frames: formatted.append(1) or real(frames))
    monkeypatch.setattr(_errors, '_FRAMES', {})
    texts = [pack_error(capture(_message, f'call {i}'), WORKER)['tb_str'] for i in range(5)]
    assert len(formatted) == 1
    # the same frames, each its own message
    assert [t.splitlines()[-1] for t in texts] == [f'RuntimeError: call {i}' for i in range(5)]
    assert len({'\n'.join(t.splitlines()[:-1]) for t in texts}) == 1
    pack_error(capture(raise_app_error_from_here), WORKER)  # other frames
    assert len(formatted) == 2


# --- unpacking ----------------------------------------------------------------

def test_unpack_keeps_everything():
    payload = over_the_wire(pack_error(capture(raise_app_error_from_here), WORKER))
    err = unpack_error(payload)
    assert type(err) is RemoteActorError
    assert isinstance(err, TractorishError)
    assert err.type_str == 'AppError'
    assert err.src_uid == WORKER
    assert err.boxed_type_path == f'{__name__}.AppError'
    assert err.boxed_type is AppError
    assert err.message == 'the app broke: 42'
    assert 'raise_app_error_from_here' in err.tb_str
    assert err.relay_uids == []
    text = str(err)
    assert 'AppError' in text and "'worker'" in text and 'raise_app_error_from_here' in text


@pytest.mark.parametrize('exc_type', [
    ValueError, KeyError, ZeroDivisionError, RuntimeError, OSError,
    KeyboardInterrupt, StopAsyncIteration,
])
def test_builtin_types_resolve(exc_type):
    payload = over_the_wire(pack_error(capture(_raiser(exc_type)), WORKER))
    assert payload['boxed_type_path'] == f'builtins.{exc_type.__name__}'
    err = unpack_error(payload)
    assert err.boxed_type is exc_type
    assert err.type_str == exc_type.__name__


def _raiser(exc_type):
    def raise_it():
        raise exc_type('boom')
    return raise_it


def test_nested_class_resolves():
    err = unpack_error(pack_error(Outer.InnerError('in'), WORKER))
    assert err.boxed_type_path == f'{__name__}.Outer.InnerError'
    assert err.boxed_type is Outer.InnerError


def test_tractorish_error_resolves():
    err = unpack_error(pack_error(ModuleNotExposed('nope'), WORKER))
    assert err.boxed_type is ModuleNotExposed


def test_class_local_to_a_function_does_not_resolve():
    class LocalError(Exception):
        pass
    err = unpack_error(pack_error(LocalError('x'), WORKER))
    assert '<locals>' in err.boxed_type_path
    assert err.boxed_type is None
    assert err.type_str == 'LocalError'


def test_unknown_module_is_never_imported():
    name = 'tractorish_test_made_up_module_x9q'
    assert name not in sys.modules
    err = unpack_error({
        'type_str': 'Boom', 'tb_str': 'tb', 'src_uid': list(WORKER),
        'boxed_type_path': f'{name}.Boom'})
    assert err.boxed_type is None
    assert err.type_str == 'Boom'
    assert err.boxed_type_path == f'{name}.Boom'
    assert name not in sys.modules


def test_importable_but_unimported_module_is_not_imported(tmp_path, monkeypatch):
    # a module that exists on sys.path and would leave a trace if imported
    name = 'tractorish_test_tripwire_mod'
    trace = tmp_path / 'imported'
    (tmp_path / f'{name}.py').write_text(
        f'open({str(trace)!r}, "w").close()\n'
        'class Boom(Exception):\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    err = unpack_error({
        'type_str': 'Boom', 'tb_str': '', 'src_uid': list(WORKER),
        'boxed_type_path': f'{name}.Boom'})
    assert err.boxed_type is None
    assert name not in sys.modules
    assert set(sys.modules) == before
    assert not trace.exists()


@pytest.mark.parametrize('path', [
    '', 'NoDots', '.', 'builtins.', 'builtins.int', 'builtins.print',
    'os.system', 'os.path', 'sys.modules', f'{__name__}.Outer',
    f'{__name__}.raise_app_error_from_here', 'builtins.ValueError.nothing_here',
])
def test_non_exception_paths_resolve_to_none(path):
    assert resolve_type(path) is None
    err = unpack_error({'type_str': 'X', 'tb_str': '', 'src_uid': list(WORKER),
                        'boxed_type_path': path})
    assert err.boxed_type is None


def test_main_script_types_resolve_through_the_alias(monkeypatch):
    # in a child, the parent's main script is loaded as MAIN_ALIAS, and
    # the wire names its types '__main__.X' either way
    fake_main = types.ModuleType(MAIN_ALIAS)

    class ScriptError(Exception):
        pass
    ScriptError.__module__ = MAIN_ALIAS
    ScriptError.__qualname__ = 'ScriptError'
    fake_main.ScriptError = ScriptError
    monkeypatch.setitem(sys.modules, MAIN_ALIAS, fake_main)

    payload = pack_error(ScriptError('s'), WORKER)
    assert payload['boxed_type_path'] == '__main__.ScriptError'
    assert unpack_error(payload).boxed_type is ScriptError


def test_unpack_tolerates_a_minimal_payload():
    err = unpack_error({'type_str': 'Weird', 'tb_str': '', 'src_uid': [],
                        'boxed_type_path': 'nowhere.Weird'})
    assert err.type_str == 'Weird'
    assert err.src_uid is None
    assert err.boxed_type is None
    assert 'Weird' in str(err)


# --- relaying -----------------------------------------------------------------

def test_relay_keeps_source_and_adds_relay():
    original = pack_error(capture(raise_app_error_from_here), WORKER)
    at_relay = unpack_error(over_the_wire(original))

    relayed = over_the_wire(pack_error(at_relay, RELAY))
    assert relayed['src_uid'] == list(WORKER)
    assert relayed['relay_uids'] == [list(RELAY)]
    assert relayed['type_str'] == 'AppError'
    assert relayed['boxed_type_path'] == original['boxed_type_path']
    assert relayed['tb_str'] == original['tb_str']
    assert relayed['message'] == original['message']
    assert check_message(error(relayed, 'c')) is not None

    at_root = unpack_error(relayed)
    assert at_root.src_uid == WORKER
    assert at_root.relay_uids == [RELAY]
    assert at_root.boxed_type is AppError


def test_relay_chain_grows_in_order():
    err = unpack_error(pack_error(ValueError('v'), WORKER))
    for hop in [('a', '1'), ('b', '2'), ('c', '3')]:
        err = unpack_error(over_the_wire(pack_error(err, hop)))
    assert err.src_uid == WORKER
    assert err.relay_uids == [('a', '1'), ('b', '2'), ('c', '3')]
    assert err.boxed_type is ValueError


def test_relay_does_not_mutate_the_received_error():
    err = unpack_error(pack_error(ValueError('v'), WORKER))
    pack_error(err, RELAY)
    assert err.relay_uids == []
    assert err.payload.get('relay_uids') == []


# --- cancellation -------------------------------------------------------------

def test_pack_cancelled_gives_context_cancelled_with_canceller():
    payload = over_the_wire(pack_cancelled(WORKER, ROOT, "context 'echo'"))
    assert check_message(error(payload, 'c')) is not None
    err = unpack_error(payload)
    assert type(err) is ContextCancelled
    assert isinstance(err, RemoteActorError)
    assert err.canceller == ROOT
    assert err.src_uid == WORKER
    assert err.boxed_type is ContextCancelled
    assert "'root'" in err.message and "context 'echo'" in err.message


def test_pack_cancelled_without_canceller():
    err = unpack_error(pack_cancelled(WORKER, None, 'task'))
    assert type(err) is ContextCancelled
    assert err.canceller is None
    assert 'shutting down' in err.message


def test_relayed_context_cancelled_stays_one():
    err = unpack_error(pack_cancelled(WORKER, ROOT, 'ctx'))
    relayed = unpack_error(over_the_wire(pack_error(err, RELAY)))
    assert type(relayed) is ContextCancelled
    assert relayed.canceller == ROOT
    assert relayed.src_uid == WORKER
    assert relayed.relay_uids == [RELAY]


def test_remote_error_survives_pickling():
    err = unpack_error(pack_cancelled(WORKER, ROOT, 'ctx'))
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ContextCancelled
    assert again.canceller == ROOT and again.src_uid == WORKER
    assert again.tb_str == err.tb_str and again.message == err.message
