"""The errors of entity clusters (all :class:`TractorishError`)."""
from __future__ import annotations

from .._exceptions import TractorishError


class EntityError(TractorishError):
    """Root of the errors of entity clusters: a cluster that cannot be
    started or found, a key or method that cannot be sent, a state that
    cannot be saved. An entity method's own exception is not one: it is
    raised at the caller as :class:`RemoteActorError`, as from ``Portal.run``.
    """


class EntityTimeout(EntityError, TimeoutError):
    """No reply within the ``timeout`` given to ``ask``.

    The message may still be handled later: a timeout stops the waiting,
    not the entity.
    """


class EntityOwnerLost(EntityError, ConnectionError):
    """The worker owning the key went away with the message in flight.

    The message may or may not have been handled. ``ask(..., retry=True)``
    sends it again, to the key's new owner (at least once delivery).
    """

    def __init__(self, message: str, *, key: str = '', worker: str = '') -> None:
        super().__init__(message)
        self.key = key
        self.worker = worker
