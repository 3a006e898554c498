"""`duban run`: the bot on DingTalk — stream in, outbox out, the schedule, health and metrics.

Shutdown (SIGTERM or SIGINT): stop taking frames and finish the ones being handled (their acks
go out, their outbox rows are committed), stop the scheduler, let the sender finish its round and
make one last bounded round for what is due, then close. Whatever is left waits in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.app import Bot
from bot.clock import Clock, SystemClock
from bot.dingtalk.cards import CardCallbackHandler
from bot.dingtalk.http import Http
from bot.dingtalk.inbound import InboundHandler, ViaOutbox
from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.receipts import CALLS as read_status_calls
from bot.dingtalk.settings import DingTalkSettings
from bot.dingtalk.stream import StreamClient
from bot.dingtalk.transport import DingTalkTransport
from bot.outbox import SendPacer, deliver_due, run_sender
from bot.receipts_job import run_receipts
from bot.settings import Settings
from bot.todo_job import run_todos
from handlers.incoming import Incoming
from message_templates.reply import Reply
from reminders.calendar import WorkCalendar
from reminders.reports import issue_due
from reminders.reviews import issue_reviews
from reminders.rules import ENV_FILE
from reminders.scheduler import Waker
from storage.db import create_schema, make_engine, transaction
from storage.models import Outbox, OutboxStatus
from storage.outbox import COUNTERS, enqueue, purge_sent, undelivered_counts
from storage.queries import forget_processed
from storage.receipts import undeliverable

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

log = logging.getLogger(__name__)

PROCESSED_KEPT = timedelta(days=30)  # how long a msgId is remembered against redelivery
UNDELIVERABLE_SHOWN = timedelta(days=7)  # /healthz lists people DingTalk refused this recently
FLUSH_SECONDS = 15.0  # the last delivery round on shutdown; systemd's TimeoutStopSec must exceed it
STOP_STREAM_SECONDS = 15.0
# The sender's round under way on shutdown: a round retrying a mark against a database that is away
# would otherwise hold the stop for ever (systemd's TimeoutStopSec must exceed this plus the flush)
STOP_SENDER_SECONDS = 15.0
FIRST_ATTEMPT_SECONDS = 5.0  # how long the rest of the start waits for the stream's first attempt


class RunSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUBAN_", env_file=ENV_FILE, extra="ignore")

    http_host: str = "127.0.0.1"  # /healthz, /metrics and the dashboard (/board/): localhost only by default
    http_port: int = 8787
    log_level: str = "INFO"
    outbox_sent_kept_days: int = 180  # sent outbox rows older than this are purged nightly


class PortInUse(Exception):
    """Another program listens on the port for /healthz, /metrics and the dashboard."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"{host}:{port}")
        self.host, self.port = host, port


class KeyValueFormatter(logging.Formatter):
    """One line per record: ts=… level=… logger=… msg="…" (and exc="…"), for journald and grep."""

    def format(self, record: logging.LogRecord) -> str:
        line = (f"ts={datetime.fromtimestamp(record.created).astimezone().isoformat(timespec='milliseconds')} "
                f"level={record.levelname} logger={record.name} msg={json.dumps(record.getMessage(), ensure_ascii=False)}")
        if record.exc_info or record.exc_text:
            exc = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
            line += f" exc={json.dumps(exc, ensure_ascii=False)}"
        return line


# A token, session key, stream ticket or secret: as a URL query parameter, a JSON or dict key, or a header.
_SECRET = re.compile(
    r"""((?:access_token|session|ticket)=
       |["']?(?:clientSecret|appSecret|accessToken|access_token|x-acs-dingtalk-access-token|ticket)["']?
        \s*[:=,]\s*b?["']?)
       [^\s&"'\\,;)}\]>]+""",
    re.IGNORECASE | re.VERBOSE)


def redact(text: str) -> str:
    return _SECRET.sub(r"\1***", text)


