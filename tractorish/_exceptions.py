"""The error family of tractorish.

Every public error derives from :class:`TractorishError`. This module sits
below every layer: it imports nothing from the package and does no I/O.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

Uid = Tuple[str, str]

# the attribute by which a copy of an error names its original
_COPY_OF = '_tractorish_copy_of'


class TractorishError(Exception):
    """Root of every error raised by tractorish itself."""


class MessagingError(TractorishError):
    """A message dialog went wrong (tractor's name; see :class:`ProtocolError`)."""


class InternalError(TractorishError, RuntimeError):
    """The runtime reached a state it should never be in: a bug of ours."""


class RuntimeFailure(TractorishError, RuntimeError):
    """The runtime cannot do what was asked, e.g. open a second root actor
    in one process."""


class ProtocolError(MessagingError):
    """A peer sent bytes or messages that break the wire protocol.

    Raised by the ``msg`` layer; the channel that carried the bad input is
    closed, the actor and its other channels go on.
    """


class MsgTypeError(TractorishError, TypeError):
    """A value cannot be encoded to msgpack (or a message is too large)."""


class TransportClosed(TractorishError, ConnectionError):
    """The channel to a peer is closed, or the peer went away."""

    @property
    def message(self) -> str:
        return str(self)


class AuthenticationError(TractorishError, PermissionError):
    """A peer failed the handshake: wrong protocol, wrong or no secret."""


class SecretError(TractorishError):
    """The shared secret cannot be loaded safely (e.g. a readable file)."""


class ModuleNotExposed(TractorishError, ModuleNotFoundError):
    """A call named a module the actor does not expose in ``enable_modules``."""


class ActorFailure(TractorishError):
    """An actor failed as a process: it died or could not start (tractor's name)."""


class ActorTooSlowError(TractorishError, TimeoutError):
    """An actor did not acknowledge a request (say, to cancel) in time."""


class ActorCrashed(ActorFailure):
    """An actor process died without reporting an error or result.

    Carries the actor's ``name``, ``pid`` and ``returncode`` (negative for a
    signal, as :mod:`subprocess` reports it).
    """

    def __init__(self, message: str, *, name: str = '', pid: Optional[int] = None,
                 returncode: Optional[int] = None, stderr_tail: str = '') -> None:
        super().__init__(message)
        self.name = name
        self.pid = pid
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class RemoteActorError(TractorishError):
    """An exception raised in another actor, boxed and sent to us.

    ``boxed_type`` is the original exception class when it is importable
    here (already imported in this process), else ``None``; ``type_str`` is
    its name in any case. ``src_uid`` names the actor where it was raised,
    ``relay_uids`` the actors that passed it on, ``tb_str`` is the remote
    traceback text.
    """

    def __init__(self, message: str, *, type_str: str = '', tb_str: str = '',
                 src_uid: Optional[Uid] = None, boxed_type_path: str = '',
                 boxed_type: Optional[type] = None,
                 relay_uids: Sequence[Uid] = (),
                 payload: Optional[dict] = None) -> None:
        super().__init__(message)
        self.message = message
        self.type_str = type_str
        self.tb_str = tb_str
        self.src_uid = src_uid
        self.boxed_type_path = boxed_type_path
        self.boxed_type = boxed_type
        self.relay_uids = list(relay_uids)
        self.payload = payload or {}

    def __str__(self) -> str:
        who = self.src_uid[0] if self.src_uid else '?'
        head = f'{self.type_str} in actor {who!r}'
        if self.relay_uids:
            head += ' (relayed by ' + ', '.join(repr(u[0]) for u in self.relay_uids) + ')'
        head += f': {self.message}'
        if self.tb_str:
            return f'{head}\n\n------ remote traceback ------\n{self.tb_str.rstrip()}'
        return head

    @property
    def boxed_type_str(self) -> str:
        """The remote exception's type name (tractor's name of ``type_str``)."""
        return self.type_str

    @property
    def relay_uid(self) -> Optional[Uid]:
        """The last actor that passed this error on (None if it came direct)."""
        return self.relay_uids[-1] if self.relay_uids else None

    def unwrap(self) -> BaseException:
        """The remote exception rebuilt as its own type, with this error as
        its cause, when its type is known here and takes a message; else self."""
        if self.boxed_type is None:
            return self
        try:
            error = self.boxed_type(self.message)
        except Exception:  # a constructor that wants more than a message
            return self
        error.__cause__ = self
        return error

    def __reduce__(self) -> Any:  # keep the boxed data through pickling
        state = {k: v for k, v in self.__dict__.items() if k != _COPY_OF}
        return (_rebuild, (type(self), self.message, state))


def _rebuild(cls: 'type[RemoteActorError]', message: str, state: dict) -> 'RemoteActorError':
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ContextCancelled(RemoteActorError):
    """A remote task was cancelled; ``canceller`` is the uid that asked.

    Raised at the caller only when someone else asked for the cancellation;
    a caller that cancelled its own call sees its own cancellation instead.
    """

    @property
    def canceller(self) -> Optional[Uid]:
        canceller = self.payload.get('canceller')
        return tuple(canceller) if canceller else None  # type: ignore[return-value]


class StreamOverrun(RemoteActorError):
    """tractor's error for a sender that overran its receiver's buffer.

    Never raised here: credit flow control makes a sender wait for room
    instead. It exists so that code catching it keeps working.
    """


class NoResult(TractorishError, RuntimeError):
    """A result was asked of an actor that was not started to produce one."""


def fresh_copy(error: BaseException) -> BaseException:
    """A copy of ``error`` to raise once more, with a traceback of its own.

    Raising one exception object from several places splices their
    tracebacks together; the copy remembers what it copies, so that
    :func:`same_error` can tell the two are one failure, reported once.
    """
    import copy
    duplicate = copy.copy(error).with_traceback(None)
    try:
        duplicate.__dict__[_COPY_OF] = original_of(error)
    except AttributeError:  # an exception type without a __dict__
        pass
    return duplicate


def original_of(error: BaseException) -> BaseException:
    """The error that ``error`` is a :func:`fresh_copy` of (itself if none)."""
    return getattr(error, _COPY_OF, None) or error


def same_error(a: BaseException, b: BaseException) -> bool:
    """True if ``a`` and ``b`` are one failure (one a copy of the other)."""
    return original_of(a) is original_of(b)
