"""How long `reconcile(now)` takes on 100,000 open tasks: with nothing due, and with 1,000 due at once.

    python bench/reconcile.py [--tasks 100000 [1000000 …]] [--due 1000] [--rounds 3] [--sqlite-only] [--no-cards]

With several --tasks sizes each is filled and timed in turn, and the slope (seconds per 100,000
more open tasks) is printed: the times should grow with what is due, not with how much is open.

Runs on SQLite (a file in a fresh temporary directory) and, if reachable, on PostgreSQL
($DUBAN_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test: a database of its own is
created there and dropped afterwards). Prints one table; a benchmark, not a pass/fail test.

The tasks are what the policy would leave behind: acknowledged, deadlines spread over the next six
weeks, and `next_check_at` the policy's own answer (the 临期提醒, 09:00 the working day before D).
"Due" means 1,000 of them reach their deadline at the same moment: each gets its 蓝色督办单, score
event, outbox rows and audit event, exactly as in production (reconcile's batches). Each round
takes fresh tasks; min/median/max over the rounds are printed, and the last line reads
`reconcile_due_1000_seconds sqlite=<median> postgresql=<median> …`.

Interactive cards are on, as the bot runs by default (Settings.dingtalk_cards): every task was shown
to its unit head as a card when it was assigned (one sent outbox row each), so each blue notice also
re-renders that card and queues its update. `--no-cards` measures the plain-message bot.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.app import Bot
from bot.clock import FakeClock
from bot.settings import Settings
from bot.simulation import ROSTER
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from reminders.policy import Policy, TaskState
from reminders.rules import Rules
from storage.db import create_schema, make_engine
from storage.models import Notice, NoticeKind, NoticeStatus, Outbox, OutboxStatus, Task, TaskStatus, Unit
from storage.tz import shanghai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, load, machine_line, postgres, spread, table  # noqa: E402

NOW = shanghai(2026, 11, 23, 10, 0)  # a Monday morning
CHUNK = 5_000  # rows per INSERT batch


def fill(engine: Engine, tasks: int, now: datetime, rng: random.Random, cards: bool = False) -> None:
    """The example roster and `tasks` open tasks, bulk-inserted (no handler runs: that is not timed);
    with `cards`, each task's card as its assignment left it: shown to its unit head, sent."""
    create_schema(engine)
    settings = Settings()
    calendar = WorkCalendar()
    Bot(engine, settings, FakeClock(now), calendar).load_roster(ROSTER)
    with Session(engine) as s:
        units = list(s.exec(select(Unit.id)))
    policy = Policy(calendar, settings.rules)
    # Acknowledged and with no notices yet, a task's next look depends on its deadline alone (the
    # 临期提醒 at 09:00 the working day before): one policy answer per deadline serves every task.
    deadlines, next_check = {}, {}
    for workdays in range(2, 31):
        deadline = datetime.combine(calendar.add_workdays(now.date(), workdays), settings.rules.due_time,
                                    tzinfo=now.tzinfo)
        plan = policy.evaluate(TaskState(status=TaskStatus.IN_PROGRESS, assigned_at=now, deadline=deadline,
                                         cycle=0, cycle_started_at=now, acknowledged=True), [], now)
        assert not plan.due, plan  # the timed "nothing due" run must find nothing
        deadlines[workdays], next_check[workdays] = deadline, plan.next_check_at
    rows = []
    for i in range(tasks):
        assigned = now - timedelta(minutes=rng.randrange(14 * 24 * 60))
        workdays = rng.randint(2, 30)
        rows.append({
            "code": f"DB-2026-{i + 1:06d}", "title": f"第{i + 1}项重点工作", "lead_unit_id": rng.choice(units),
            "co_unit_ids": [], "category": "其他", "urgent": False, "assigner_id": "u_xianzhang",
            "conversation_id": "cid_leaders", "assigned_at": assigned, "original_deadline": deadlines[workdays],
            "deadline": deadlines[workdays], "deadline_is_estimate": False, "cycle": 0, "cycle_started_at": assigned,
            "status": TaskStatus.IN_PROGRESS, "acknowledged_at": assigned + timedelta(hours=1),
            "next_check_at": next_check[workdays],
        })
    with engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(Task.__table__.insert(), rows[start:start + CHUNK])
    if cards:
        with Session(engine) as s:
            heads = {unit: head for unit, head in s.exec(select(Unit.id, Unit.head_user_id))}
            shown = [{"target": "user", "recipient": heads[unit] or "u_xianzhang", "at_user_ids": [],
                      "title": f"交办 {code}", "text": f"### 交办通知 {code}", "deliver_after": at, "created_at": at,
                      "status": OutboxStatus.SENT, "attempts": 1, "sent_at": at, "last_error": "", "plain": False,
                      "task_id": task_id,
                      "actions": [["汇报进展", f"进展 {code} "], ["办结", f"办结 {code} "]],
                      "card_key": f"t.{task_id}", "card_id": f"duban.t.{task_id}.{task_id:012x}", "card_update": False}
                     for task_id, code, unit, at in s.exec(select(Task.id, Task.code, Task.lead_unit_id,
                                                                  Task.assigned_at))]
        with engine.begin() as conn:
            for start in range(0, len(shown), CHUNK):
                conn.execute(Outbox.__table__.insert(), shown[start:start + CHUNK])


