"""A program whose entity class lives in its own ``__main__``: the workers
load this file by path to find it (its ``trio.run`` guarded, so that
loading it runs nothing)."""
import trio

import tractorish


class Tally:
    def __init__(self, key: str) -> None:
        self.key = key
        self.count = 0

    async def bump(self) -> int:
        self.count += 1
        return self.count


async def main() -> None:
    async with tractorish.open_entity_cluster(Tally, workers=2, name='tallies') as cluster:
        for key in ('a', 'b', 'a', 'a'):
            count = await cluster.ask(key, 'bump', timeout=10)
        print(f'tally a: {count}')
        print(f"tally b: {await cluster.ask('b', 'bump', timeout=10) - 1}")
        print(f'workers: {cluster.workers}')


if __name__ == '__main__':
    trio.run(main)
