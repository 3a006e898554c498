"""Outbound: the sustained send rate with the default pacing against a per-second limit, and how long
a message waits between falling due and reaching DingTalk.

The sender as `duban run` wires it — bot.outbox.run_sender, DingTalkTransport over aiohttp, the default
SendPacer (5 calls/s: a bucket of 5 that refills at 5/s) and the wall clock — against the DingTalk
emulator (tests/emulator), which answers 429 to any send above 10 in a one-second window: the
tightest limit the default pacing keeps under (5 at once, then 5 a second). Two phases:

1. backlog: 250 messages due at once (a morning's notices after an outage) → the sustained rate and
   how many 429s came back (none expected);
2. steady, 4 messages a second (80% of the pacing) for 20 s written by commands (the sender is
   woken at once, as bot.run does), then 20 s of messages falling due by the clock (the sender
   notices them on its next poll, every second) → due→sent latency p50 / p99 of each kind.

3. burst (`--burst`, alone): the 09:00 moment at province scale — 100,000 open tasks, 3,500 of them
   due at once (a blue each: the head's DM) — through bot.outbox.deliver_due with DingTalk's batch
   size, counting the send calls that reach each recipient as DingTalkTransport makes them (a
   digest is two: its file, then its summary); with `--cards`, as the card transport makes them
   (max_batch 1, a card per task up to bot.outbox.MAX_CARDS_PER_MOMENT). 3 rounds, each on fresh
   tasks. Last line: `calls_per_recipient max=… median=…` (the worst round's worst recipient, and
   the median).

    python -m bench.outbound [--database postgresql://…] [--burst [--cards] [--tasks 100000] [--due 3500]]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

from sqlmodel import Session, func, select

from bench.common import ROUNDS, fmt, load, machine_line
from bot.clock import SystemClock
from bot.dingtalk.openapi import MAX_BATCH_USERS, OpenApiClient
from bot.dingtalk.settings import DingTalkSettings
from bot.dingtalk.transport import DingTalkTransport
from bot.outbox import SendPacer, deliver_due, run_sender
from bot.transport import OutgoingMessage
from message_templates.reply import Reply
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from reminders.rules import Rules
from storage.db import create_schema, make_engine, transaction
from storage.models import Outbox, OutboxStatus
from storage.outbox import enqueue
from storage.tz import SHANGHAI
from tests.emulator import Delivery, Emulator

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/reconcile.py builds the tasks
LIMIT_PER_SECOND = 10
BACKLOG = 250
STEADY_PER_SECOND = 4
STEADY_SECONDS = 20  # each kind


class StampedDeliveries(list[Delivery]):
    """The emulator's record of deliveries, with the wall-clock time each one arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    def append(self, delivery: Delivery) -> None:
        self.at.setdefault(delivery.text, time.time())
        super().append(delivery)


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


async def main(database: str | None) -> None:
    emulator = Emulator()
    stamps = StampedDeliveries()
    emulator.deliveries = stamps
    await emulator.start()
    emulator.limit_rate(LIMIT_PER_SECOND)
    with tempfile.TemporaryDirectory() as work:
        url = database or f"sqlite:///{work}/outbound.db"
        engine = make_engine(url)
        create_schema(engine)
        due: dict[str, tuple[str, float]] = {}  # text → (kind, when it fell due)

        def add(text: str, kind: str, at: datetime) -> None:  # each to a recipient of its own: nothing folds
            with transaction(engine) as session:
                enqueue(session, Reply(title="通知", text=text), target="user", recipient=f"u_{len(due):04d}",
                        deliver_after=at, now=datetime.now(SHANGHAI))
            due[text] = (kind, at.timestamp())

        def unsent() -> int:
            with Session(engine) as session:
                return session.exec(select(func.count()).select_from(Outbox)
                                    .where(Outbox.status != OutboxStatus.SENT)).one()

        settings = DingTalkSettings(client_id=emulator.client_id, client_secret=emulator.client_secret,
                                    openapi_endpoint=emulator.url, oapi_endpoint=emulator.url)
        stop, wake = asyncio.Event(), asyncio.Event()
        async with OpenApiClient(settings) as client:
            await client.access_token()  # not part of any message's wait
            sender = asyncio.create_task(run_sender(engine, DingTalkTransport(client), SystemClock(), "bench", stop,
                                                    pacer=SendPacer(), wake=wake))
            # 1. backlog
            now = datetime.now(SHANGHAI)
            for n in range(BACKLOG):
                add(f"积压 第{n:04d}条", "backlog", now)
            wake.set()
            while await asyncio.to_thread(unsent):
                await asyncio.sleep(0.2)
            arrivals = sorted(stamps.at[text] for text, (kind, _) in due.items() if kind == "backlog")
            rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
            throttled = len(emulator.faults_injected)

            # 2. steady: written by commands, then falling due by the clock
            count, gap = STEADY_PER_SECOND * STEADY_SECONDS, 1 / STEADY_PER_SECOND
            start = time.time()
            for n in range(count):
                await asyncio.sleep(max(0.0, start + n * gap - time.time()))
                await asyncio.to_thread(add, f"命令 第{n:04d}条", "command", datetime.now(SHANGHAI))
                wake.set()
            start = datetime.now(SHANGHAI) + timedelta(seconds=1)
            for n in range(count):
                add(f"到点 第{n:04d}条", "clock", start + timedelta(seconds=n * gap))
            while await asyncio.to_thread(unsent) or time.time() < start.timestamp() + STEADY_SECONDS:
                await asyncio.sleep(0.2)
            stop.set()
            wake.set()
            await sender
        engine.dispose()
    await emulator.stop()

    latency = {kind: [stamps.at[text] - at for text, (k, at) in due.items() if k == kind]
               for kind in ("command", "clock")}
    print(f"outbound, default pacing (SendPacer(): 5/s) against an emulator limit of {LIMIT_PER_SECOND}/s, "
          f"database {url.split(':')[0]}:\n"
          f"  backlog of {BACKLOG}: {rate:.2f} sends/s sustained, {throttled} × 429\n"
          f"  steady {STEADY_PER_SECOND}/s, {STEADY_SECONDS}s of each kind, due→sent latency:\n"
          + "".join(f"    {kind:8s} p50 {percentile(values, 0.5) * 1000:6.0f} ms   p99 {percentile(values, 0.99) * 1000:6.0f} ms"
                    f"   (n={len(values)})\n" for kind, values in latency.items())
          + f"  429s in all: {len(emulator.faults_injected)}")


