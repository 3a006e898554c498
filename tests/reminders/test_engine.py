"""reconcile: idempotent at one instant, and safe with two sessions at once — SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func
from sqlmodel import Session, select

from bot.settings import Settings
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from reminders.rules import Rules
from storage.db import make_engine
from storage.models import COLOURS, Notice, NoticeStatus, Outbox, ScoreEvent, Task
from storage.tz import shanghai as sh

TASKS = 12


def assign_many(sim, n: int = TASKS) -> None:
    for i in range(n):
        unit = ["县住建局", "县应急局", "县教育局", "城关镇"][i % 4]
        replies = sim.say("u_xianzhang", f"交办 {unit} 第{i + 1}项重点工作推进 截止12月2日", group="cid_leaders")
        assert "已交办" in replies[0].title, replies[0].text


def counts(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {
            "notices": s.exec(select(func.count()).select_from(Notice)).one(),
            "issued_colours": s.exec(select(func.count()).select_from(Notice).where(
                Notice.status == NoticeStatus.ISSUED, Notice.kind.in_(COLOURS))).one(),
            "scores": s.exec(select(func.count()).select_from(ScoreEvent)).one(),
            "outbox": s.exec(select(func.count()).select_from(Outbox)).one(),
        }


def test_reconcile_twice_at_the_same_instant_issues_nothing_twice(sim_any):
    assign_many(sim_any)
    sim_any.clock.set(sh(2026, 12, 8, 9))  # ack reminder, courtesy, blue and the yellow draft are all due
    first = sim_any.bot.tick()
    after_first = counts(sim_any.engine)
    assert first == TASKS * 4  # A1, C1, B1, Y1 draft for each task
    assert sim_any.bot.tick() == 0
    assert counts(sim_any.engine) == after_first
    assert after_first["scores"] == after_first["issued_colours"] == TASKS  # the blues


def test_two_sessions_reconciling_at_once_issue_each_notice_once(db_url):
    from bot.simulation import Simulation

    rules = Rules(auto_issue=True)
    sim = Simulation(db_url, sh(2026, 11, 23, 9, 30), settings=Settings(database_url=db_url, rules=rules))
    assign_many(sim)
    now = sh(2026, 12, 25, 10)  # a late wake-up: everything up to the yellow is due at once, auto-issued
    engines = [make_engine(db_url) for _ in range(2)]
    created: list[int] = []
    barrier = threading.Barrier(2)

    def run(engine) -> None:
        barrier.wait()
        created.append(Escalation(WorkCalendar(), rules).reconcile(engine, now))

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(sim.engine) as s:
        notices = s.exec(select(Notice)).all()
        per_task = Counter((n.task_id, n.kind, n.seq) for n in notices)
        assert max(per_task.values()) == 1
        kinds = Counter(n.kind for n in notices)
        # per task: ack reminder, courtesy, blue, yellow; the red counts from the yellow's issue (now)
        assert kinds == {"ack_reminder": TASKS, "courtesy": TASKS, "blue": TASKS, "yellow": TASKS}
        assert sum(created) == len(notices) == 4 * TASKS
        scores = s.exec(select(ScoreEvent)).all()
        assert len(scores) == 2 * TASKS and len({sc.notice_id for sc in scores}) == len(scores)
        assert sum(sc.points for sc in scores) == TASKS * (-1 - 2)
        outbox = Counter((o.notice_id, o.target, o.recipient) for o in s.exec(select(Outbox)) if o.notice_id)
        assert max(outbox.values()) == 1
        assert all(t.next_check_at is not None for t in s.exec(select(Task)))
    for e in engines:
        e.dispose()
    sim.engine.dispose()


def test_processed_message_ids_are_forgotten_after_a_month(sim_any):
    from datetime import timedelta

    from storage.db import transaction
    from storage.models import ProcessedMessage
    from storage.queries import forget_processed

    sim_any.say("u_xianzhang", "交办 县住建局 燃气管道隐患排查", group="cid_leaders")
    sim_any.clock.advance(days=20)
    sim_any.say("u_zhujian", "签收 DB-2026-0001")
    with transaction(sim_any.engine) as s:
        assert forget_processed(s, sim_any.clock.now() - timedelta(days=10)) == 1
    with Session(sim_any.engine) as s:
        assert len(s.exec(select(ProcessedMessage)).all()) == 1
