"""Functions the benchmark calls inside actors.

This module is imported by the spawned actors (``enable_modules=
['bench_funcs']``), so it must stay importable without side effects.
"""
from __future__ import annotations

from typing import Any


async def echo(x: Any = None) -> Any:
    """Return the argument unchanged: the smallest useful round trip."""
    return x
