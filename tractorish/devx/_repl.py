"""The two ends of a REPL of the tree debugger: the pdb that runs in the
actor being debugged, and the terminal of the root that the user types at.

:class:`TreePdb` is pdb with its input and output sent through a
:class:`~tractorish.devx._debug.Session` (to the root's terminal, maybe
relayed by other actors), and its tracing kept to the one task it stopped.
:class:`Terminal` is the root's terminal: one REPL at a time (the tree
lock), lines read with readline in a thread (so editing, history and tab
completion work and the root's event loop runs on), and Ctrl-C kept from
the tree while a REPL is open. Loaded only in debug mode.
"""
from __future__ import annotations

import io
import os
import pdb
import sys
import threading
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, List, Optional

import trio

from ..supervise._interrupt import interrupts_as_events

# Modules pdb never stops in when stepping: the runtime's own frames and
# trio's, between the user's lines.
SKIP = ['trio', 'trio.*', 'tractorish', 'tractorish.*', 'greenback', 'greenback.*',
        'outcome', 'outcome.*', 'exceptiongroup', 'exceptiongroup.*', 'contextlib',
        'contextvars', 'functools', 'threading']

INTERRUPTED = '--KeyboardInterrupt--'


def prompt_for(who: str) -> str:
    return f'(Pdb+) [{who}] '


