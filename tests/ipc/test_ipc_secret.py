"""Loading the shared secret: environment first, else a private file.

Every test here points the secret file into ``tmp_path``; the user's real
``~/.config`` is never read or written (HOME and XDG_CONFIG_HOME are moved
too, in case a code path ignores the override).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tractorish._exceptions import SecretError, TractorishError
from tractorish.ipc import load_secret
from tractorish.ipc._secret import default_secret_path, macs_equal, make_mac


@pytest.fixture
def no_env_secret(monkeypatch, tmp_path) -> Path:
    """No TRACTORISH_SECRET; a secret file path under tmp_path."""
    monkeypatch.delenv('TRACTORISH_SECRET', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path / 'xdg'))
    path = tmp_path / 'cfg' / 'tractorish' / 'secret'
    monkeypatch.setenv('TRACTORISH_SECRET_FILE', str(path))
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_env_secret_wins(monkeypatch, tmp_path):
    path = tmp_path / 'secret'
    path.write_text('from-the-file\n')
    path.chmod(0o600)
    monkeypatch.setenv('TRACTORISH_SECRET_FILE', str(path))
    monkeypatch.setenv('TRACTORISH_SECRET', 'from-the-env')
    assert load_secret() == b'from-the-env'


def test_env_secret_wins_even_over_an_unsafe_file(monkeypatch, tmp_path):
    path = tmp_path / 'secret'
    path.write_text('world readable\n')
    path.chmod(0o644)
    monkeypatch.setenv('TRACTORISH_SECRET_FILE', str(path))
    monkeypatch.setenv('TRACTORISH_SECRET', 'from-the-env')
    assert load_secret() == b'from-the-env'


def test_empty_env_falls_back_to_the_file(no_env_secret, monkeypatch):
    monkeypatch.setenv('TRACTORISH_SECRET', '')
    secret = load_secret()
    assert secret and no_env_secret.exists()


def test_file_created_with_mode_0600_on_first_use(no_env_secret):
    path = no_env_secret
    assert not path.exists()
    old_umask = os.umask(0)  # the file's own mode must not rely on the umask
    try:
        first = load_secret()
    finally:
        os.umask(old_umask)
    assert path.is_file()
    assert mode_of(path) == 0o600
    assert len(first) >= 32
    assert path.read_bytes().strip() == first
    # the same secret on every later use
    assert load_secret() == first
    assert load_secret(path) == first


def test_created_directory_is_private(no_env_secret):
    load_secret()
    assert mode_of(no_env_secret.parent) & 0o077 == 0


def test_each_new_file_gets_a_fresh_secret(tmp_path, no_env_secret):
    assert load_secret(tmp_path / 'a') != load_secret(tmp_path / 'b')


@pytest.mark.parametrize('mode', [0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o004])
def test_file_readable_by_others_is_refused(no_env_secret, mode):
    path = no_env_secret
    path.parent.mkdir(parents=True)
    path.write_text('a-secret-others-can-read\n')
    path.chmod(mode)
    with pytest.raises(SecretError) as info:
        load_secret()
    text = str(info.value)
    assert str(path) in text
    assert f'chmod 600 {path}' in text
    assert isinstance(info.value, TractorishError)
    # refused, not rewritten: the file is left as it was
    assert path.read_text() == 'a-secret-others-can-read\n'
    assert mode_of(path) == mode


def test_explicit_path_is_checked_too(tmp_path, no_env_secret):
    path = tmp_path / 'explicit'
    path.write_text('x' * 40)
    path.chmod(0o644)
    with pytest.raises(SecretError, match='chmod 600'):
        load_secret(path)


def test_file_fixed_with_chmod_is_accepted(no_env_secret):
    path = no_env_secret
    path.parent.mkdir(parents=True)
    path.write_text('  fixed-secret  \n')
    path.chmod(0o644)
    with pytest.raises(SecretError):
        load_secret()
    path.chmod(0o600)
    assert load_secret() == b'fixed-secret'


def test_empty_file_is_refused(no_env_secret):
    path = no_env_secret
    path.parent.mkdir(parents=True)
    path.write_text('\n')
    path.chmod(0o600)
    with pytest.raises(SecretError, match='empty'):
        load_secret()


def test_default_path_follows_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.delenv('TRACTORISH_SECRET_FILE', raising=False)
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path / 'xdg'))
    assert default_secret_path() == tmp_path / 'xdg' / 'tractorish' / 'secret'


def test_default_path_without_xdg_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv('TRACTORISH_SECRET_FILE', raising=False)
    monkeypatch.delenv('XDG_CONFIG_HOME', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert default_secret_path() == tmp_path / 'home' / '.config' / 'tractorish' / 'secret'


def test_secret_file_env_overrides_default_path(no_env_secret):
    assert default_secret_path() == no_env_secret


def test_macs_depend_on_everything():
    base = make_mac(b'secret', b'label', b'nonce-a', b'nonce-b')
    assert len(base) == 32
    assert macs_equal(base, make_mac(b'secret', b'label', b'nonce-a', b'nonce-b'))
    assert not macs_equal(base, make_mac(b'other', b'label', b'nonce-a', b'nonce-b'))
    assert not macs_equal(base, make_mac(b'secret', b'other', b'nonce-a', b'nonce-b'))
    assert not macs_equal(base, make_mac(b'secret', b'label', b'nonce-b', b'nonce-a'))
    # parts are length-prefixed, so moving a byte across a boundary changes it
    assert not macs_equal(make_mac(b's', b'l', b'ab', b'c'), make_mac(b's', b'l', b'a', b'bc'))