class CountingTransport:
    """DingTalk as the sender sees it, minus the network: every send call counted per recipient as
    DingTalkTransport would make it — the text, then a file (a digest's attachment) as a second
    message; media uploads are counted apart (they reach no one)."""

    def __init__(self, cards: bool = False) -> None:
        self.shows_cards = cards  # read by the outbox, as DingTalkTransport's
        self.max_batch = 1 if cards else MAX_BATCH_USERS
        self.calls: Counter[str] = Counter()
        self.uploads = 0
        self.rows = 0

    async def send(self, message: OutgoingMessage) -> None:
        media = bool(message.file_path or message.image_path or message.attachment)
        self.uploads += media
        self.rows += len(message.outbox_ids)
        for recipient in message.recipients:  # a card, or an update in place, is one call
            self.calls[recipient] += 1 if message.card_id else bool(message.text.strip()) + media


def burst(database: str | None, tasks: int, due: int, rounds: int, cards: bool = False) -> None:
    from reconcile import NOW, fill, make_due

    worst, medians = [], []
    with tempfile.TemporaryDirectory() as work:
        url = database or f"sqlite:///{work}/burst.db"
        engine = make_engine(url)
        rng = random.Random(42)
        fill(engine, tasks, NOW, rng)
        escalation, taken = Escalation(WorkCalendar(), Rules()), set()
        escalation.reconcile(engine, NOW)
        for _ in range(rounds):
            make_due(engine, due, NOW, rng, taken)
            escalation.reconcile(engine, NOW)
            moment = datetime.combine(NOW.date() + timedelta(days=1), time_of_day(9), tzinfo=NOW.tzinfo)
            transport = CountingTransport(cards)
            while asyncio.run(deliver_due(engine, transport, max(moment, NOW), "bench")):
                pass
            with Session(engine) as session:
                waiting = session.exec(select(func.count()).select_from(Outbox)
                                       .where(Outbox.status != OutboxStatus.SENT)).one()
            assert waiting == 0, f"{waiting} rows not sent"
            calls = sorted(transport.calls.values())
            worst.append(calls[-1])
            medians.append(statistics.median(calls))
            print(f"burst: {transport.rows} rows in {sum(calls)} calls (and {transport.uploads} uploads) to "
                  f"{len(calls)} recipients (max {calls[-1]} to one person, load {load()})", flush=True)
        engine.dispose()
    print(f"outbox burst{' with cards' if cards else ''}, {tasks:,} open tasks, {due:,} due at once, {rounds} rounds: calls per recipient "
          f"max {fmt(worst, 0)}, median {fmt(medians, 1)}")
    print(machine_line("calls_per_recipient", max=max(worst), median=f"{statistics.median(medians):.1f}"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a database URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--burst", action="store_true", help="the 09:00 burst: calls per recipient")
    parser.add_argument("--cards", action="store_true", help="the burst as the card transport sends it")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=3_500)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    if args.burst:
        burst(args.database, args.tasks, args.due, args.rounds, args.cards)
    else:
        asyncio.run(main(args.database))
