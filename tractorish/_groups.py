"""Turning trio's exception groups back into the errors users expect."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List

import trio

from ._compat import BaseExceptionGroup


def collapse_errors(group: BaseExceptionGroup) -> BaseException:
    """One error as itself, several as a flat group, Ctrl-C above all.

    Cancellations are dropped when a real error is there to explain them;
    a group of nothing but cancellations is returned unchanged, so that the
    cancel scope that caused it can catch it.
    """
    leaves: List[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)
    walk(group)
    errors = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if not errors:
        return group
    for error in errors:
        # Ctrl-C explains whatever else broke while it tore things down
        if isinstance(error, KeyboardInterrupt):
            return error
    if len(errors) == 1:
        return errors[0]
    return BaseExceptionGroup(f'{len(errors)} errors in an actor tree', errors)


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
