"""An entity type whose module takes a second to import: a worker that
loads it takes that long to start, or to come back once it died."""
import time

from entity_funcs import Counter as _Counter

time.sleep(1.0)


class SlowStartCounter(_Counter):
    """:class:`entity_funcs.Counter`, in workers slow to start."""
