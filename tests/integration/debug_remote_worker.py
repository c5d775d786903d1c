"""An actor of another program, on another host (for test_debugger): a
root in debug mode with no terminal, registered as 'calc'."""
import trio

import tractorish


async def ratio(a: float, b: float) -> float:
    share = a / b
    return share


async def serve() -> None:
    async with tractorish.open_root_actor('calc', enable_modules=['debug_remote_worker'],
                                          debug_mode=True):
        print('ready', flush=True)
        await trio.sleep_forever()


if __name__ == '__main__':
    try:
        trio.run(serve)
    except KeyboardInterrupt:
        pass
