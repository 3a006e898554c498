"""reconcile: idempotent at one instant, and safe with two sessions at once — SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from bot.settings import Settings
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from reminders.rules import Rules
from storage.db import make_engine
from storage.models import COLOURS, Notice, NoticeStatus, Outbox, ScoreEvent, Task, TaskStatus, Unit
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


def test_nothing_due_on_postgresql_is_one_query_outside_a_transaction(sim_any):
    """The waker asks often and the answer is nearly always no: on PostgreSQL that answer costs one
    query, no BEGIN or COMMIT; what is due is still found."""
    from sqlalchemy import event

    assign_many(sim_any, 2)
    engine, esc = sim_any.engine, sim_any.bot.escalation
    esc.reconcile(engine, sim_any.clock.now())
    statements = []  # (SQL, whether the driver sends it in autocommit: no BEGIN, no COMMIT)
    event.listen(engine, "before_cursor_execute",
                 lambda conn, _cursor, sql, *_: statements.append((sql, getattr(conn.connection.driver_connection, "autocommit", None))))
    assert esc.reconcile(engine, sim_any.clock.now()) == 0
    if sim_any.engine.dialect.name == "postgresql":
        assert len(statements) == 1 and statements[0][1], statements
    assert esc.reconcile(engine, sh(2026, 12, 8, 9)) == 2 * 4  # due: found and settled as before


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


UNITS = ("县住建局", "县应急局", "县教育局", "城关镇", "县市场监管局", "文星街道")


def comparable(engine) -> dict[str, list[tuple]]:
    """Every row of every table (tests/helpers.py dump), a card's outTrackId named by the order it
    first appears in the outbox: its random part is the only thing two runs may differ in."""
    from tests.helpers import dump

    out = dump(engine)
    with Session(engine) as s:
        ids = s.exec(select(Outbox.card_id).where(Outbox.card_id.is_not(None)).order_by(Outbox.id)).all()
    names: dict[str, str] = {}
    for card_id in ids:
        names.setdefault(repr(card_id), repr(f"card-{len(names)}"))
    out["outbox"] = sorted(tuple(names.get(v, v) for v in row) for row in out["outbox"])
    return out


@pytest.mark.parametrize("cards", [False, True], ids=["cards-off", "cards-on"])
def test_the_batch_path_writes_what_the_one_task_path_writes(tmp_path, cards):
    """One seeded stretch of commands and clock jumps, run twice — reconcile in batches, and one
    transaction per task — leaves the same rows, ids included, in every table; with interactive
    cards on, the same cards (folded alike) and the same card updates too."""
    import random
    from datetime import timedelta

    from bot.simulation import Simulation
    from storage.models import NoticeKind
    from tests.helpers import HEAD, START

    rules = Rules(auto_issue=False)
    sims = [Simulation(f"sqlite:///{tmp_path / name}.db", START,
                       settings=Settings(database_url=f"sqlite:///{tmp_path / name}.db", rules=rules,
                                         dingtalk_cards=cards))
            for name in ("batch", "each")]
    each = sims[1].bot.escalation
    each.reconcile = lambda engine, now, **_: each.reconcile_each(engine, now)  # the one-task path only
    rng = random.Random(20261123)
    kinds_seen: Counter = Counter()
    days = 50 if cards else 90  # cards re-render on every change: a shorter stretch still reaches 🔴 and 难以执行
    for day in range(days):
        with Session(sims[0].engine) as s:
            tasks = list(s.exec(select(Task)))
            heads = {u.id: u.head_user_id for u in s.exec(select(Unit))}
            drafts = list(s.exec(select(Notice.code).where(Notice.status == NoticeStatus.DRAFT)))
        said: list[tuple[str, str, str]] = []
        for _ in range(rng.randint(0, 6)):
            unit = rng.choice(UNITS)
            said.append(("u_xianzhang", f"交办 {unit} 第{day}-{len(said)}项工作 {rng.randint(1, 25)}个工作日内",
                         "cid_leaders"))
        for t in rng.sample(tasks, min(len(tasks), rng.randint(0, 8))):
            head = heads[t.lead_unit_id] or HEAD
            act = rng.choice(["签收", "进展", "延期", "办结", "销号", "同意延期", "难以执行"])
            if act == "进展":
                said.append((head, f"进展 {t.code} 已推进 {rng.randint(1, 99)}%", ""))
            elif act == "延期":
                wanted = t.deadline + timedelta(days=rng.randint(1, 20))
                said.append((head, f"延期 {t.code} {wanted.year}年{wanted.month}月{wanted.day}日 人手不足", ""))
            elif act == "办结":
                said.append((head, f"办结 {t.code} 已全部完成", ""))
            elif act == "难以执行":
                said.append((head, f"难以执行 {t.code} 需其他部门先行配合", ""))
            elif act in ("销号", "同意延期"):
                said.append(("u_xianzhang", f"{act} {t.code}", ""))
            else:
                said.append((head, f"签收 {t.code}", ""))
        for code in rng.sample(drafts, min(len(drafts), rng.randint(0, 2))):
            said.append(("u_xianzhang", rng.choice([f"签发 {code}", f"暂缓 {code} 已当面督促"]), ""))
        jump = START + timedelta(days=day, hours=rng.choice([0, 0, 5, 14, 23]))
        late = rng.random() < 0.3  # a late wake-up: several steps due at once for many tasks
        for sim in sims:
            for user, text, group in said:
                sim.say(user, text, group=group)
            if late:
                sim.clock.set(max(jump, sim.clock.now()))
                sim.bot.tick()
                sim.deliver()
            else:
                sim.run_until(jump)
        if day % 25 == 24:  # where they part, if they do
            assert comparable(sims[0].engine) == comparable(sims[1].engine), f"day {day}"
    with Session(sims[0].engine) as s:
        kinds_seen.update(s.exec(select(Notice.kind)))
        shared = s.exec(select(Outbox.card_id).where(Outbox.card_update.is_(False), Outbox.card_id.is_not(None))
                        .group_by(Outbox.card_id).having(func.count() > 1)).all()
        updates = s.exec(select(func.count()).select_from(Outbox).where(Outbox.card_update.is_(True))).one()
    assert comparable(sims[0].engine) == comparable(sims[1].engine)
    # the year exercised what the batch path writes: colours, drafts, signer reminders, 难以执行
    assert {NoticeKind.BLUE, NoticeKind.YELLOW, NoticeKind.RED, NoticeKind.SIGN_REMINDER,
            NoticeKind.HARD_REMINDER}.issubset(kinds_seen), kinds_seen
    assert shared, "no two rows folded into one card"  # placed alike, folding included
    assert (updates > 0) is cards, updates  # cards kept current only when they are shown
    for sim in sims:
        sim.engine.dispose()


@pytest.mark.parametrize("cards", [False, True], ids=["cards-off", "cards-on"])
def test_the_batch_path_writes_the_changes_to_notices_it_read(tmp_path, cards):
    """The batch holds the notices it reads as plain rows and writes what changed in them itself: a
    waiting draft it voids — its task closed without being settled, or its unit gone from the
    roster — is written as the one-task path writes it, audit event included."""
    from datetime import timedelta

    from sqlalchemy import update

    from bot.simulation import Simulation
    from storage.db import transaction
    from tests.helpers import START

    rules = Rules(auto_issue=False)  # yellows wait as drafts for their signer
    sims = [Simulation(f"sqlite:///{tmp_path / name}.db", START,
                       settings=Settings(database_url=f"sqlite:///{tmp_path / name}.db", rules=rules,
                                         dingtalk_cards=cards))
            for name in ("batch", "each")]
    for sim in sims:
        assign_many(sim, 4)
        sim.run_until(START + timedelta(days=20))
        now = sim.clock.now()
        with transaction(sim.engine) as s:
            drafted = sorted(s.exec(select(Notice.task_id).where(Notice.status == NoticeStatus.DRAFT)))
            assert len(drafted) == 4, drafted  # every task's yellow waits for its signer
            closed, gone = drafted[0], drafted[1]
            s.exec(update(Task).where(Task.id == closed).values(status=TaskStatus.CLOSED, next_check_at=now))
            unit = s.exec(select(Task.lead_unit_id).where(Task.id == gone)).one()
            s.exec(update(Unit).where(Unit.id == unit).values(active=False))
            s.exec(update(Task).where(Task.lead_unit_id == unit).values(next_check_at=now))
    assert sims[0].bot.escalation.reconcile(sims[0].engine, now) == 0
    assert sims[1].bot.escalation.reconcile_each(sims[1].engine, now) == 0
    with Session(sims[0].engine) as s:
        void = s.exec(select(Notice.task_id).where(Notice.status == NoticeStatus.VOID)).all()
    assert closed in void and gone in void, void
    assert comparable(sims[0].engine) == comparable(sims[1].engine)
    for sim in sims:
        sim.engine.dispose()
