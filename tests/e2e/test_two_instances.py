"""Two instances on one PostgreSQL: two sender processes (tests/e2e/crash_runner.py: the outbox sender as
`duban run` wires it) deliver 10,000 outbox rows to the DingTalk emulator at the same time, each
claiming with FOR UPDATE SKIP LOCKED under its own lease. Every row arrives exactly once, and each
recipient's rows in order.

Processes rather than two asyncio tasks: each has its own engine, connection pool, event loop and
interpreter lock, so the claims really race on the database (two tasks in one loop would take turns
at every await). Forked from crash_runner's fork server, they start in milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from message_templates.reply import Reply
from storage.db import create_schema, make_engine, transaction
from storage.models import Outbox, OutboxStatus
from storage.outbox import enqueue
from storage.tz import SHANGHAI
from tests.e2e import crash_runner
from tests.emulator import Emulator

ROWS = 10_000
RECIPIENTS = 500  # 20 rows each, due a millisecond apart: no two fold into one send
RATE_PER_SECOND = 10_000.0  # per process: no pacing to speak of, so the claims race at full speed
DEADLINE_SECONDS = 120.0
pytestmark = pytest.mark.xdist_group("bot_processes")  # one at a time (tests/e2e/test_crash.py)


async def test_two_senders_on_one_postgresql_deliver_10000_rows_once_each_in_order(
        dingtalk: Emulator, pg_database: str, tmp_path: Path) -> None:
    engine = make_engine(pg_database)
    SQLModel.metadata.drop_all(engine)  # the session's database: start empty
    create_schema(engine)
    base = datetime.now(SHANGHAI) - timedelta(minutes=1)
    texts = [f"两实例投递 第{n:05d}条" for n in range(ROWS)]
    with transaction(engine) as session:  # one bulk INSERT (SQLAlchemy's insertmanyvalues)
        for n, text in enumerate(texts):
            enqueue(session, Reply(title="通知", text=text), target="user", recipient=f"u_{n % RECIPIENTS:03d}",
                    deliver_after=base + timedelta(milliseconds=n), now=base)

    fork_server = crash_runner.fork_server()
    processes = [fork_server.Process(target=crash_runner.send, daemon=True, args=(crash_runner.Config(
        database_url=pg_database, emulator_url=dingtalk.url, client_id=dingtalk.client_id,
        client_secret=dingtalk.client_secret, log_file=tmp_path / f"sender-{n}.log",
        rate_per_second=RATE_PER_SECOND),)) for n in range(2)]

    def sent() -> int:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(Outbox)
                                .where(Outbox.status == OutboxStatus.SENT)).one()

    started = time.monotonic()
    try:
        for process in processes:
            process.start()
        while (done := await asyncio.to_thread(sent)) < ROWS:
            assert all(p.is_alive() for p in processes), "a sender died"
            assert time.monotonic() - started < DEADLINE_SECONDS, f"only {done} of {ROWS} sent"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        for process in processes:
            os.kill(process.pid or 0, signal.SIGTERM)
        for process in processes:
            await asyncio.to_thread(process.join, 30)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        with Session(engine) as session:
            by_worker = Counter(session.exec(select(Outbox.claimed_by)).all())
            attempts = Counter(session.exec(select(Outbox.attempts)).all())
        engine.dispose()

    copies = Counter(d.text for d in dingtalk.deliveries)
    assert set(copies) == set(texts), "lost (or unknown) messages"
    assert [text for text, count in copies.items() if count > 1] == [], "duplicates"
    order: dict[str, list[str]] = defaultdict(list)
    for delivery in dingtalk.deliveries:
        order[delivery.to].append(delivery.text)
    assert all(received == sorted(received) for received in order.values()), "a recipient's rows out of order"
    logs = "".join(path.read_text(encoding="utf-8") for path in tmp_path.glob("sender-*.log"))
    assert "expired, sending again" not in logs and "taken over" not in logs  # no live lease was ever taken
    assert len(by_worker) == 2 and min(by_worker.values()) > ROWS // 10  # both did a fair share
    assert attempts == {1: ROWS}  # nobody claimed a row twice

    print(f"\ntwo senders on one PostgreSQL: {ROWS} rows to {RECIPIENTS} recipients in {elapsed:.1f}s, "
          f"{ROWS / elapsed:.0f} rows (sends) a second; split {sorted(by_worker.values())}; "
          f"{len(dingtalk.deliveries)} deliveries, 0 duplicates, 0 lost, every recipient in order")
