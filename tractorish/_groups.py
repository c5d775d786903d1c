"""Turning trio's exception groups back into the errors users expect."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, List, Optional

import trio

from ._compat import BaseExceptionGroup
from ._exceptions import same_error


def _leaves(errors: Iterable[BaseException]) -> List[BaseException]:
    leaves: List[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)
    for error in errors:
        walk(error)
    return leaves


def is_cancellation(error: BaseException) -> bool:
    """True for trio's ``Cancelled``, or a group of nothing else."""
    return all(isinstance(e, trio.Cancelled) for e in _leaves([error]))


def holds_keyboard_interrupt(error: BaseException) -> bool:
    """True for Ctrl-C, alone or in a group."""
    return any(isinstance(e, KeyboardInterrupt) for e in _leaves([error]))


def combine_errors(errors: Iterable[BaseException],
                   message: str = 'errors in an actor tree') -> Optional[BaseException]:
    """One error as itself, several as a flat group, Ctrl-C above all.

    Groups are flattened; an error seen twice (the same failure raised
    again from a copy, see ``fresh_copy``) is kept once; cancellations are
    dropped when a real error is there to explain them. ``None`` if there
    is nothing to raise; a lone cancellation (or several, as a group) is
    returned as is, so that the cancel scope that caused it can catch it.
    """
    leaves = _leaves(errors)
    real: List[BaseException] = []
    for error in leaves:
        if isinstance(error, trio.Cancelled):
            continue
        if any(same_error(error, seen) for seen in real):
            continue
        real.append(error)
    if not real:
        if not leaves:
            return None
        return leaves[0] if len(leaves) == 1 else BaseExceptionGroup(message, leaves)
    for error in real:
        # Ctrl-C explains whatever else broke while it tore things down
        if isinstance(error, KeyboardInterrupt):
            return error
    if len(real) == 1:
        return real[0]
    return BaseExceptionGroup(f'{len(real)} {message}', real)


def collapse_errors(group: BaseExceptionGroup) -> BaseException:
    """:func:`combine_errors` for one trio nursery's group.

    A group of nothing but cancellations is returned unchanged, so that the
    cancel scope that caused it can catch it.
    """
    if is_cancellation(group):
        return group
    error = combine_errors([group])
    assert error is not None
    return error


@contextmanager
def collapsing_groups() -> Iterator[None]:
    """Re-raise a trio nursery's exception group as :func:`collapse_errors` says."""
    try:
        yield
    except BaseExceptionGroup as group:
        error = collapse_errors(group)
        if error is group:
            raise
        raise error from None
