"""A bank of accounts as sharded entities: one live entity per account,
spread over 4 worker actors, each account handling its messages one at a
time.

``Account`` is a plain class in this program's ``__main__``; the workers
load this file by path to find it (the ``trio.run`` at the bottom is
guarded, so that loading it runs nothing). Each account's state is saved
in a SQLite file after each message, so when the worker holding an
account is killed, the account is restored wherever it goes next.

Run: python examples/entities_bank.py
"""
import collections
import functools
import os
import signal
import tempfile

import trio

import tractorish


class Account:
    """One bank account: made as ``Account(key)`` on its key's first message."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.balance = 0

    async def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    async def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise ValueError(f'insufficient funds: {self.key} has {self.balance}, '
                             f'not {amount}')
        self.balance -= amount
        return self.balance

    async def get_balance(self) -> int:
        return self.balance

    async def where(self) -> str:
        return tractorish.current_actor().name


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, 'bank.db')
        async with tractorish.open_entity_cluster(Account, workers=4, name='accounts',
                                                  store=store) as bank:
            print(f'workers: {", ".join(bank.workers)}')
            print(f"alice deposits 100: balance {await bank.ask('alice', 'deposit', amount=100)}")

            # many deposits at once: each account takes its own one at a time
            customers = [f'customer-{i:02}' for i in range(20)]
            async with trio.open_nursery() as nursery:
                for i in range(1000):
                    nursery.start_soon(functools.partial(
                        bank.ask, customers[i % 20], 'deposit', amount=1, timeout=30))
            balances = [await bank.ask(c, 'get_balance') for c in customers]
            print(f'1000 concurrent deposits on 20 accounts, none lost: '
                  f'{balances == [50] * 20}')
            # where keys go: rendezvous hashing spreads them evenly
            per_worker = collections.Counter(bank.owner(f'user-{i}') for i in range(10_000))
            print('10,000 keys would go: '
                  + ', '.join(f'{w} {per_worker[w]}' for w in bank.workers))

            # an entity's exception reaches the caller; the account is unharmed
            try:
                await bank.ask('alice', 'withdraw', amount=500)
            except tractorish.RemoteActorError as err:
                print(f'overdraft refused: {err.boxed_type.__name__}: {err.message}')

            # kill the worker holding alice: her account moves, state and all
            owner = bank.owner('alice')
            os.kill(bank.worker_pid(owner), signal.SIGKILL)
            balance = await bank.ask('alice', 'deposit', amount=1, retry=True, timeout=30)
            print(f'{owner} killed; alice deposits 1: balance {balance}')
            # its supervisor replaces it, and alice's account moves back to it
            with trio.fail_after(30):
                while owner not in bank.members:
                    await trio.sleep(0.01)
            print(f"{owner} replaced; alice is on {await bank.ask('alice', 'where')} again, "
                  f"balance {await bank.ask('alice', 'get_balance')}")

            # another program would do this: find the workers, route by key itself
            async with tractorish.connect_entity_cluster('accounts') as client:
                print(f"a client sees {len(client.members)} workers; bob deposits 7: "
                      f"balance {await client.ask('bob', 'deposit', amount=7, timeout=30)}")


if __name__ == '__main__':
    trio.run(main)
