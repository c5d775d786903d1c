"""Entity types the entity tests run in worker actors."""
from __future__ import annotations

import os
from pathlib import Path

import trio

import tractorish


# entities of one worker meeting in Counter.meet (module state: one per worker)
_meeting: dict = {'count': 0, 'event': None}


class Counter:
    """A counter whose increment yields between its read and its write: a
    lost update shows if two messages of a key ever run at once."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.value = 0
        self.running = 0
        self.overlaps = 0

    async def add(self, n: int = 1, pause: float = 0.0) -> int:
        self.running += 1
        if self.running > 1:
            self.overlaps += 1
        value = self.value
        await trio.sleep(pause)  # a checkpoint even for 0: other tasks run here
        self.value = value + n
        self.running -= 1
        return self.value

    async def get(self) -> dict:
        return {'value': self.value, 'overlaps': self.overlaps,
                'worker': tractorish.current_actor().name, 'pid': os.getpid()}

    async def append(self, item: int) -> None:
        self.items = getattr(self, 'items', []) + [item]

    async def tag(self, key: str, method: str) -> str:
        """Parameters named as ask's and tell's own: passed on all the same."""
        return f'{key}/{method}'

    async def items_seen(self) -> list:
        return getattr(self, 'items', [])

    async def sleep(self, seconds: float) -> str:
        await trio.sleep(seconds)
        return 'slept'

    async def fail(self, text: str) -> None:
        raise ValueError(text)

    def where(self) -> str:  # a plain method works too
        return tractorish.current_actor().name

    async def meet(self, n: int) -> str:
        """Return once ``n`` entities of this worker are in here at once:
        only entities of different keys running concurrently can."""
        if _meeting['event'] is None:
            _meeting['event'] = trio.Event()
        event = _meeting['event']
        _meeting['count'] += 1
        if _meeting['count'] >= n:
            event.set()
            _meeting.update(count=0, event=None)
        with trio.fail_after(10):
            await event.wait()
        return 'met'

    async def nap(self, marker: str) -> str:
        """Sleep long the first time (a marker file says it happened), not again."""
        if os.path.exists(marker):
            return 'delivered again'
        Path(marker).write_text(tractorish.current_actor().name)
        await trio.sleep(60)
        return 'slept'


class Account:
    """A bank account whose state is saved by ``get_state``/``set_state``, and
    which notes its passivation in a file (``on_passivate``)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.balance = 0
        self.notes_dir = ''

    async def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    async def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise ValueError(f'insufficient funds in {self.key}: {self.balance} < {amount}')
        self.balance -= amount
        return self.balance

    async def get_balance(self) -> int:
        return self.balance

    async def take_notes_in(self, path: str) -> None:
        self.notes_dir = path

    async def whereabouts(self) -> dict:
        return {'worker': tractorish.current_actor().name, 'pid': os.getpid()}

    def get_state(self) -> dict:
        return {'balance': self.balance}

    def set_state(self, state: dict) -> None:
        self.balance = state['balance']

    async def on_passivate(self) -> None:
        if self.notes_dir:
            with open(Path(self.notes_dir) / f'{self.key}.passivated', 'a') as f:
                f.write(f'{self.balance}\n')
