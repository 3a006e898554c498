"""PostgreSQL: commands run in worker processes, so a burst uses more than the one core that
Python's GIL lets a process's threads share.

Profiles of `duban run` on PostgreSQL in a burst (bench.inbound): the bot's process sat at one core,
two thirds of it the commands' own Python (SQLAlchemy, psycopg) and the rest the stream, the replies
and the outbox, while PostgreSQL itself used a tenth of a core; more threads only made each command
dearer (they fight over the GIL). Each worker holds its own engine and its own Bot, and runs a
command exactly as the bot's own thread would: one transaction, the msgId guard, the row lock. What
stays in the bot's process is everything that talks to DingTalk and the outbox.

The time is the bot's injected clock's, read when the command is handed over (bot/app.py: a worker
has no clock of its own). A worker that dies (killed, out of memory) breaks the pool: it is started afresh and the
command runs once more — safe for the same reason a lost connection's command is (bot/app.py): its
transaction either died uncommitted, or committed its msgId, and then the stored replies are the
answer.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# spawn, not fork: the bot's process has threads (the event loop's executors, the engine's pool)
# that a forked child would inherit half-way through whatever they were doing
_CONTEXT = multiprocessing.get_context("spawn")


class CommandProcesses:
    """`size` worker processes, started as commands come; each runs `initializer(*args)`
    once (bot/app.py gives it a Bot of its own). What they log is logged here, by this process's
    handlers (its format, its secret filter, its file)."""

    def __init__(self, size: int, initializer: Callable[..., None], args: tuple) -> None:
        self.size = size
        self._initializer, self._args = initializer, args
        self._pool: ProcessPoolExecutor | None = None
        self._logs: logging.handlers.QueueListener | None = None
        self._lock = threading.Lock()

    async def run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker; `what` names it in the log if its worker died."""
        loop = asyncio.get_running_loop()
        pool = self._current()
        try:
            return await loop.run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            log.error("%s: a command worker died; starting them afresh and running it again", what)
            self._replace(pool)
            return await loop.run_in_executor(self._current(), fn, *args)

    def close(self) -> None:
        """Wait for the commands under way, then stop the workers."""
        with self._lock:
            pool, self._pool = self._pool, None
            logs, self._logs = self._logs, None
        if pool is not None:
            pool.shutdown(wait=True)
        if logs is not None:
            logs.stop()

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                if self._logs is None:
                    self._logs = logging.handlers.QueueListener(_CONTEXT.Queue(), _Relog())
                    self._logs.start()
                self._pool = ProcessPoolExecutor(
                    self.size, mp_context=_CONTEXT, initializer=_start,
                    initargs=(os.getpid(), self._logs.queue, logging.getLogger().level, self._initializer, self._args))
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # a command that failed alongside may have replaced it already
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)


class _Relog(logging.Handler):
    """A worker's record, handled as if logged here."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


# -- in the worker ---------------------------------------------------------------------------------


def _start(parent: int, logs: Any, level: int, initializer: Callable[..., None], args: tuple) -> None:
    _die_with(parent)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(logs)]
    root.setLevel(level)
    initializer(*args)


def _die_with(parent: int) -> None:
    """A worker ends with the bot: killed (kill -9, out of memory), the bot leaves no worker behind
    holding database connections. The pool starts workers from the event loop's thread, which
    lives as long as the bot (the signal follows the thread that started the child)."""
    if sys.platform == "linux":  # prctl(PR_SET_PDEATHSIG, SIGKILL)
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:  # the bot died before the line above
        os._exit(1)