def make_due(engine: Engine, count: int, now: datetime, rng: random.Random, taken: set[int]) -> None:
    """`count` tasks not used before reach their deadline now (their 临期提醒 already went out)."""
    with Session(engine) as s:
        ids = [i for i in s.exec(select(Task.id)) if i not in taken]
    chosen = rng.sample(ids, count)
    taken.update(chosen)
    deadline = now - timedelta(minutes=30)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id.in_(chosen)).values(deadline=deadline, next_check_at=deadline))
        conn.execute(Notice.__table__.insert(), [{
            "code": f"T{task_id}-C1", "task_id": task_id, "kind": NoticeKind.COURTESY, "seq": 1, "cycle": 0,
            "status": NoticeStatus.ISSUED, "due_at": deadline - timedelta(days=1), "hold_reason": "",
            "created_at": deadline - timedelta(days=1), "issued_at": deadline - timedelta(days=1),
            "deadline_at_issue": deadline,
        } for task_id in chosen])


def timed(func: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def bench(backend: str, engine: Engine, tasks: int, due: int, rounds: int, cards: bool) -> dict[str, list[float]]:
    rng = random.Random(42)
    start = time.perf_counter()
    fill(engine, tasks, NOW, rng, cards=cards)
    print(f"[{backend}] {tasks:,} tasks inserted{' with their cards' if cards else ''} in "
          f"{time.perf_counter() - start:.1f} s (load {load()})", flush=True)
    escalation = Escalation(WorkCalendar(), Rules(), cards=cards)
    escalation.reconcile(engine, NOW)  # warm: compiled statements, templates
    idle, busy, taken = [], [], set()
    for _ in range(rounds):
        runs = [timed(lambda: escalation.reconcile(engine, NOW)) for _ in range(5)]
        assert all(created == 0 for _, created in runs)
        idle.append(statistics.median(t for t, _ in runs))
        make_due(engine, due, NOW, rng, taken)
        busy.append(timed(lambda: escalation.reconcile(engine, NOW)))
        assert busy[-1][1] == due, busy[-1]  # one blue each
    return {"idle": idle, "busy": [t for t, _ in busy]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[100_000])
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="due rounds (each with fresh tasks)")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--no-cards", dest="cards", action="store_false", help="plain messages, no interactive cards")
    args = parser.parse_args()
    print(f"interactive cards: {'on (the default)' if args.cards else 'off'}")
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    for tasks in args.tasks:
        with tempfile.TemporaryDirectory(prefix="duban-bench-") as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
            results["sqlite", tasks] = bench("sqlite", engine, tasks, args.due, args.rounds, args.cards)
            engine.dispose()
        if args.sqlite_only:
            continue
        with postgres() as url:
            if url:
                engine = make_engine(url)
                results["postgresql", tasks] = bench("postgresql", engine, tasks, args.due, args.rounds, args.cards)
                engine.dispose()
    rows = []
    for (backend, tasks), r in results.items():
        rows.append((backend, f"{tasks:,}", "nothing due", *(f"{v * 1000:.2f} ms" for v in spread(r["idle"]))))
        rows.append((backend, f"{tasks:,}", f"{args.due:,} due", *(f"{v:.3f} s" for v in spread(r["busy"]))))
    print()
    print(table(("backend", "open tasks", "case", "min", "median", "max"), rows))
    backends = sorted({b for b, _ in results}, key=["sqlite", "postgresql"].index)
    print(f"load average at the end: {load()}")
    for backend in backends:  # the targets: nothing due < 1 ms at 100,000 (< 2 ms at 1,000,000); 1,000 due < 0.5 s
        for tasks in args.tasks:
            if (backend, tasks) in results:
                idle, busy = (statistics.median(results[backend, tasks][c]) for c in ("idle", "busy"))
                idle_limit = 0.001 if tasks <= 100_000 else 0.002
                print(f"target {backend} {tasks:,}: nothing due {idle * 1000:.2f} ms (< {idle_limit * 1000:.0f} ms: "
                      f"{'met' if idle < idle_limit else 'NOT met'}), {args.due:,} due {busy:.3f} s (< 0.5 s: "
                      f"{'met' if busy < 0.5 else 'NOT met'})")
    if len(args.tasks) > 1:
        low, high = min(args.tasks), max(args.tasks)
        slopes = {}
        for backend in backends:
            for case, unit in (("idle", 1000), ("busy", 1)):
                a, b = (statistics.median(results[backend, n][case]) for n in (low, high))
                slope = (b - a) * unit / ((high - low) / 100_000)
                slopes[f"{backend}_{'nothing_due_ms' if case == 'idle' else f'due_{args.due}_s'}"] = f"{slope:+.4f}"
                print(f"slope {backend} {case}: {slope:+.4f} {'ms' if unit == 1000 else 's'} per 100,000 more open tasks")
        print(machine_line(f"reconcile_slope_per_100000_tasks tasks={low}..{high}", **slopes))
    for tasks in args.tasks:
        print(machine_line(f"reconcile_nothing_due_ms tasks={tasks}", **{
            b: f"{statistics.median(results[b, tasks]['idle']) * 1000:.3f}" for b in backends if (b, tasks) in results}))
    for tasks in args.tasks:
        for b in backends:
            if (b, tasks) in results:
                print(f"# {b} {tasks:,}: due {fmt(results[b, tasks]['busy'])}")
        print(machine_line(f"reconcile_due_{args.due}_seconds tasks={tasks}", **{
            b: f"{statistics.median(results[b, tasks]['busy']):.3f}" for b in backends if (b, tasks) in results}))


if __name__ == "__main__":
    main()
