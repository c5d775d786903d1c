"""Durable calls: jobs recorded in a store, run on a worker pool, by id.

``open_job_queue(pool, store='jobs.db')`` yields a :class:`JobQueue`;
``await jobs.submit(fn, id=..., **kwargs)`` records a job and starts it,
``await jobs.get(id)`` finds it again from any later program. A SQLite
file is the default store; a ``postgresql://`` URL shares one queue among
programs on several hosts. See docs/jobs.md.
"""
from ._job import Job as Job
from ._queue import JobQueue as JobQueue
from ._queue import JobQueueStatistics as JobQueueStatistics
from ._queue import open_job_queue as open_job_queue
from ._store import Attempt as Attempt
from ._store import JobConflict as JobConflict
from ._store import JobError as JobError
from ._store import JobNotFound as JobNotFound
from ._store import JobStoreError as JobStoreError
