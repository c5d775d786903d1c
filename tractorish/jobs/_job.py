"""A durable job as the user sees it, and how values and errors are stored.

Arguments and results are stored with the wire's msgpack encoding (the
``msg`` layer's :class:`~tractorish.msg.Encoder`, and its decoder's
options), so what a job may take and return is what a call may send.
Errors are stored as the wire's error payloads and come back as
:class:`RemoteActorError`, with the type, message and traceback text of the
original.
"""
from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import msgpack

from .. import msg
from .._exceptions import MsgTypeError, RemoteActorError
from ..runtime import CONTEXT_ATTR, STREAM_ATTR, function_ref
from ._store import FINISHED, Attempt, JobError, JobRecord

if TYPE_CHECKING:
    from ._queue import JobQueue

_ENCODER = msg.Encoder()  # used on the trio thread only, as an Encoder must be


def encode(value: Any, what: str) -> bytes:
    """``value`` as the wire would encode it; :class:`MsgTypeError` saying
    ``what`` it is if it cannot be."""
    try:
        return _ENCODER.encode(value)
    except MsgTypeError as err:
        raise MsgTypeError(f'{what} cannot be stored: {err}') from None


def decode(data: bytes) -> Any:
    """A stored value, decoded with the wire decoder's options."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=3)


def error_payload(err: BaseException, here: Any) -> Dict[str, Any]:
    """The wire's error payload for ``err``: a remote error keeps its own
    origin (the worker), any other is packed as raised in the actor ``here``."""
    if isinstance(err, RemoteActorError):
        payload = dict(err.payload or {})
        payload.update(type_str=err.type_str, tb_str=err.tb_str, message=err.message,
                       src_uid=list(err.src_uid or ()), boxed_type_path=err.boxed_type_path,
                       relay_uids=[list(uid) for uid in err.relay_uids])
        return payload
    return msg.pack_error(err, here)


def function_path(fn: Callable[..., Any]) -> str:
    """``module:function``, the name a job's function is stored under."""
    if inspect.isasyncgenfunction(fn) or getattr(fn, STREAM_ATTR, None) \
            or getattr(fn, CONTEXT_ATTR, False):
        raise TypeError(f'{fn.__name__} streams or is a context: a job runs a function '
                        f'that returns one value')
    if not callable(fn):
        raise TypeError(f'{fn!r} is not a function')
    ns, name = function_ref(fn)
    return f'{ns}:{name}'


def resolve(path: str) -> Optional[Callable[..., Any]]:
    """The function stored as ``path``, if its module is imported here.

    Only modules this program has already imported are looked in: a store
    names a module, and importing what it names would run that module's
    code here (as unpacking errors never imports either).
    """
    ns, _, name = path.partition(':')
    module = sys.modules.get(ns)
    fn = getattr(module, name, None) if module is not None else None
    if fn is None or not callable(fn):
        return None
    try:
        return fn if function_path(fn) == path else None
    except TypeError:
        return None


class Job:
    """A durable call, by id: returned by :meth:`JobQueue.submit` and
    :meth:`JobQueue.get`.

    Its attributes are the job as last read from the store (or as changed
    by this program): ``status`` is ``'pending'``, ``'running'`` (then on
    ``worker``, in attempt number ``attempt``), ``'done'`` or ``'failed'``.
    :meth:`refresh` reads it again; :meth:`result` waits for the end.
    """

    def __init__(self, queue: 'JobQueue', record: JobRecord) -> None:
        self._queue = queue
        self._record = record

    def _update(self, record: JobRecord) -> None:
        if record.updated_at >= self._record.updated_at or record.status in FINISHED:
            self._record = record

    @property
    def id(self) -> str:
        """The job's id: it names one call."""
        return self._record.id

    @property
    def function(self) -> str:
        """The function, as ``module:function``."""
        return self._record.fn

    @property
    def kwargs(self) -> Dict[str, Any]:
        """The keyword arguments, as stored."""
        return decode(self._record.args)

    @property
    def status(self) -> str:
        """``'pending'``, ``'running'``, ``'done'`` or ``'failed'``."""
        return self._record.status

    @property
    def attempt(self) -> int:
        """Attempts started so far: the running one's number while it runs."""
        return self._record.attempts

    @property
    def worker(self) -> Optional[str]:
        """The worker of the latest attempt (``None`` before the first)."""
        return self._record.worker

    @property
    def owner(self) -> Optional[str]:
        """The program holding the job while it runs (and that finished it)."""
        return self._record.owner

    @property
    def created_at(self) -> float:
        """When it was submitted: seconds since the epoch, on the store's clock."""
        return self._record.created_at

    @property
    def finished_at(self) -> Optional[float]:
        """When it finished (``None`` before), on the store's clock."""
        return self._record.finished_at

    @property
    def done(self) -> bool:
        """True once the job is ``done`` or ``failed``: it never runs again."""
        return self._record.status in FINISHED

    def __repr__(self) -> str:
        record = self._record
        where = (f' on {record.worker}, attempt {record.attempts}'
                 if record.status == 'running' else '')
        return f'<Job {record.id!r} {record.fn} {record.status}{where}>'

    async def refresh(self) -> 'Job':
        """Read the job from the store again; return it."""
        record = await self._queue._store_get(self.id)
        self._update(record)
        return self

    async def attempts(self) -> List[Attempt]:
        """Every attempt so far, oldest first."""
        return await self._queue._attempts(self.id)

    async def result(self) -> Any:
        """Wait until the job has finished; return its stored result.

        A job that failed raises its stored error as a
        :class:`RemoteActorError` (with the original type's name, message
        and traceback text), here and in any later program. Cancelling this
        wait leaves the job as it is: it keeps running.
        """
        while self._record.status not in FINISHED:
            await self._queue._wait_for(self)
        return self.outcome()

    def outcome(self) -> Any:
        """The stored result of a finished job, or its stored error raised."""
        record = self._record
        if record.status == 'done':
            return decode(record.result) if record.result is not None else None
        if record.status == 'failed':
            payload = decode(record.error) if record.error is not None else {}
            raise msg.unpack_error(payload if isinstance(payload, dict) else {})
        raise JobError(f'job {record.id!r} has not finished: it is {record.status}')
