"""What the layers above the runtime run in every actor.

The runtime may not import the layers above it, yet discovery (registering
every actor) and devx (naming the process, metrics, tracing) must run in
each actor's runtime. They are handed to the runtime here, once, by the
package root (``tractorish/__init__.py``): that one call is the list of
everything an actor runs besides serving calls (see docs/architecture.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from ..ipc import Channel
    from ._actor import Actor

# ``async fn(actor, task_status)``: started in every actor's runtime before
# it serves user code, and cancelled when the runtime ends.
Service = Callable[..., Any]
# ``fn(actor, chan)``: called for every channel the runtime serves, before
# its first message is read; what it returns, if not None, is called once
# the channel has been dropped.
ChannelHook = Callable[['Actor', 'Channel'], Optional[Callable[[], None]]]


class RuntimeServices:
    """The start-up services and channel hooks every actor's runtime runs."""

    __slots__ = ('startup', 'channel_hooks')

    def __init__(self, startup: Sequence[Service] = (),
                 channel_hooks: Sequence[ChannelHook] = ()) -> None:
        self.startup: Tuple[Service, ...] = tuple(startup)
        self.channel_hooks: Tuple[ChannelHook, ...] = tuple(channel_hooks)

    def __repr__(self) -> str:
        return (f'RuntimeServices(startup={list(self.startup)!r}, '
                f'channel_hooks={list(self.channel_hooks)!r})')


_installed = RuntimeServices()


def install_services(*, startup: Sequence[Service] = (),
                     channel_hooks: Sequence[ChannelHook] = ()) -> None:
    """Make every actor's runtime opened from now on run ``startup`` (in
    this order) and call ``channel_hooks`` for each channel it serves.

    Replaces what was installed before. Called once, by the package root.
    """
    global _installed
    _installed = RuntimeServices(startup, channel_hooks)


def installed_services() -> RuntimeServices:
    """What :func:`install_services` set (nothing, until it is called)."""
    return _installed
