"""Durable jobs: invoices that survive a killed program and a killed worker.

Each invoice is a job with an id, recorded in a SQLite store before it
runs. The first run of the billing program is killed with SIGKILL after
four invoices; the second run, on the same store, finds those four stored,
renders the others, and retries one whose worker dies mid-call on another
worker. One invoice fails for good: its error is stored, and raised again
to whoever asks. Submitting an invoice again returns the same job.

Run: python examples/jobs_invoices.py
"""
import os
import signal
import sys
import tempfile

import trio

import tractorish

INVOICES = [('acme', 120), ('globex', 80), ('initech', 45), ('umbrella', 300),
            ('hooli', 75), ('stark', 990), ('wayne', 410), ('wonka', 15),
            ('tyrell', -5), ('cyberdyne', 60)]
CRASHES = 'invoice-07'  # its worker dies the first time it renders it
FAILS = 'invoice-09'    # a negative amount: it fails, for good


async def render_invoice(customer: str, amount: int, crash_marker: str = '') -> str:
    """Render one invoice (slowly, as real work would)."""
    await trio.sleep(0.05)
    if crash_marker and not os.path.exists(crash_marker):
        open(crash_marker, 'w').close()
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-call
    if amount < 0:
        raise ValueError(f'negative amount for {customer}: {amount}')
    return f'{customer}: {amount:.2f} EUR'


async def bill(store: str, marker: str, die_after: int = 0) -> str:
    """Submit every invoice and wait for each; with ``die_after``, this
    program SIGKILLs itself after that many results. Return this program's
    name in the store (as the owner of the jobs it ran)."""
    async with tractorish.open_actor_pool(2, enable_modules=[__name__],
                                          name='billing') as pool:
        async with tractorish.open_job_queue(pool, store) as jobs:
            submitted = []
            for n, (customer, amount) in enumerate(INVOICES, 1):
                job_id = f'invoice-{n:02d}'
                submitted.append(await jobs.submit(
                    render_invoice, id=job_id, customer=customer, amount=amount,
                    crash_marker=marker if job_id == CRASHES else ''))
            for n, job in enumerate(submitted, 1):
                try:
                    text = await job.result()
                except tractorish.RemoteActorError as err:
                    text = f'failed: {err.type_str}: {err.message}'
                if n == die_after:
                    os.kill(os.getpid(), signal.SIGKILL)  # as a crash would
                if not die_after:
                    print(f'{job.id}: {text}')
            await report(jobs, submitted)
            return jobs.owner


async def report(jobs: tractorish.JobQueue, submitted: list) -> None:
    crashed = await jobs.get(CRASHES)
    outcomes = [attempt.outcome for attempt in await crashed.attempts()]
    print(f'{CRASHES}: its worker died mid-call, and it ran again elsewhere: '
          f'{"crashed" in outcomes and outcomes[-1] == "done"}')
    again = await jobs.submit(render_invoice, id='invoice-01', customer='acme', amount=120,
                              crash_marker='')
    print(f'submitting invoice-01 again returns the same job: {again is submitted[0]}')
    try:
        await jobs.submit(render_invoice, id='invoice-01', customer='acme', amount=999,
                          crash_marker='')
    except tractorish.JobConflict as err:
        print(f'JobConflict: {err}')


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store, marker = os.path.join(tmp, 'invoices.db'), os.path.join(tmp, 'crashed')
        first = await trio.run_process([sys.executable, __file__, store, marker],
                                       check=False)
        print(f'first run: killed by {signal.Signals(-first.returncode).name} after 4 '
              f'invoices')
        second = await bill(store, marker)  # the second run: the same store
        # any later program reads the outcomes; nothing runs again
        async with tractorish.open_job_queue(None, store) as jobs:
            every = await jobs.list()
            once = [[a.outcome for a in await job.attempts()].count(job.status) == 1
                    for job in every]
            print(f'{len(every)} invoices stored, each finished exactly once: {all(once)}; '
                  f'{await jobs.counts()}')
            by_first = [job.id for job in every if job.owner != second]
            print(f'at least 4 were finished by the first run, and found stored: '
                  f'{len(by_first) >= 4}')
            try:
                await (await jobs.get(FAILS)).result()
            except tractorish.RemoteActorError as err:
                print(f'{FAILS}, asked later: {err.type_str}: {err.message}')


if __name__ == '__main__':
    if len(sys.argv) == 3:  # the first run, which is killed midway
        trio.run(bill, sys.argv[1], sys.argv[2], 4)
    else:
        trio.run(main)