class _Output(io.TextIOBase):
    """pdb's stdout: collected until pdb asks for a line or ends."""

    def __init__(self) -> None:
        self._parts: List[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def take(self) -> str:
        text = ''.join(self._parts)
        self._parts.clear()
        return text


class _Input:
    """pdb's stdin: each line is asked of the terminal through the session."""

    def __init__(self, owner: 'TreePdb') -> None:
        self._owner = owner

    def readline(self) -> str:
        return self._owner.read_line()


def in_trio_thread() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def _shielded(afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    # A REPL's I/O is never cancelled: cancellation waits for the REPL.
    with trio.CancelScope(shield=True):
        return await afn(*args)


def bridge(token: trio.lowlevel.TrioToken, afn: Callable[..., Awaitable[Any]],
           *args: Any) -> Any:
    """Run ``afn(*args)`` in the actor's event loop from synchronous code:
    through greenback in a trio task (the loop runs on meanwhile), through
    ``trio.from_thread`` in any other thread."""
    if in_trio_thread():
        import greenback
        return greenback.await_(_shielded(afn, *args))
    return trio.from_thread.run(_shielded, afn, *args, trio_token=token)


def call_soon_in_loop(token: trio.lowlevel.TrioToken, fn: Callable[[], Any]) -> None:
    """Call ``fn()`` in the actor's event loop's thread: here if this is
    it, else through ``trio.from_thread``."""
    if in_trio_thread():
        fn()
    else:
        trio.from_thread.run_sync(fn, trio_token=token)


class TreePdb(pdb.Pdb):
    """pdb for one REPL of the tree: its terminal is the root's, reached
    through ``session``; it traces only the task (or thread) it stopped."""

    def __init__(self, session: Any, who: str, token: trio.lowlevel.TrioToken,
                 *, traced: bool = False) -> None:
        self._out = _Output()
        super().__init__(stdin=_Input(self), stdout=self._out,  # type: ignore[arg-type]
                         skip=SKIP, nosigint=True, readrc=False)
        self.prompt = prompt_for(who)
        self._session = session
        self._token = token
        self._ended = False
        self._traced = traced
        # a breakpoint traces: only the task (or thread) it stopped
        self._task = trio.lowlevel.current_task() if traced and in_trio_thread() else None
        self._thread = threading.get_ident()

    # --- input and output, through the session --------------------------------

    def read_line(self) -> str:
        text = self._out.take()
        prompt = ''
        if text.endswith(self.prompt):
            text, prompt = text[:-len(self.prompt)], self.prompt
        try:
            line = bridge(self._token, self._session.ask, text, prompt, self.complete_line)
        except BaseException:
            self._ended = True
            # the terminal goes back, whatever happened
            call_soon_in_loop(self._token, self._session.close)
            raise
        return '' if line is None else line + '\n'  # '' is EOF: pdb quits

    def flush_output(self) -> None:
        text = self._out.take()
        if text and not self._session.closed:
            bridge(self._token, self._session.write, text)

    def complete_line(self, text: str, line: str, begidx: int, endidx: int) -> List[str]:
        """What tab completes ``text`` to, at ``begidx:endidx`` of ``line``
        (the terminal's readline state, sent here): as pdb's own completion."""
        stripped = len(line) - len(line.lstrip())
        line = line.lstrip()
        begidx, endidx = max(0, begidx - stripped), max(0, endidx - stripped)
        try:
            if begidx > 0:
                command = self.parseline(line)[0]
                complete = self.completedefault if not command else getattr(
                    self, 'complete_' + command, self.completedefault)
            else:
                complete = self.completenames
            return [str(m) for m in complete(text, line, begidx, endidx) or []][:500]
        except Exception:  # a completion must never break the REPL
            return []

    # --- ending ---------------------------------------------------------------

    def end(self) -> None:
        """Send what is left to say and give the terminal back (once)."""
        if self._ended:
            return
        self._ended = True
        try:
            self.flush_output()
        finally:
            call_soon_in_loop(self._token, self._session.close)

    def set_continue(self) -> None:
        super().set_continue()
        if self._traced:
            self.end()  # a breakpoint's REPL ends at 'c' (a post-mortem's, after it)

    def set_quit(self) -> None:
        super().set_quit()
        if self._traced:
            self.end()

    # --- tracing one task only ------------------------------------------------

    def trace_dispatch(self, frame: Any, event: str, arg: Any) -> Any:
        if self._task is not None:
            try:
                current = trio.lowlevel.current_task()
            except RuntimeError:
                current = None
            if current is not self._task:  # another task, between ours' steps
                return None
        elif threading.get_ident() != self._thread:
            return None
        return super().trace_dispatch(frame, event, arg)

    def user_exception(self, frame: Any, exc_info: Any) -> None:
        if self.is_skipped_module(frame.f_globals.get('__name__', '')):
            # stepped out of the user's code (the task ends): as 'c'
            self.set_continue()
            return
        super().user_exception(frame, exc_info)

    def user_return(self, frame: Any, return_value: Any) -> None:
        if self.is_skipped_module(frame.f_globals.get('__name__', '')):
            self.set_continue()
            return
        super().user_return(frame, return_value)


def post_mortem_target(err: BaseException) -> Any:
    """What ``Pdb.interaction`` takes for a post-mortem of ``err``: the error
    itself from Python 3.13 (so ``exceptions`` walks its chain), its
    traceback before."""
    return err if sys.version_info >= (3, 13) else err.__traceback__


# --- the root's terminal -------------------------------------------------------

def _readline_module() -> Any:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    try:
        import readline
    except ImportError:
        return None
    return readline


class _LineClearer:
    """Clears the line being typed and shows the prompt again, from outside
    the thread that reads it (GNU readline's C functions, where present)."""

    def __init__(self, readline: Any) -> None:
        self._lib: Any = None
        if readline is None:
            return
        try:
            import ctypes
            lib = ctypes.CDLL(readline.__file__)
            lib.rl_replace_line.argtypes = [ctypes.c_char_p, ctypes.c_int]
            self._lib = lib if lib.rl_forced_update_display and lib.rl_on_new_line else None
        except (OSError, AttributeError):
            self._lib = None

    def clear(self, note: str) -> bool:
        if self._lib is None:
            return False
        self._lib.rl_replace_line(b'', 0)
        sys.stdout.write(f'\n{note}\n')
        sys.stdout.flush()
        self._lib.rl_on_new_line()
        self._lib.rl_forced_update_display()
        return True


class Terminal:
    """The root's terminal, lent to one REPL at a time in arrival order."""

    def __init__(self) -> None:
        self._lock = trio.Lock()  # fair: REPLs open in the order they asked
        self._reading = False
        self._readline = _readline_module()
        self._clearer = _LineClearer(self._readline)

    def write(self, text: str) -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError):
            pass

    async def _watch_interrupts(self, signals: Any) -> None:
        async for _ in signals:
            if self._reading and self._clearer.clear(INTERRUPTED):
                continue
            self.write(f'\n{INTERRUPTED} (a REPL is open: Ctrl-C does not stop the '
                       f"tree; 'c' goes on, 'q' quits)\n")

    @asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        """The terminal, for one REPL: entered once it is free (REPLs wait
        in turn), with Ctrl-C kept from the tree until the block ends."""
        async with self._lock:
            with interrupts_as_events() as signals:
                async with trio.open_nursery() as nursery:
                    if signals is not None:
                        nursery.start_soon(self._watch_interrupts, signals)
                    yield
                    nursery.cancel_scope.cancel()

    async def read_line(self, prompt: str,
                        complete: Callable[[str, str, int, int], Awaitable[List[str]]]
                        ) -> Optional[str]:
        """A line typed at ``prompt`` (None at end of input)."""
        token = trio.lowlevel.current_trio_token()
        readline = self._readline
        matches: List[str] = []

        def completer(text: str, state: int) -> Optional[str]:
            if state == 0:
                line = readline.get_line_buffer()
                matches[:] = trio.from_thread.run(
                    complete, text, line, readline.get_begidx(), readline.get_endidx(),
                    trio_token=token)
            return matches[state] if state < len(matches) else None

        def read() -> Optional[str]:
            previous = None
            if readline is not None:
                previous = readline.get_completer()
                readline.set_completer(completer)
                readline.parse_and_bind('tab: complete')
            try:
                return input(prompt)
            except EOFError:
                return None
            finally:
                if readline is not None:
                    readline.set_completer(previous)

        self._reading = True
        try:
            # (not abandoned on cancel: a REPL's read is shielded, and
            # two threads must never read the terminal at once)
            return await trio.to_thread.run_sync(read)
        finally:
            self._reading = False


def terminal_is_ours() -> bool:
    """True if this process's stdin is a terminal (a REPL may open here)."""
    try:
        return os.isatty(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return False
