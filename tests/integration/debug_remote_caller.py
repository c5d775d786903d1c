"""The program at the user's terminal, on the second host (for
test_debugger): calls 'calc' on the first host, where the call crashes;
the REPL of 'calc' opens here."""
import trio

import debug_remote_worker
import tractorish


async def main() -> None:
    config = tractorish.RuntimeConfig(discovery='client')
    async with tractorish.open_root_actor('caller', config=config, debug_mode=True):
        async with tractorish.wait_for_actor('calc') as portal:
            print('3 / 4 =', await portal.run(debug_remote_worker.ratio, a=3, b=4))
            try:
                await portal.run(debug_remote_worker.ratio, a=1, b=0)
            except tractorish.RemoteActorError as err:
                print(f'remote {err.boxed_type.__name__} from {err.src_uid[0]!r}')


if __name__ == '__main__':
    trio.run(main)
