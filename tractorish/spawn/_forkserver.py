"""The ``forkserver`` spawn backend: actors forked from a warm zygote.

Each spawning actor starts one zygote (``python -m tractorish._forkserver``)
on first use, from its trio thread, so the zygote dies with it
(``PR_SET_PDEATHSIG``) and the zygote's children die with the zygote. The
zygote has already imported trio, msgpack and tractorish; forking it saves
a child the interpreter start and those imports. See ``_forkserver.py`` at
the package root for the zygote's side of the protocol.
"""
from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import weakref
from typing import Any, Dict, Optional

import msgpack
import trio

from .._exceptions import ActorCrashed
from ..runtime import Actor

log = logging.getLogger('tractorish.spawn')

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


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


class Forkserver:
    """One zygote and the bookkeeping of what it forked."""

    def __init__(self, actor: Actor) -> None:
        self._actor = actor
        self._popen: Optional[subprocess.Popen] = None
        self._sock: Any = None
        self._ids = itertools.count()
        self._pending: Dict[int, Any] = {}  # request id -> [event, reply]
        self._children: Dict[int, ForkedProcess] = {}
        self._ready = trio.Event()
        # one request on the socket at a time: with the zygote's queue full
        # (net.unix.max_dgram_qlen is small), concurrent senders would wait
        # on one fd together, which trio refuses
        self._send_lock = trio.StrictFIFOLock()
        self.broken: Optional[BaseException] = None

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        from ._trio import _child_env
        env = _child_env()
        env['TRACTORISH_FORKSERVER_PARENT'] = str(os.getpid())
        env['TRACTORISH_FORKSERVER_SPARE'] = '1' if self._actor.config.forkserver_spare else '0'
        try:
            self._popen = subprocess.Popen(
                [sys.executable, '-m', 'tractorish._forkserver'], stdin=theirs.fileno(),
                env=env, close_fds=True, start_new_session=True)
        finally:
            theirs.close()
        self._sock = trio.socket.from_stdlib_socket(ours)
        self._actor.start_service_task(self._serve)
        with trio.move_on_after(START_TIMEOUT):
            await self._ready.wait()
        if self.broken is not None or not self._ready.is_set():
            raise self.broken or RuntimeError('the forkserver did not start in time')

    async def fork(self, boot: dict) -> ForkedProcess:
        """Ask for a child running ``boot``; return it once it exists."""
        if self.broken is not None:
            raise self.broken
        read_fd, write_fd = os.pipe()
        request = next(self._ids)
        slot: list = [trio.Event(), None, read_fd]
        self._pending[request] = slot
        try:
            data = msgpack.packb({'fork': request, 'boot': boot}, use_bin_type=True)
            async with self._send_lock:
                await self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   _fd_array(write_fd))])
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        try:
            await slot[0].wait()
        except BaseException:
            # cancelled while the zygote forks: the child will be killed
            # when its reply arrives (see _serve)
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
        try:
            while True:
                data = await self._sock.recv(65536)
                if not data:
                    break
                self._handle(msgpack.unpackb(data, raw=False))
        except OSError as err:
            log.warning('lost the forkserver: %s', err)
        finally:
            self.broken = RuntimeError('the forkserver is gone')
            for slot in self._pending.values():
                slot[1] = self.broken
                slot[0].set()
            for child in self._children.values():
                child._set_exit(-signal.SIGKILL)  # the zygote's death took them
            with trio.CancelScope(shield=True):
                await self._stop()

    def _handle(self, reply: dict) -> None:
        if 'exited' in reply:
            child = self._children.pop(reply['exited'], None)
            if child is not None:
                child._set_exit(reply['code'])
        elif 'forked' in reply or 'failed' in reply:
            slot = self._pending.pop(int(reply.get('forked', reply.get('failed', -1))), None)
            if slot is None:
                return
            if 'failed' in reply:
                slot[1] = ActorCrashed(f'the forkserver could not fork: {reply["error"]}')
            elif slot[1] == 'abandoned':
                os.kill(reply['pid'], signal.SIGKILL)  # nobody will use it
                return
            else:
                process = ForkedProcess(reply['pid'], slot[2])
                self._children[reply['pid']] = process
                slot[1] = process
            slot[0].set()
        elif 'ready' in reply:
            self._ready.set()

    async def _stop(self) -> None:
        self._sock.close()
        if self._popen is None:
            return
        with trio.move_on_after(STOP_TIMEOUT):
            while self._popen.poll() is None:
                await trio.sleep(0.005)
        if self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait()

    @property
    def pid(self) -> Optional[int]:
        return self._popen.pid if self._popen else None


def _fd_array(fd: int) -> bytes:
    import array
    return array.array('i', [fd]).tobytes()


_servers: 'weakref.WeakKeyDictionary[Actor, Forkserver]' = weakref.WeakKeyDictionary()
_starting: 'weakref.WeakKeyDictionary[Actor, trio.Lock]' = weakref.WeakKeyDictionary()


async def forkserver_for(actor: Actor) -> Forkserver:
    """The zygote of ``actor``, started on first use (again if it died)."""
    lock = _starting.setdefault(actor, trio.Lock())
    async with lock:
        server = _servers.get(actor)
        if server is None or server.broken is not None:
            server = Forkserver(actor)
            await server.start()
            _servers[actor] = server
        return server
