"""A module no test exposes: importing it leaves a mark in the environment."""
import os

os.environ['TRACTORISH_TEST_NOT_EXPOSED_IMPORTED'] = '1'


async def secret_function() -> str:
    return 'should never run'