class RedactSecrets(logging.Filter):
    """Defence in depth: whatever a library or we log, the journal never gets a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it, we must not raise here
            return True
        if (clean := redact(message)) != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


QUIET_LOGGERS = {
    # the SDK logs a warning for every `ping` frame it routes; our stream client logs what matters
    "dingtalk_stream.client": logging.ERROR,
    # APScheduler logs every re-planned wake-up job at INFO: noise, since the database is the schedule
    "apscheduler": logging.WARNING,
    # websockets logs handshakes (the stream ticket) and whole frames (what people typed) at DEBUG
    "websockets": logging.WARNING,
    # a line for every /healthz and /metrics scrape
    "aiohttp.access": logging.WARNING,
}


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RedactSecrets())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet)


def outbox_route(engine: Engine, clock: Clock, wake: asyncio.Event | None = None) -> ViaOutbox:
    """Replies the session webhook could not carry go to the outbox: to the group the message came
    from, or to its sender."""

    async def via_outbox(incoming: Incoming, reply: Reply) -> None:
        target, recipient = ("group", incoming.conversation_id) if incoming.is_group else ("user", incoming.sender_id)

        def write() -> None:
            now = clock.now()
            with transaction(engine) as session:
                enqueue(session, reply, target=target, recipient=recipient, deliver_after=now, now=now)

        await asyncio.to_thread(write)
        if wake:
            wake.set()

    return via_outbox


class Service:
    """Everything `duban run` runs, startable and stoppable (tests drive it against the emulator)."""

    def __init__(self, settings: Settings, dingtalk: DingTalkSettings, options: RunSettings,
                 clock: Clock | None = None, pacer: SendPacer | None = None) -> None:
        self.settings, self.dingtalk, self.options = settings, dingtalk, options
        self.clock = clock or SystemClock()
        # paces on the wall clock: a test running simulated days in seconds brings its own
        self.pacer = pacer or SendPacer(dingtalk.rate_per_second)
        self.worker = f"{socket.gethostname()}-{os.getpid()}"
        self.engine: Engine = make_engine(settings.database_url)
        self.bot = Bot(self.engine, settings, self.clock, WorkCalendar.from_file(settings.calendar_overrides))
        # one HTTP client for the OpenAPI calls, the replies and the stream's connections/open: one pool
        http = Http(dingtalk.timeout_seconds)
        self.client = OpenApiClient(dingtalk, http=http)
        self.transport = DingTalkTransport(self.client, cards=dingtalk.cards, robot_code=dingtalk.robot_code)
        self._wake = asyncio.Event()
        self.handler = InboundHandler(self._dispatch, self.client, self.clock, robot_name=dingtalk.robot_name,
                                      via_outbox=outbox_route(self.engine, self.clock, self._wake),
                                      replied=self.bot.mark_replied)
        self.cards = CardCallbackHandler(self._dispatch, outbox_route(self.engine, self.clock, self._wake), self.clock,
                                         replied=self.bot.mark_replied)
        self.stream = StreamClient(dingtalk, self.handler, cards=self.cards, http=http)
        self.waker = Waker(self.engine, self.bot.tick, after_tick=self._wake_sender)
        self._stop_sending = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._http: web.AppRunner | None = None
        self._registry: CollectorRegistry | None = None
        self._registry_lock = threading.Lock()
        self.port = 0

    async def start(self) -> None:
        create_schema(self.engine)
        self.bot.load_roster(self.settings.roster_file)
        self._tasks["stream"] = asyncio.create_task(self.stream.start())
        self._tasks["sender"] = asyncio.create_task(run_sender(
            self.engine, self.transport, self.clock, self.worker, self._stop_sending, pacer=self.pacer, wake=self._wake))
        # The bot can serve a message now. What follows serves none: it loads APScheduler and the web
        # server and runs queries, all on this one event loop (or against its GIL), so it waits for
        # the stream's first attempt (bounded, when DingTalk is slow) instead of holding up its handshake.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stream.attempted.wait(), FIRST_ATTEMPT_SECONDS)
        self._tasks["receipts"] = asyncio.create_task(run_receipts(self.engine, self.client, self.clock,
                                                                  self._stop_sending))
        if self.dingtalk.todo:
            self._tasks["todos"] = asyncio.create_task(run_todos(
                self.engine, self.client, self.clock, self._stop_sending, liaisons=self.dingtalk.todo_liaisons,
                board_url=self.settings.dashboard_url))
        self.waker.start()
        # bulletins: a daily look at work_start, when reports fall due (each knows whether it is due
        # and goes out once per period), and one look now, so one due while the bot was down goes out
        start = self.settings.rules.work_start
        self.waker.add_cron("bulletins", self._bulletins, hour=start.hour, minute=start.minute)
        self.waker.add_cron("housekeeping", self._housekeeping, hour=3, minute=0)
        await self._bulletins()
        await self._start_http()
        log.info("duban running worker=%s http=%s:%s", self.worker, self.options.http_host, self.port)

    async def _housekeeping(self) -> None:
        def forget() -> int:
            with transaction(self.engine) as session:
                return forget_processed(session, self.clock.now() - PROCESSED_KEPT)

        log.info("forgot %d processed msgIds", await asyncio.to_thread(forget))
        kept = timedelta(days=self.options.outbox_sent_kept_days)
        purged = await asyncio.to_thread(purge_sent, self.engine, self.clock.now() - kept)
        log.info("purged %d outbox rows sent more than %d days ago", purged, self.options.outbox_sent_kept_days)

    async def _bulletins(self) -> None:
        def issue() -> int:
            with transaction(self.engine) as session:
                now, calendar = self.clock.now(), self.bot.calendar
                return len(issue_due(session, now, self.settings, calendar)
                           + issue_reviews(session, now, self.settings, calendar))

        if await asyncio.to_thread(issue):
            self._wake.set()

    async def stop(self) -> None:
        log.info("duban stopping: no new messages, finishing those in hand")
        await self.stream.stop()
        with contextlib.suppress(TimeoutError):
            if "stream" in self._tasks:  # a start cut short may not have got so far
                await asyncio.wait_for(self._tasks["stream"], STOP_STREAM_SECONDS)
        self.waker.shutdown()
        self._stop_sending.set()
        self._wake.set()
        if "sender" in self._tasks:
            try:
                await asyncio.wait_for(self._tasks["sender"], STOP_SENDER_SECONDS)
            except TimeoutError:
                log.error("duban stop: the outbox round did not finish in %.0f s; stopped it", STOP_SENDER_SECONDS)
        for name in ("receipts", "todos"):  # those started (a start cut short started fewer)
            if name in self._tasks:
                await self._tasks[name]
        try:
            sent = await asyncio.wait_for(
                deliver_due(self.engine, self.transport, self.clock.now(), self.worker), FLUSH_SECONDS)
            log.info("duban flushed %d messages on the way out", sent)
        except TimeoutError:
            log.warning("duban flush cut short: the rest waits in the outbox for the next start")
        if self._http:
            await self._http.cleanup()
        await asyncio.to_thread(self.bot.close)
        await self.stream.aclose()
        await self.client.aclose()
        self.engine.dispose()
        log.info("duban stopped")

    # -- wiring ------------------------------------------------------------------------------

    async def _dispatch(self, incoming: Incoming) -> list[Reply]:
        replies = await self.bot.handle(incoming)
        self._wake.set()  # the command may have written outbox rows: send them now, not at the next poll
        return replies

    async def _wake_sender(self) -> None:
        self._wake.set()

    # -- health and metrics ------------------------------------------------------------------

    async def _start_http(self) -> None:
        # loaded here, once the stream task is under way: nothing a message needs comes from them
        from aiohttp import web

        from bot.dashboard.app import add_dashboard

        app = web.Application()

        async def healthz(_request: web.Request) -> web.Response:
            health = await asyncio.to_thread(self.health)
            return web.json_response(health, status=200 if health["status"] == "ok" else 503)

        async def metrics(_request: web.Request) -> web.Response:
            body, content_type = await asyncio.to_thread(self.metrics)
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics)])
        add_dashboard(app, self.engine, self.settings, self.clock, self.bot.calendar)  # /board/: 督查看板
        self._http = web.AppRunner(app)
        await self._http.setup()
        site = web.TCPSite(self._http, self.options.http_host, self.options.http_port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(self.options.http_host, self.options.http_port) from exc
        self.port = self._http.addresses[0][1]

    def metrics(self) -> tuple[bytes, str]:
        """The /metrics page and its content type. prometheus_client is loaded at the first scrape,
        not at start: a bot nobody scrapes never needs it."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        with self._registry_lock:  # scrapes run in threads: one registry, one collector
            if self._registry is None:
                self._registry = CollectorRegistry()
                self._registry.register(_Collector(self))
        return generate_latest(self._registry), CONTENT_TYPE_LATEST

    def health(self) -> dict[str, object]:
        database, oldest, counts, refused = True, None, {}, []
        now = self.clock.now()
        try:
            with Session(self.engine) as session:
                session.exec(text("SELECT 1"))
                due = session.exec(select(func.min(Outbox.deliver_after)).where(
                    Outbox.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)), Outbox.deliver_after <= now)).one()
                refused = [u.user_id for u in undeliverable(session, now - UNDELIVERABLE_SHOWN)]
            oldest = (now - due).total_seconds() if due else None
            counts = {str(status): count for status, count in undelivered_counts(self.engine).items()}
        except Exception:
            log.exception("health: database unreachable")
            database = False
        stream = self.stream
        ok = database and stream.connected
        return {
            "status": "ok" if ok else "degraded",
            "stream_connected": stream.connected,
            # why the stream is down: the last failure's reason, or "connecting" before the first answer
            "stream_down_reason": None if stream.connected else (stream.last_failure or "connecting"),
            "stream_failures": stream.failures,  # failed attempts since the last connection
            "database": database,
            "oldest_undelivered_seconds": oldest,
            "outbox": counts,  # undelivered rows by status; sent ones are a counter in /metrics
            # people DingTalk refused to deliver to (invalidStaffIdList) in the last week: fix the roster
            "undeliverable_users": refused,
        }


