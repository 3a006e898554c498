"""The bot as a process of its own, for the tests that kill it (tests/e2e/test_crash.py) or run two of it
(tests/e2e/test_two_instances.py) against the DingTalk emulator.

Children are forked from a multiprocessing fork server that imported the bot once: a restart then
costs milliseconds instead of the two seconds of imports, so twenty kills fit in the time budget.
Each child is still a separate process with its own engine, connections and event loop; SIGKILL
leaves behind exactly what a crash would. A child logs, in `duban run`'s format, to its own file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.context import ForkServerContext
from pathlib import Path

from bot.clock import SystemClock
from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.settings import DingTalkSettings
from bot.dingtalk.transport import DingTalkTransport
from bot.outbox import SendPacer, run_sender
from bot.run import RunSettings, Service, configure_logging
from bot.settings import Settings
from reminders.rules import Rules
from storage.db import make_engine

# How often the reconcile runs on the fast clock: at half a simulated day a second, every 36 minutes.
TICK_SECONDS = 0.05


@dataclass(frozen=True)
class FastClock:
    """Simulated time: `start` at wall-clock `origin` (Unix seconds, the same for every restart, so a
    restart neither rewinds time nor pauses it), `speed` times faster than real time until `until`,
    then `after` times faster: slow enough that no new work piles up while the last messages drain,
    and never stopped, so that a dead worker's lease still runs out."""

    start: datetime
    origin: float
    speed: float
    until: datetime
    after: float

    def now(self) -> datetime:
        elapsed = time.time() - self.origin
        fast = (self.until - self.start).total_seconds() / self.speed  # real seconds at `speed`
        if elapsed <= fast:
            return self.start + timedelta(seconds=elapsed * self.speed)
        return self.until + timedelta(seconds=(elapsed - fast) * self.after)


@dataclass(frozen=True)
class Config:
    database_url: str
    emulator_url: str
    client_id: str
    client_secret: str
    log_file: Path
    rate_per_second: float  # the sender's pacing, for users and for each group
    roster: Path | None = None  # serve() only
    clock: FastClock | None = None  # serve() needs one; send() runs on the wall clock without
    cards: bool = False  # interactive cards as the transport (DUBAN_DINGTALK_CARDS)


def fork_server() -> ForkServerContext:
    """The fork server, running and done importing the bot: on a busy machine those imports take
    long, and a test's clock, its first life and its waits must not pay for them."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # no effect once the server runs: it is reused
    ready = context.Process(target=_ready)  # the server forks it only once the imports are done
    ready.start()
    ready.join()
    return context


def _ready() -> None:
    pass


def worker_name(pid: int) -> str:
    """The outbox worker id a child claims rows under (bot.run.Service's format)."""
    return f"{socket.gethostname()}-{pid}"


def serve(config: Config) -> None:
    """`duban run` (bot.run.Service: stream, sender, bulletins, health) on the fast clock, until SIGTERM."""
    _log_to(config.log_file)
    asyncio.run(_serve(config))


def send(config: Config) -> None:
    """Only the outbox sender, as `duban run` wires it, until SIGTERM."""
    _log_to(config.log_file)
    asyncio.run(_send(config))


async def _serve(config: Config) -> None:
    assert config.roster is not None and config.clock is not None
    settings = Settings(database_url=config.database_url, roster_file=config.roster, dingtalk_cards=config.cards,
                        reports_dir=config.log_file.parent / "reports", rules=Rules(auto_issue=True))
    service = Service(settings, _dingtalk(config), RunSettings(http_port=0), config.clock, _pacer(config))
    stop = _stop_on_sigterm()
    await service.start()
    # The service's own scheduler (APScheduler) wakes the reconcile on the wall clock, which knows
    # nothing of simulated time: tick it on the fast clock here, as its date job would.
    while not stop.is_set():
        await service.waker.wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_SECONDS)
    await service.stop()


async def _send(config: Config) -> None:
    engine = make_engine(config.database_url)
    stop = _stop_on_sigterm()
    async with OpenApiClient(_dingtalk(config)) as client:
        transport = DingTalkTransport(client, cards=config.cards, robot_code=config.client_id)
        await run_sender(engine, transport, config.clock or SystemClock(), worker_name(os.getpid()),
                         stop, pacer=_pacer(config))
    engine.dispose()


def _dingtalk(config: Config) -> DingTalkSettings:
    return DingTalkSettings(client_id=config.client_id, client_secret=config.client_secret,
                            openapi_endpoint=config.emulator_url, oapi_endpoint=config.emulator_url,
                            rate_per_second=config.rate_per_second, timeout_seconds=5.0, cards=config.cards)


def _pacer(config: Config) -> SendPacer:
    # DingTalk's ceilings are per real second and minute; at a simulated day a second the per-group
    # 20 a minute would stretch a fortnight's notices to the groups over hours
    return SendPacer(config.rate_per_second, group_per_minute=config.rate_per_second * 60)


def _stop_on_sigterm() -> asyncio.Event:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


def _log_to(path: Path) -> None:
    # stderr itself goes to the file: `duban run`'s logging set-up, and any dying words, land there
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    configure_logging("INFO")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs each re-planned wake-up: 20 a second here
