"""The spawning actor's side of the ``forkserver`` backend: its zygote's client.

A zygote (``python -m tractorish._zygote``) is started from the actor's
trio thread, so it dies with the actor (``PR_SET_PDEATHSIG``) and the
zygote's children die with the zygote. It has already imported trio,
msgpack and tractorish; forking it saves a child the interpreter start and
those imports. The messages both sides exchange are defined in
``_zygote_protocol.py``; the zygote's side is ``_zygote.py``.
"""
from __future__ import annotations

import array
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Any, Dict, Optional

import trio

from .. import _zygote_protocol as protocol
from .._exceptions import ActorCrashed
from ..runtime import Actor
from ._process import child_env

log = logging.getLogger('tractorish.spawn')

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
REPLY_MAX = 65536  # a reply is a few dozen bytes


class ForkedProcess:
    """A child forked by the zygote: the same face as :class:`ActorProcess`."""

    def __init__(self, pid: int, stderr_fd: int) -> None:
        self.pid = pid
        self.stderr_fd = stderr_fd
        self._code: Optional[int] = None
        self._exited = trio.Event()

    @property
    def returncode(self) -> Optional[int]:
        return self._code

    def _set_exit(self, code: int) -> None:
        if self._code is None:
            self._code = code
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._code is not None
        return self._code

    def send_signal(self, sig: int) -> None:
        if self._code is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ZygoteClient:
    """One zygote process: the requests sent to it and the children it forked.

    :meth:`start` runs the client's task; :meth:`launch` starts the
    process. :meth:`fork` may be called at once: the request waits for the
    launch, and in the socket until the zygote is ready.
    """

    def __init__(self, actor: Actor) -> None:
        self._actor = actor
        self._popen: Optional[subprocess.Popen] = None
        self._sock: Any = None
        self._ids = itertools.count()
        self._pending: Dict[int, Any] = {}  # request id -> [event, reply, stderr fd]
        self._children: Dict[int, ForkedProcess] = {}
        self._launched = trio.Event()
        self._ready = trio.Event()
        # one request on the socket at a time: with the zygote's queue full
        # (net.unix.max_dgram_qlen is small), concurrent senders would wait
        # on one fd together, which trio refuses
        self._send_lock = trio.StrictFIFOLock()
        self.broken: Optional[BaseException] = None

    def start(self) -> None:
        """Run the task that reads the zygote's replies, for the runtime's
        life; the zygote's process starts at :meth:`launch`."""
        self._actor.start_service_task(self._serve)

    def launch(self) -> None:
        """Start the zygote's process now (from the trio thread, so that it
        dies with it). Never raises: a zygote that cannot start is
        :attr:`broken`. Does nothing the second time, or once the client's
        task has ended."""
        if self._launched.is_set() or self.broken is not None:
            return
        try:
            self._start_process()
        except OSError as err:
            self.broken = RuntimeError(f'the zygote could not start: {err}')
            log.warning('%s', self.broken)
        finally:
            self._launched.set()

    def _start_process(self) -> None:
        """The zygote's process: it is :attr:`ready` once it has imported
        what every actor needs."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = child_env()
        env[protocol.PARENT_ENV] = str(os.getpid())
        env[protocol.SPARE_ENV] = '1' if self._actor.config.forkserver_spare else '0'
        try:
            self._popen = subprocess.Popen(
                [sys.executable, '-m', 'tractorish._zygote'], stdin=theirs.fileno(),
                env=env, close_fds=True, start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = trio.socket.from_stdlib_socket(ours)

    @property
    def ready(self) -> bool:
        """True once the zygote can fork, until it is gone."""
        return self._ready.is_set() and self.broken is None

    @property
    def pid(self) -> Optional[int]:
        return self._popen.pid if self._popen else None

    async def fork(self, boot: dict) -> ForkedProcess:
        """Ask for a child running ``boot``; return it once it exists.

        Raises what broke the zygote if it is gone (or goes before it
        answers), :class:`ActorCrashed` if it could not fork.
        """
        await self._launched.wait()
        if self.broken is not None:
            raise self.broken
        read_fd, write_fd = os.pipe()
        request = next(self._ids)
        slot: list = [trio.Event(), None, read_fd]
        self._pending[request] = slot
        try:
            packet = protocol.pack('fork', fork=request, boot=boot)
            async with self._send_lock:
                await self._sock.sendmsg([packet], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                     array.array('i', [write_fd]).tobytes())])
        except BaseException as err:
            self._pending.pop(request, None)
            os.close(read_fd)
            if isinstance(err, ConnectionError) and self.broken is None:
                # it went while we sent, before our task read its end
                self.broken = RuntimeError(f'the zygote is gone: {err}')
            if self.broken is not None and isinstance(err, (OSError, trio.ClosedResourceError)):
                raise self.broken from err  # it went while we sent
            raise
        finally:
            os.close(write_fd)
        try:
            await slot[0].wait()
        except BaseException:
            if isinstance(slot[1], ForkedProcess):
                slot[1].kill()  # its reply came as we were cancelled: nobody will use it
            else:
                # cancelled while the zygote forks: the child will be killed
                # when its reply arrives (see _handle)
                slot[1] = 'abandoned'
            os.close(read_fd)
            raise
        reply = slot[1]
        if isinstance(reply, BaseException):
            os.close(read_fd)
            raise reply
        return reply  # registered by _handle, so an exit is never missed

    @trio.lowlevel.enable_ki_protection
    async def _serve(self) -> None:
        """Read the zygote's replies for the runtime's life; stop it at the end."""
        gone: BaseException = RuntimeError('the zygote is gone')
        try:
            await self._launched.wait()
            if self.broken is not None:
                gone = self.broken
                return
            with trio.move_on_after(START_TIMEOUT) as starting:
                while not self._ready.is_set():
                    if not await self._receive():
                        return
            if starting.cancelled_caught:
                gone = RuntimeError(f'the zygote did not start within {START_TIMEOUT:g} s')
                return
            while await self._receive():
                pass
        except OSError as err:
            log.warning('lost the zygote: %s', err)
        except protocol.ControlMessageError as err:
            log.error('%s', err)
            gone = err
        finally:
            self.broken = gone
            self._fail_pending(gone)
            self._launched.set()
            with trio.CancelScope(shield=True):
                await self._stop()

    async def _receive(self) -> bool:
        """Handle the zygote's next reply; False once it has closed its end."""
        data = await self._sock.recv(REPLY_MAX)
        if not data:
            return False
        self._handle(*protocol.unpack(data, protocol.REPLY))
        return True

    def _handle(self, kind: str, reply: Dict[str, Any]) -> None:
        if kind == 'exited':
            child = self._children.pop(reply['exited'], None)
            if child is not None:
                child._set_exit(reply['code'])
        elif kind == 'ready':
            self._ready.set()
        elif reply[kind] is None:  # a request it could not read: which one is unknown
            self._fail_pending(protocol.ControlMessageError(reply['error']))
        else:
            slot = self._pending.pop(reply[kind], None)
            if slot is None:
                return
            if kind == 'failed':
                slot[1] = ActorCrashed(f'the zygote could not fork: {reply["error"]}')
                slot[0].set()
                return
            # registered here, so an exit is never missed
            process = self._children[reply['pid']] = ForkedProcess(reply['pid'], slot[2])
            if slot[1] == 'abandoned':
                process.kill()  # nobody will use it (its stderr pipe is closed)
                return
            slot[1] = process
            slot[0].set()

    def _fail_pending(self, error: BaseException) -> None:
        """Every request waiting for a reply fails with ``error``."""
        for slot in self._pending.values():
            slot[1] = error
            slot[0].set()
        self._pending.clear()

    async def _stop(self) -> None:
        """End the zygote (closing its socket tells it to) and wait for it,
        and with it for its children."""
        if self._popen is None:
            return
        self._sock.close()
        if not self._ready.is_set():
            self._popen.kill()  # it has forked nothing yet
        with trio.move_on_after(STOP_TIMEOUT):
            while self._popen.poll() is None:
                await trio.sleep(0.005)
        if self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait()
        for child in self._children.values():
            child._set_exit(-signal.SIGKILL)  # the zygote's death took them
