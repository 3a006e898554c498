"""The 台账's read status (reminders/ledger.py) read for many tasks at once: each notice keeps its own
recipients and receipts, the signer is never among them, and the number of queries does not grow
with the tasks and notices listed (the dashboard's 单位 page lists a unit's every task)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event
from sqlmodel import Session, select

from bot.simulation import Simulation
from reminders.ledger import ledger_rows, notice_reads
from storage.db import transaction
from storage.models import COLOURS, Notice, NoticeKind, Outbox, OutboxStatus, ReadReceipt, Task
from storage.tz import shanghai
from tests.helpers import DEPUTY, HEAD, OTHER_HEAD, assign

READ_AT = shanghai(2026, 11, 25, 9, 14)


@contextmanager
def statements(sim: Simulation) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(sim.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(sim.engine, "before_cursor_execute", count)


def people(row: dict) -> dict[str, tuple[str, bool]]:
    return {p["user_id"]: (p["text"], p["late"]) for p in row["people"]}


def test_many_tasks_read_at_once_keep_each_notices_readers(sim_any: Simulation) -> None:
    sim = sim_any
    gas = assign(sim, "交办 县住建局 燃气管道隐患排查 截止11月25日")
    drill = assign(sim, "交办 县应急局 应急演练 截止11月25日")
    road = assign(sim, "交办 县住建局 道路修补 截止11月26日")
    yellow = sim.wait_for_draft(gas, shanghai(2026, 12, 1, 18))
    assert "已签发" in sim.say(DEPUTY, f"签发 {yellow}")[0].title
    sim.deliver()
    with transaction(sim.engine) as session:  # DingTalk answered with a read-status key for every DM
        rows = session.exec(select(Outbox, Notice).join(Notice, Notice.id == Outbox.notice_id).where(
            Outbox.target == "user", Outbox.status == OutboxStatus.SENT, Notice.kind.in_(COLOURS))).all()
        for row, notice in rows:
            row.receipt_key = f"key-{row.id}"
            session.add(row)
            if notice.kind is NoticeKind.BLUE and row.recipient == HEAD and notice.code.startswith(gas):
                session.add(ReadReceipt(outbox_id=row.id, notice_id=notice.id, user_id=HEAD, read_at=READ_AT,
                                        exact=True, recorded_at=READ_AT + timedelta(minutes=5)))
    now = sim.clock.now()
    with Session(sim.engine) as session:
        tasks = list(session.exec(select(Task).where(Task.code.in_([gas, drill, road])).order_by(Task.id)))
        with statements(sim) as one:
            ledger_rows(session, now, tasks[:1])
        session.expunge_all()
        with statements(sim) as three:
            listed = ledger_rows(session, now, tasks)
        assert len(three) == len(one), three  # not one query per task, notice or recipient

        reads = {row["task"].code: row["reads"] for row in listed}
        for task in tasks:  # each task's own notices, newest first, as when read alone
            assert [r["notice"].task_id for r in reads[task.code]] == [task.id] * len(reads[task.code])
            ids = [r["notice"].id for r in reads[task.code]]
            assert ids == sorted(ids, reverse=True)
            alone = notice_reads(session, task, now)
            assert [(r["notice"].id, people(r)) for r in alone] == [(r["notice"].id, people(r)) for r in reads[task.code]]

        [gas_yellow, gas_blue] = reads[gas]
        assert (gas_yellow["notice"].kind, gas_blue["notice"].kind) == (NoticeKind.YELLOW, NoticeKind.BLUE)
        assert people(gas_blue) == {HEAD: ("已读 11月25日 09:14", False)}
        assert people(gas_yellow) == {HEAD: ("未读", False)}  # just issued; its signer is no reader
        [drill_blue] = reads[drill]
        assert people(drill_blue) == {OTHER_HEAD: ("未读", True)}  # more than a working day ago, unread
        [road_blue] = reads[road]
        assert people(road_blue) == {HEAD: ("未读", True)}  # the same head read another task's notice, not this one
