"""One spawned actor as its parent sees it, whichever way it started.

Its process (a fresh interpreter's :class:`ActorProcess`, or a zygote's
:class:`ForkedProcess`), its portal once it connected, its stderr relayed
to ours with the last lines kept for a crash report, and :meth:`reap`,
which always leaves it gone.
"""
from __future__ import annotations

import logging
import signal
import sys
from collections import deque
from typing import Deque, Optional, Sequence, Union

import trio

from .._exceptions import ActorCrashed
from ..runtime import Actor, Portal
from ._process import ActorProcess
from ._zygote_client import ForkedProcess

log = logging.getLogger('tractorish.spawn')

STDERR_TAIL_LINES = 20
KILL_WAIT = 10.0


def _write_stderr(data: bytes) -> None:
    try:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
    except (AttributeError, ValueError, OSError):  # no real stderr: keep the tail only
        pass


class ChildProcess:
    """One spawned actor: its process, and its portal once it connected."""

    def __init__(self, name: str, uid: Sequence[str],
                 proc: Union[ActorProcess, ForkedProcess],
                 parent: Actor) -> None:
        self.name = name
        self.uid = (uid[0], uid[1])
        self.proc = proc
        self.parent = parent
        self.portal: Optional[Portal] = None
        self.cancel_requested = False
        self._reap_lock = trio.Lock()
        self.stderr_tail: Deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.stderr_closed = trio.Event()
        parent.start_service_task(self._relay_stderr)

    async def _relay_stderr(self) -> None:
        """Copy the child's stderr to ours, keeping its last lines."""
        partial = b''
        try:
            async with trio.lowlevel.FdStream(self.proc.stderr_fd) as stream:
                while True:
                    try:
                        chunk = await stream.receive_some(65536)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        break
                    if not chunk:
                        break
                    _write_stderr(chunk)
                    *lines, partial = (partial + chunk).split(b'\n')
                    self.stderr_tail.extend(
                        line.decode(errors='replace') for line in lines)
            if partial:
                self.stderr_tail.append(partial.decode(errors='replace'))
        finally:
            self.stderr_closed.set()

    def __repr__(self) -> str:
        return f'<ChildProcess {self.name!r} pid={self.proc.pid}>'

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    @property
    def forked(self) -> bool:
        """True if a zygote forked it, False if it is a fresh interpreter."""
        return isinstance(self.proc, ForkedProcess)

    async def wait(self) -> int:
        return await self.proc.wait()

    def crashed_error(self) -> ActorCrashed:
        """The error telling how this actor died (call once it has exited)."""
        code = self.proc.returncode
        how = (f'was killed by signal {signal.Signals(-code).name}'
               if code is not None and code < 0 else f'exited with code {code}')
        tail = '\n'.join(self.stderr_tail)
        text = f'actor {self.name!r} (pid {self.pid}) {how}'
        if tail:
            text += f'; the end of its stderr:\n{tail}'
        return ActorCrashed(text, name=self.name, pid=self.pid, returncode=code,
                            stderr_tail=tail)

    async def exit_report(self, timeout: float = 1.0) -> ActorCrashed:
        """Wait for the exit (and the last of stderr); return :meth:`crashed_error`."""
        with trio.move_on_after(timeout):
            await self.proc.wait()
            await self.stderr_closed.wait()
        return self.crashed_error()

    async def reap(self, *, graceful: bool = True) -> int:
        """End the process and wait for it: cancel, then SIGTERM, then SIGKILL.

        Shielded from cancellation and bounded by the config's timeouts, so
        it always returns with the process gone. Safe to call concurrently.
        """
        config = self.parent.config
        self.cancel_requested = True
        with trio.CancelScope(shield=True):
            async with self._reap_lock:
                if self.proc.returncode is None and graceful and self.portal:
                    await self.portal.cancel_actor(timeout=config.cancel_timeout)
                    with trio.move_on_after(config.grace_period):
                        await self.proc.wait()
                    debugger = self.parent.debugger
                    if self.proc.returncode is None and debugger is not None:
                        # a REPL open in the child (or below): the user ends it
                        await debugger.wait_for_child(self.portal,
                                                      lambda: self.proc.returncode is not None)
                        with trio.move_on_after(config.grace_period):
                            await self.proc.wait()
                if self.proc.returncode is None and graceful:
                    log.warning('%r did not exit after cancel; sending SIGTERM', self)
                    self.proc.terminate()
                    with trio.move_on_after(config.term_timeout):
                        await self.proc.wait()
                if self.proc.returncode is None:
                    if graceful:
                        log.warning('%r ignored SIGTERM; sending SIGKILL', self)
                    self.proc.kill()
                with trio.move_on_after(KILL_WAIT) as scope:
                    await self.proc.wait()
                if scope.cancelled_caught:  # SIGKILL cannot fail: only its report can
                    log.error('%r: no exit status %ss after SIGKILL', self, KILL_WAIT)
        log.info('actor %r (pid %d) exited with code %s', self.name, self.pid,
                 self.proc.returncode)
        return self.proc.returncode  # type: ignore[return-value]
