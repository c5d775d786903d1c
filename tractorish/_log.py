"""Logging set-up: one stderr handler per process, tagged with the actor."""
from __future__ import annotations

import logging
import os
from typing import Optional

_HANDLER_ATTR = '_tractorish_handler'

# tractor's levels, by number, between the standard ones (a loglevel of
# 'cancel' or 'runtime' means what it does in tractor)
CUSTOM_LEVELS = {'TRANSPORT': 5, 'RUNTIME': 15, 'DEVX': 17, 'CANCEL': 22, 'PDB': 500}
for _name, _number in CUSTOM_LEVELS.items():
    logging.addLevelName(_number, _name)


def configure_logging(level: Optional[str], actor_name: str) -> None:
    """Send ``tractorish.*`` records at ``level`` or above to stderr.

    ``None`` leaves logging alone (warnings still reach Python's last-resort
    handler). Calling it again replaces the previous handler.
    """
    logger = logging.getLogger('tractorish')
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_ATTR, False):
            logger.removeHandler(handler)
    if not level:
        return
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f'unknown log level {level!r}')
    handler = logging.StreamHandler()
    setattr(handler, _HANDLER_ATTR, True)
    handler.setFormatter(logging.Formatter(
        f'%(asctime)s %(levelname)s [{actor_name}:{os.getpid()}] %(name)s: %(message)s'))
    logger.addHandler(handler)
    logger.setLevel(numeric)
