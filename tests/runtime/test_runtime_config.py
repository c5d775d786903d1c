"""RuntimeConfig: its checks, its environment variables and its wire form."""
from __future__ import annotations

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
])
def test_a_bad_setting_is_named(kwargs, complaint):
    with pytest.raises(ValueError, match=complaint):
        RuntimeConfig(**kwargs)


def test_spin_default_and_environment(monkeypatch):
    from tractorish.runtime import _config
    monkeypatch.delenv(SPIN_ENV, raising=False)
    monkeypatch.setattr(_config, '_usable_cpus', lambda: 2)
    assert RuntimeConfig().spin_us == DEFAULT_SPIN_US
    monkeypatch.setattr(_config, '_usable_cpus', lambda: 1)
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
