"""Logging as tractor offers it: ``get_logger`` and ``get_console_log``.

tractor's loggers are adapters with extra levels (``transport``,
``runtime``, ``devx``, ``cancel``, ``pdb``) under one package logger; here
they sit under the ``tractorish`` logger, which the runtime's own modules
log to, so ``get_console_log('info')`` shows both the program's records and
the runtime's. Nothing here runs per message.
"""
from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Optional

from ._log import CUSTOM_LEVELS, configure_logging

ROOT_NAME = 'tractorish'
LEVEL_ENV = 'TRACTORISH_LOGLEVEL'

_default_loglevel = 'ERROR'


class StackLevelAdapter(logging.LoggerAdapter):
    """A logger with tractor's extra levels as methods."""

    def transport(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(CUSTOM_LEVELS['TRANSPORT'], msg, *args, **kwargs)

    def runtime(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(CUSTOM_LEVELS['RUNTIME'], msg, *args, **kwargs)

    def devx(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(CUSTOM_LEVELS['DEVX'], msg, *args, **kwargs)

    def cancel(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(CUSTOM_LEVELS['CANCEL'], msg, *args, **kwargs)

    def pdb(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(CUSTOM_LEVELS['PDB'], msg, *args, **kwargs)

    @property
    def level(self) -> int:
        return self.logger.getEffectiveLevel()

    def at_least_level(self, level: str) -> bool:
        return at_least_level(self, level)


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f'unknown log level {level!r} (want one of debug, info, warning, '
                         f'error, critical, or {", ".join(n.lower() for n in CUSTOM_LEVELS)})')
    return number


def get_logger(name: Optional[str] = None, pkg_name: str = ROOT_NAME,
               **_tractor_options: Any) -> StackLevelAdapter:
    """A logger under the package logger: ``tractorish.<name>``.

    With no ``name``, the calling module's name. ``pkg_name`` is kept for
    tractor's signature: ``'tractor'`` is taken as this package. tractor's
    other options (``subsys_spec``, ``mk_sublog``...) shape its log
    records' names only, and change nothing here.
    """
    if pkg_name == 'tractor':
        pkg_name = ROOT_NAME
    if name is None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        name = caller.f_globals.get('__name__', '') if caller is not None else ''
    if not name or name in (pkg_name, 'tractor'):
        full = pkg_name
    elif name.startswith(pkg_name + '.'):
        full = name
    else:
        full = f'{pkg_name}.{name}'
    return StackLevelAdapter(logging.getLogger(full), {})


def get_console_log(level: Optional[str] = None, logger: Optional[Any] = None,
                    **kwargs: Any) -> StackLevelAdapter:
    """``get_logger(**kwargs)``, with records at ``level`` and above shown on stderr.

    ``$TRACTORISH_LOGLEVEL`` overrides ``level``. With no level, the logger
    is returned and nothing is set up.
    """
    adapter = logger if isinstance(logger, StackLevelAdapter) else get_logger(**kwargs)
    level = os.environ.get(LEVEL_ENV) or level
    if not level:
        return adapter
    number = _level_number(level)
    configure_logging(logging.getLevelName(number), _actor_name())
    adapter.logger.setLevel(number)
    return adapter


def _actor_name() -> str:
    from .runtime import current_actor
    actor = current_actor(err_on_no_runtime=False)
    return actor.name if actor is not None else str(os.getpid())


def get_loglevel() -> str:
    """The level the package logger shows (tractor's default: ``'ERROR'``)."""
    level = logging.getLogger(ROOT_NAME).level
    return logging.getLevelName(level) if level else _default_loglevel


def at_least_level(log: Any, level: str) -> bool:
    """True if ``log`` shows records at ``level``."""
    logger = log.logger if isinstance(log, logging.LoggerAdapter) else log
    return logger.isEnabledFor(_level_number(level))
