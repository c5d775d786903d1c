"""RuntimeConfig: its checks, its environment variables and its wire form."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tractorish import RuntimeConfig
from tractorish.runtime._config import DEFAULT_SPIN_US, MAX_SPIN_US, SPIN_ENV


@pytest.mark.parametrize('kwargs, complaint', [
    ({'transport': 'udp'}, 'transport'),
    ({'max_msg_size': 0}, 'max_msg_size'),
    ({'start_method': 'spawn'}, 'start_method'),
    ({'discovery': 'maybe'}, 'discovery'),
    ({'stream_window': 1}, 'stream_window'),
    ({'spin_us': -1}, 'spin_us'),
    ({'spin_us': MAX_SPIN_US + 1}, 'spin_us'),
    ({'spin_us': 1.5}, 'spin_us'),
    ({'spin_us': True}, 'spin_us'),
    ({'forkserver_spare': 1}, 'forkserver_spare'),
    ({'forkserver_spare': 'no'}, 'forkserver_spare'),
])
def test_a_bad_setting_is_named(kwargs, complaint):
    with pytest.raises(ValueError, match=complaint):
        RuntimeConfig(**kwargs)


def test_spin_default_and_environment(monkeypatch):
    from tractorish.runtime import _config
    monkeypatch.delenv(SPIN_ENV, raising=False)
    monkeypatch.setattr(_config, 'usable_cpus', lambda: 2)
    assert RuntimeConfig().spin_us == DEFAULT_SPIN_US
    monkeypatch.setattr(_config, 'usable_cpus', lambda: 1)
    assert RuntimeConfig().spin_us == 0  # the peer could not answer meanwhile
    monkeypatch.setenv(SPIN_ENV, '50')
    assert RuntimeConfig().spin_us == 50  # unless asked
    monkeypatch.setenv(SPIN_ENV, '0')
    assert RuntimeConfig().spin_us == 0
    monkeypatch.setenv(SPIN_ENV, '250')
    assert RuntimeConfig().spin_us == 250
    assert RuntimeConfig(spin_us=7).spin_us == 7  # an argument wins
    monkeypatch.setenv(SPIN_ENV, '')
    assert RuntimeConfig().spin_us == 0  # set but empty: as if unset (one CPU here)
    for bad in ('fast', '1e3', '2 ms'):
        monkeypatch.setenv(SPIN_ENV, bad)
        with pytest.raises(ValueError, match=SPIN_ENV):
            RuntimeConfig()
    monkeypatch.setenv(SPIN_ENV, '-5')
    with pytest.raises(ValueError, match='spin_us'):
        RuntimeConfig()


def test_the_wire_form_carries_every_setting():
    config = RuntimeConfig(transport='uds', spin_us=0, stream_window=64, discovery='off')
    assert RuntimeConfig.from_wire(config.to_wire()) == config


def test_a_config_compares_by_value_and_hides_its_secret():
    config = RuntimeConfig(secret=b'hush' * 8, transport='uds', spin_us=0)
    assert config == RuntimeConfig(secret=b'hush' * 8, transport='uds', spin_us=0)
    assert config != RuntimeConfig(secret=b'hush' * 8, transport='tcp', spin_us=0)
    assert config != config.to_wire()
    assert 'hush' not in repr(config) and "transport='uds'" in repr(config)
    with pytest.raises(TypeError):
        hash(config)  # mutable: no hash, as a dataclass's
    with pytest.raises(TypeError, match='colour'):
        RuntimeConfig(colour='blue')
    # positional, in the documented order
    assert RuntimeConfig(None, 'debug', 'uds').transport == 'uds'


def test_replace_makes_a_checked_copy():
    config = RuntimeConfig(transport='tcp', spin_us=0)
    changed = config.replace(transport='uds', stream_window=8)
    assert (changed.transport, changed.stream_window, changed.spin_us) == ('uds', 8, 0)
    assert config.transport == 'tcp'
    with pytest.raises(ValueError, match='stream_window'):
        config.replace(stream_window=0)


def test_settings_given_win_over_the_environment(monkeypatch):
    monkeypatch.setenv('TRACTORISH_TRANSPORT', 'uds')
    monkeypatch.setenv('TRACTORISH_TLS_CERT', '/nowhere/cert.pem')
    config = RuntimeConfig()
    assert (config.transport, config.tls_cert) == ('uds', '/nowhere/cert.pem')
    config = RuntimeConfig(transport='tcp', tls_cert=None)
    assert (config.transport, config.tls_cert) == ('tcp', None)  # None given is kept
    # a child rebuilds its parent's config as it was, whatever its environment
    monkeypatch.setenv('TRACTORISH_TRANSPORT', 'tcp')
    assert RuntimeConfig.from_wire(RuntimeConfig(transport='uds', tls_cert=None).to_wire()) \
        == RuntimeConfig(transport='uds', tls_cert=None)


def test_the_wire_form_of_a_newer_peer_is_taken():
    wire = {**RuntimeConfig(spin_us=0).to_wire(), 'some_future_setting': 1}
    assert RuntimeConfig.from_wire(wire) == RuntimeConfig(spin_us=0)


@pytest.mark.parametrize('module', ['dataclasses', 'secrets', 'uuid'])
def test_a_fresh_actor_does_without(module):
    # what a fresh actor imports beyond trio and msgpack is its start's
    # cost: making a dataclass compiles its methods; secrets and uuid are
    # a module (and its imports) each for what os.urandom does
    code = ('import sys, trio, msgpack; before = set(sys.modules); '
            'import tractorish._child, tractorish.runtime; '
            f'print({module!r} in set(sys.modules) - before)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'
