"""Addresses: ``(host, port)`` for TCP, a filesystem path for Unix sockets.

On the wire a TCP address is ``[host, port]`` and a UDS address is its path
string; :func:`normalize_addr` turns either (or a ``'host:port'`` string
given by a person) into the canonical Python form.
"""
from __future__ import annotations

import os
from typing import Any, Tuple, Union

TCPAddress = Tuple[str, int]
Address = Union[TCPAddress, str]


def normalize_addr(addr: Any) -> Address:
    """Canonical form of an address; ``ValueError`` names a bad one.

    tractor's forms are taken too: ``('tcp', host, port)``, ``('unix',
    path)`` and a Unix socket as ``(directory, file name)``.
    """
    if isinstance(addr, (tuple, list)) and len(addr) == 3 and addr[0] == 'tcp':
        addr = addr[1:]
    if isinstance(addr, (tuple, list)) and len(addr) == 2:
        host, port = addr
        if isinstance(host, str) and isinstance(port, int) and 0 <= port < 65536:
            return (host, port)
        if host in ('unix', 'uds') and isinstance(port, str) and port:
            return normalize_addr(port)
        if isinstance(host, str) and isinstance(port, str) and host.startswith('/') and port:
            return os.path.join(host, port)
    elif isinstance(addr, str) and addr:
        if addr.startswith(('/', '.', 'unix:')):
            return addr[5:] if addr.startswith('unix:') else addr
    raise ValueError(
        f'not an address: {addr!r} (want (host, port) or a socket path '
        f'starting with "/")')


def parse_addr(text: str) -> Address:
    """Parse ``'host:port'`` or a UDS path, as given on a command line."""
    if text.startswith(('/', '.', 'unix:')):
        return normalize_addr(text)
    host, sep, port = text.rpartition(':')
    if not sep or not port.isdigit():
        raise ValueError(f'not an address: {text!r} (want host:port or a path)')
    return normalize_addr((host.strip('[]') or '127.0.0.1', int(port)))


def addr_to_wire(addr: Address) -> Any:
    return addr if isinstance(addr, str) else [addr[0], addr[1]]


def format_addr(addr: Address) -> str:
    return addr if isinstance(addr, str) else f'{addr[0]}:{addr[1]}'
