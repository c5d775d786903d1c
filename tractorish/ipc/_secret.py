"""The shared secret every connection proves it knows (docs/security.md).

``TRACTORISH_SECRET`` if set; else the file named by
``TRACTORISH_SECRET_FILE``, by default ``$XDG_CONFIG_HOME/tractorish/secret``
(``~/.config/...``), created on first use with mode 0600. A file that other
users could read, or that another user owns, is refused.

The secret is the HMAC key as it is: the variable's bytes, or the file's
bytes with surrounding whitespace stripped. A created file holds 64 hex
characters, and those 64 ASCII bytes are the key (they are not decoded to
32 bytes first); docs/protocol.md#the-key says so for other implementations.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from .._exceptions import SecretError

SECRET_ENV = 'TRACTORISH_SECRET'
SECRET_FILE_ENV = 'TRACTORISH_SECRET_FILE'


def default_secret_path() -> Path:
    override = os.environ.get(SECRET_FILE_ENV)
    if override:
        return Path(override)
    base = os.environ.get('XDG_CONFIG_HOME') or os.path.expanduser('~/.config')
    return Path(base) / 'tractorish' / 'secret'


def load_secret(path: 'Path | None' = None) -> bytes:
    """The secret for this user; creates the file if there is none."""
    if path is None:
        env = os.environ.get(SECRET_ENV)
        if env:
            return os.fsencode(env)  # the variable's own bytes
        path = default_secret_path()
    try:
        return _read_secret_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return _read_secret_file(path)
    with os.fdopen(fd, 'w') as f:
        f.write(os.urandom(32).hex() + '\n')  # (secrets.token_hex(32), without the import)
    return _read_secret_file(path)


def _read_secret_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    with os.fdopen(fd, 'rb') as f:
        info = os.fstat(f.fileno())
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f'secret file {path} is accessible by other users '
                f'(mode {stat.S_IMODE(info.st_mode):o}); run: chmod 600 {path}')
        if hasattr(os, 'getuid') and info.st_uid != os.getuid():
            raise SecretError(f'secret file {path} is owned by another user')
        secret = f.read().strip()
    if not secret:
        raise SecretError(f'secret file {path} is empty')
    return secret


def make_mac(secret: bytes, label: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 keyed with ``secret`` over ``label`` then ``parts``, each
    preceded by its length as 4 big-endian bytes, so that no two different
    lists of parts give the same input."""
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    for part in (label, *parts):
        mac.update(len(part).to_bytes(4, 'big'))
        mac.update(part)
    return mac.digest()


def macs_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
