"""A separate program using an entity cluster run by another: a zero-hop client.

Usage: python client_program.py NAME KEYS...   (registry: $TRACTORISH_REGISTRY)

Deposits 10 into each key's account, then prints one JSON line per key:
the key, its balance, the worker the client computed as its owner and the
worker that answered.
"""
import json
import sys

import trio

import tractorish


async def main(name: str, keys: list) -> None:
    async with tractorish.connect_entity_cluster(name, timeout=10) as cluster:
        print(json.dumps({'members': cluster.members}), flush=True)
        for key in keys:
            balance = await cluster.ask(key, 'deposit', amount=10, timeout=10)
            where = await cluster.ask(key, 'whereabouts', timeout=10)
            print(json.dumps({'key': key, 'balance': balance, 'owner': cluster.owner(key),
                              'answered_by': where['worker']}), flush=True)
        try:
            await cluster.ask(keys[0], 'withdraw', amount=10 ** 9, timeout=10)
        except tractorish.RemoteActorError as err:
            print(json.dumps({'error': err.boxed_type.__name__ if err.boxed_type
                              else err.type_str}), flush=True)


if __name__ == '__main__':
    trio.run(main, sys.argv[1], sys.argv[2:])
