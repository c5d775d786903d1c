"""A fresh interpreter of ours (an actor, or a zygote), started from the trio
thread itself, and waited on by trio.

Why not ``trio.lowlevel.open_process``: it forks from a worker thread, and
Linux's ``PR_SET_PDEATHSIG`` fires when the *thread* that forked a child
exits, not its process. trio retires idle worker threads, so every child
would be killed some seconds after it started. Forking from the thread that
runs trio ties the signal to the lifetime of the parent's event loop.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List, Optional

import trio

# the directory holding the tractorish package, so a child can import it
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env() -> Dict[str, str]:
    """The environment of a fresh interpreter of ours: this one's, with the
    tractorish package importable."""
    env = dict(os.environ)
    paths = env.get('PYTHONPATH', '').split(os.pathsep) if env.get('PYTHONPATH') else []
    if _PACKAGE_PARENT not in paths:
        env['PYTHONPATH'] = os.pathsep.join([_PACKAGE_PARENT, *paths])
    return env


class ActorProcess:
    """A started child: its pid, exit code, signals, and an async ``wait``."""

    def __init__(self, args: List[str], *, stdin_data: bytes,
                 env: Optional[Dict[str, str]] = None) -> None:
        read_fd, write_fd = os.pipe()
        # the child's stderr comes through us, so a crash report can quote it
        self.stderr_fd, err_write = os.pipe()
        try:
            # a session of its own: a terminal's Ctrl-C goes to the root
            # alone, which then tears the tree down in order
            self._popen = subprocess.Popen(args, stdin=read_fd, stderr=err_write, env=env,
                                           close_fds=True, start_new_session=True)
        except BaseException:
            os.close(self.stderr_fd)
            raise
        finally:
            os.close(read_fd)
            os.close(err_write)
        try:
            # the bootstrap is a few KiB: far below a pipe's buffer, so this
            # write never blocks, even if the child is slow to read it
            view = memoryview(stdin_data)
            while view:
                view = view[os.write(write_fd, view):]
        except BrokenPipeError:
            pass  # the child died at once; wait() will tell how
        finally:
            os.close(write_fd)
        self._watching = False
        self._watchers = trio.lowlevel.ParkingLot()
        self._pidfd: Optional[int] = None
        if hasattr(os, 'pidfd_open') and sys.platform.startswith('linux'):
            try:
                self._pidfd = os.pidfd_open(self._popen.pid)
            except OSError:
                self._pidfd = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> Optional[int]:
        """``None`` while running; negative for death by signal."""
        return self._popen.poll()

    async def wait(self) -> int:
        """Wait for the process to exit and reap it; return its exit code.

        Any number of tasks may wait at once. Cancellation leaves the
        process running.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._popen.poll() is None:
            if self._watching:  # trio allows one waiter per fd: share it
                await self._watchers.park()
                continue
            self._watching = True
            try:
                if self._pidfd is not None:
                    await trio.lowlevel.wait_readable(self._pidfd)
                else:  # no pidfd on this platform: poll, cheaply
                    await trio.sleep(0.01)
            finally:
                self._watching = False
                self._watchers.unpark_all()
        self._close_pidfd()
        return self._popen.returncode

    def send_signal(self, sig: int) -> None:
        if self._popen.poll() is None:
            self._popen.send_signal(sig)

    def terminate(self) -> None:
        if self._popen.poll() is None:
            self._popen.terminate()

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None and not self._watching:
            os.close(self._pidfd)
            self._pidfd = None