class _Collector:
    """Metrics read at scrape time from the service and the database: nothing to drift."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        service, health = self._service, self._service.health()
        yield GaugeMetricFamily("duban_stream_connected", "1 while the DingTalk stream is connected",
                                value=float(service.stream.connected))
        yield CounterMetricFamily("duban_stream_connections", "Websocket connections established",
                                  value=service.stream.connections)
        inbound = CounterMetricFamily("duban_inbound_messages", "Robot messages handled", labels=["result"])
        inbound.add_metric(["handled"], service.handler.handled)
        inbound.add_metric(["failed"], service.handler.failed)
        yield inbound
        yield GaugeMetricFamily("duban_database_up", "1 if the database answered", value=float(health["database"]))
        rows = GaugeMetricFamily("duban_outbox_rows", "Outbox rows waiting, by status", labels=["status"])
        for status, count in dict(health["outbox"]).items():  # type: ignore[call-overload]
            rows.add_metric([status], count)
        yield rows
        yield CounterMetricFamily("duban_outbox_sent", "Outbox rows this process sent", value=COUNTERS.sent)
        oldest = health["oldest_undelivered_seconds"]
        yield GaugeMetricFamily("duban_outbox_oldest_due_seconds", "How long the oldest due message has waited",
                                value=float(oldest) if isinstance(oldest, float) else 0.0)
        duplicates = CounterMetricFamily("duban_outbox_possible_duplicates",
                                         "Outbox rows sent again that may have arrived already", labels=["cause"])
        duplicates.add_metric(["unknown_outcome"], COUNTERS.unknown_outcome)
        duplicates.add_metric(["lease_expired"], COUNTERS.lease_expired)
        yield duplicates
        yield CounterMetricFamily("duban_outbox_undeliverable", "Outbox rows DingTalk refused for their recipient",
                                  value=COUNTERS.undeliverable)
        calls = CounterMetricFamily("duban_read_status_calls", "Read-status calls to DingTalk", labels=["endpoint"])
        for endpoint, count in sorted(read_status_calls.items()):
            calls.add_metric([endpoint], count)
        yield calls


async def run(settings: Settings, dingtalk: DingTalkSettings) -> None:
    """`duban run`: until SIGTERM or SIGINT (the CLI has checked the roster and the credentials)."""
    options = RunSettings()
    configure_logging(options.log_level)
    service = Service(settings, dingtalk, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except BaseException:  # e.g. the port taken: what did start (the stream, the sender) stops first
        try:
            await service.stop()
        except Exception:  # the start's own error is the one to report
            log.exception("duban stop after a failed start failed too")
        raise
    # what the start made stays: the collector need not walk it again (the CLI paused it). Its own
    # garbage, ~3,600 objects (0.6 MiB), is frozen with it: collecting that first would cost ~0.1 s.
    gc.freeze()
    gc.enable()
    await stop.wait()
    await service.stop()
