"""A module that takes a second to import: an actor that enables it takes
that long to start (tests/integration/test_supervisors.py)."""
import os
import time

time.sleep(1.0)


async def getpid() -> int:
    return os.getpid()
