"""Functions the job tests run in worker actors."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional

import trio


async def compute(i: int, delay: float = 0.0, pid_dir: Optional[str] = None) -> dict:
    """The value job ``i`` must end with; notes our pid in ``pid_dir`` (for
    a test that kills workers) before its ``delay``."""
    if pid_dir is not None:
        Path(pid_dir, str(os.getpid())).touch()
    if delay:
        await trio.sleep(delay)
    return {'i': i, 'square': i * i}


async def count_run(path: str, value: int) -> int:
    """Append a line to ``path`` (one per run), return ``value``."""
    with open(path, 'a') as f:
        f.write(f'{value}\n')
    return value


class InvoiceError(Exception):
    pass


async def fail(text: str) -> None:
    raise InvoiceError(text)


async def die_once(marker: str) -> str:
    """Kill our worker the first time (``marker`` tells), return after."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return 'survived'
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return 'unreachable'


async def always_die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def unencodable_result() -> object:
    return {1, 2, 3}


async def sleep_forever() -> None:
    await trio.sleep_forever()


async def whoami() -> str:
    import tractorish
    return tractorish.current_actor().name
