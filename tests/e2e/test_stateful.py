"""Random lives of tasks — commands, clock jumps and crashes in any order — against the bot on SQLite,
with SPEC §7's guarantees checked after every step.

Each example gets a fresh database and the example roster. Every command is also checked against a
small model of its own: a command that may act changes the task as the rules say, and one that may
not leaves the task row exactly as it was.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from uuid import uuid4

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import Session, select

from bot.simulation import Simulation
from reminders.engine import notice_state, task_state
from storage.models import (
    OPEN_STATUSES,
    AuditEvent,
    ChatGroup,
    ExtensionRequest,
    ExtensionStatus,
    Notice,
    NoticeKind,
    NoticeStatus,
    Outbox,
    OutboxStatus,
    Person,
    Role,
    ScoreEvent,
    Task,
    TaskStatus,
    Unit,
)
from tests.helpers import START

LEADER = "u_xianzhang"  # 县长: assigns, and outranks every approver and signer
UNITS = ("县住建局", "县应急局", "县市场监管局", "县教育局", "城关镇", "文星街道")
POINTS = {NoticeKind.BLUE: -1, NoticeKind.YELLOW: -2, NoticeKind.RED: -5}  # 第九条, written out again here
MAX_TASKS = 5
WAITING = (NoticeStatus.DRAFT, NoticeStatus.HELD)
SIGNER = {NoticeKind.YELLOW: Role.EXECUTIVE_DEPUTY, NoticeKind.RED: Role.COUNTY_HEAD}  # SPEC §3
FINISHED = (TaskStatus.CLOSED, TaskStatus.CANCELLED)


def channel(row: Outbox) -> str:
    """How a row reaches its recipient: a DING is its own channel beside the chat message."""
    return "ding" if row.ding_remind_type else row.target


class BotMachine(RuleBasedStateMachine):
    directory: Path  # where the example databases go; set by the test

    def __init__(self) -> None:
        super().__init__()
        self.path = self.directory / f"{uuid4().hex}.db"
        self.sim = Simulation(f"sqlite:///{self.path}", START)
        self.codes: list[str] = []
        self.titles = itertools.count(1)
        self.down_since_crash = False  # a crash may leave due messages unsent until the next step

    def teardown(self) -> None:
        self.sim.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.sim.clock.now()

    def say(self, user_id: str, text: str) -> None:
        self.sim.say(user_id, text)
        self.down_since_crash = False

    def task(self, code: str) -> Task:
        with Session(self.sim.engine) as s:
            return s.exec(select(Task).where(Task.code == code)).one()

    def pick(self, data: st.DataObject, fits: Callable[[Task], bool], bias: bool = True) -> tuple[Task, bool]:
        """A task and whether the command may act on it. With `bias`, three times in four one that it
        fits (if any), so that deep states are reached; else any task, so refusals are tried too."""
        tasks = [self.task(code) for code in self.codes]
        fitting = [t.code for t in tasks if fits(t)]
        pool = fitting if bias and fitting and data.draw(st.integers(0, 3), label="fitting") else self.codes
        task = self.task(data.draw(st.sampled_from(pool), label="task"))
        return task, fits(task)

    def head(self, task: Task) -> str:
        with Session(self.sim.engine) as s:
            return s.get(Unit, task.lead_unit_id).head_user_id

    def pending_request(self, task: Task) -> ExtensionRequest | None:
        with Session(self.sim.engine) as s:
            return s.exec(select(ExtensionRequest).where(
                ExtensionRequest.task_id == task.id, ExtensionRequest.status == ExtensionStatus.PENDING)).first()

    def signable(self) -> list[Notice]:
        """Every yellow and red, whatever its state: signing an issued or void one must be refused."""
        with Session(self.sim.engine) as s:
            return list(s.exec(select(Notice).where(Notice.kind.in_((NoticeKind.YELLOW, NoticeKind.RED)))))

    def pick_notice(self, data: st.DataObject) -> Notice:
        """A yellow or red: three times in four one that waits for its signature, if any."""
        notices = self.signable()
        waiting = [n for n in notices if n.status in WAITING]
        pool = waiting if waiting and data.draw(st.integers(0, 3), label="waiting") else notices
        return data.draw(st.sampled_from(pool), label="notice")

    def notice(self, code: str) -> Notice:
        with Session(self.sim.engine) as s:
            return s.exec(select(Notice).where(Notice.code == code)).one()

    def expect(self, before: Task, allowed: bool, **changes: object) -> None:
        after = self.task(before.code)
        if not allowed:
            assert after.model_dump() == before.model_dump(), f"a refused command changed {before.code}"
            return
        for name, value in changes.items():
            assert getattr(after, name) == value, (before.code, name, getattr(after, name), value)

    # -- the commands ------------------------------------------------------------------------------
    @precondition(lambda self: len(self.codes) < MAX_TASKS)
    @rule(unit=st.sampled_from(UNITS), workdays=st.integers(1, 20))
    def assign(self, unit: str, workdays: int) -> None:
        reply = self.sim.say(LEADER, f"交办 {unit} 第{next(self.titles)}项督办工作 {workdays}个工作日内",
                             group="cid_leaders")[0]
        self.down_since_crash = False
        assert reply.title.startswith("已交办"), reply.text
        task = self.task(reply.title.split()[-1])
        assert task.deadline.date() == self.sim.bot.calendar.add_workdays(self.now.date(), workdays)
        assert task.status is TaskStatus.ASSIGNED
        self.codes.append(task.code)

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> None:
        task, allowed = self.pick(data, lambda t: t.status in OPEN_STATUSES and t.acknowledged_at is None)
        self.say(self.head(task), f"签收 {task.code}")
        self.expect(task, allowed, status=TaskStatus.IN_PROGRESS, acknowledged_at=self.now)

    @precondition(lambda self: self.codes)
    @rule(data=st.data(), percent=st.integers(0, 100))
    def report_progress(self, data: st.DataObject, percent: int) -> None:
        task, allowed = self.pick(data, lambda t: t.status in OPEN_STATUSES)
        self.say(self.head(task), f"进展 {task.code} 已推进一部分 {percent}%")
        status = TaskStatus.IN_PROGRESS if task.status is TaskStatus.ASSIGNED else task.status
        self.expect(task, allowed, last_progress_at=self.now, progress_percent=percent, status=status)

    @precondition(lambda self: self.codes)
    @rule(data=st.data(), days=st.integers(1, 30))
    def request_extension(self, data: st.DataObject, days: int) -> None:
        task, allowed = self.pick(data, lambda t: t.status in OPEN_STATUSES and self.now < t.deadline
                                  and self.pending_request(t) is None)
        wanted = task.deadline.date() + timedelta(days=days)
        self.say(self.head(task), f"延期 {task.code} {wanted.year}年{wanted.month}月{wanted.day}日 人手不足")
        self.expect(task, allowed)
        if allowed:  # a day off moves the new deadline on to the next working day
            request = self.pending_request(task)
            assert request is not None and request.new_deadline.date() >= wanted, request

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def approve_extension(self, data: st.DataObject) -> None:
        def fits(t: Task) -> bool:
            request = self.pending_request(t)
            return t.status in OPEN_STATUSES and request is not None and request.new_deadline > self.now

        task, allowed = self.pick(data, fits)
        request = self.pending_request(task)
        self.say(LEADER, f"同意延期 {task.code}")
        if not allowed:
            self.expect(task, allowed)
            return
        status = TaskStatus.IN_PROGRESS if task.status is TaskStatus.REPORTED_DONE else task.status
        self.expect(task, allowed, deadline=request.new_deadline, cycle=task.cycle + 1, cycle_started_at=self.now,
                    status=status)
        assert self.pending_request(task) is None

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def reject_extension(self, data: st.DataObject) -> None:
        task, allowed = self.pick(data, lambda t: t.status in OPEN_STATUSES and self.pending_request(t) is not None)
        request = self.pending_request(task)
        self.say(LEADER, f"驳回延期 {task.code} 请按期办结")
        self.expect(task, False)  # a rejection leaves the task as it was, deadline and all
        if allowed:
            with Session(self.sim.engine) as s:
                assert s.get(ExtensionRequest, request.id).status is ExtensionStatus.REJECTED

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def report_done(self, data: st.DataObject) -> None:
        task, allowed = self.pick(data, lambda t: t.status in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS))
        self.say(self.head(task), f"办结 {task.code} 已全部完成")
        self.expect(task, allowed, status=TaskStatus.REPORTED_DONE, reported_done_at=self.now)

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        task, allowed = self.pick(data, lambda t: t.status is TaskStatus.REPORTED_DONE)
        self.say(LEADER, f"销号 {task.code}")
        self.expect(task, allowed, status=TaskStatus.CLOSED, closed_at=self.now)

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def send_back(self, data: st.DataObject) -> None:
        task, allowed = self.pick(data, lambda t: t.status is TaskStatus.REPORTED_DONE)
        self.say(LEADER, f"退回 {task.code} 缺少佐证材料")
        self.expect(task, allowed, status=TaskStatus.IN_PROGRESS, reported_done_at=None)

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        # no bias: most tasks are open anyway, and cancelling them all would leave nothing to escalate
        task, allowed = self.pick(data, lambda t: t.status in OPEN_STATUSES, bias=False)
        self.say(LEADER, f"撤销 {task.code} 已并入其他工作")
        self.expect(task, allowed, status=TaskStatus.CANCELLED, closed_at=self.now)

    @precondition(lambda self: self.signable())
    @rule(data=st.data())
    def sign(self, data: st.DataObject) -> None:
        notice = self.pick_notice(data)
        self.say(LEADER, f"签发 {notice.code}")
        after = self.notice(notice.code)
        if notice.status in WAITING:
            assert (after.status, after.issued_at, after.signed_by) == (NoticeStatus.ISSUED, self.now, LEADER)
        else:
            assert after.model_dump() == notice.model_dump()

    @precondition(lambda self: self.signable())
    @rule(data=st.data())
    def hold(self, data: st.DataObject) -> None:
        notice = self.pick_notice(data)
        self.say(LEADER, f"暂缓 {notice.code} 已当面督促")
        after = self.notice(notice.code)
        assert after.status is (NoticeStatus.HELD if notice.status in WAITING else notice.status)

    # -- time and failure --------------------------------------------------------------------------
    @rule(hours=st.integers(1, 24))
    def advance_hours(self, hours: int) -> None:
        self.sim.run_until(self.now + timedelta(hours=hours))
        self.down_since_crash = False

    @rule(days=st.integers(1, 20), hours=st.integers(0, 23))
    def advance_days(self, days: int, hours: int) -> None:
        self.sim.run_until(self.now + timedelta(days=days, hours=hours))
        self.down_since_crash = False

    @rule(reconcile_first=st.booleans())
    def crash(self, reconcile_first: bool) -> None:
        """The process dies — after a reconcile committed but before its messages went out, if so
        drawn — and starts again on the same database with nothing kept in memory."""
        if reconcile_first:
            self.sim.bot.tick()
        self.sim.restart()
        self.down_since_crash = True

    # -- the guarantees ----------------------------------------------------------------------------
    def expected_messages(self, tasks: list[Task], notices: list[Notice]) -> dict[tuple[str, str, str], datetime]:
        """SPEC §3 over the final state, not through reminders/notices.py: (notice code, "user" or
        "group", recipient) → when it is to go out. A yellow or red is first a draft to its signer;
        once issued, every notice goes to the unit head, a yellow also to the task's group, a red to
        that group and the leaders' group; a sign reminder goes to the draft's signer."""
        with Session(self.sim.engine) as s:
            holder = {role: s.exec(select(Person.user_id).where(Person.role == role)).one()
                      for role in SIGNER.values()}
            head = {u.id: u.head_user_id for u in s.exec(select(Unit))}
            groups = {g.key: g.conversation_id for g in s.exec(select(ChatGroup))}
        policy, auto_issue = self.sim.bot.escalation.policy, self.sim.bot.settings.rules.auto_issue
        task_of = {t.id: t for t in tasks}
        by_id = {n.id: n for n in notices}
        expected: dict[tuple[str, str, str], datetime] = {}
        for n in notices:
            task = task_of[n.task_id]
            if n.kind in SIGNER and not auto_issue:
                expected[(n.code, "user", holder[SIGNER[n.kind]])] = policy.send_time(n.created_at)
            if n.status is not NoticeStatus.ISSUED:
                continue
            at = policy.send_time(n.issued_at)
            if n.kind is NoticeKind.SIGN_REMINDER:
                expected[(n.code, "user", holder[SIGNER[by_id[n.ref_notice_id].kind]])] = at
                continue
            expected[(n.code, "user", head[task.lead_unit_id])] = at
            task_group = task.conversation_id or groups["all_units"]
            if n.kind is NoticeKind.YELLOW:
                expected[(n.code, "group", task_group)] = at
            if n.kind is NoticeKind.RED:
                expected[(n.code, "group", task_group)] = expected[(n.code, "group", groups["leaders"])] = at
            rules = self.sim.bot.settings.rules  # issue 13: a DING to the head, red by default
            if {NoticeKind.RED: rules.ding_red, NoticeKind.YELLOW: rules.ding_yellow}.get(n.kind):
                expected[(n.code, "ding", head[task.lead_unit_id])] = at
        return expected

    @invariant()
    def guarantees_hold(self) -> None:
        now = self.now
        with Session(self.sim.engine) as s:
            tasks = list(s.exec(select(Task)))
            notices = list(s.exec(select(Notice)))
            outbox = list(s.exec(select(Outbox)))
            scores = list(s.exec(select(ScoreEvent)))
            issues = Counter(e.detail["notice"] for e in s.exec(
                select(AuditEvent).where(AuditEvent.action == "notice_issued")))
        by_task: dict[int, list[Notice]] = defaultdict(list)
        for n in notices:
            by_task[n.task_id].append(n)
        policy = self.sim.bot.escalation.policy
        for task in tasks:
            mine = by_task[task.id]
            if task.status in FINISHED:
                # nothing new after closing: only what was already in the outbox may still go out
                assert task.next_check_at is None
                assert all(n.created_at <= task.closed_at for n in mine), task.code
                assert all(n.issued_at is None or n.issued_at <= task.closed_at for n in mine), task.code
                assert not [n.code for n in mine if n.status in WAITING], "a draft outlived its task"
                assert all(o.created_at <= task.closed_at for o in outbox if o.task_id == task.id), task.code
                continue
            # none missing: whatever the rules make due by now exists, and the next look is planned
            plan = policy.evaluate(task_state(task), [notice_state(n) for n in mine], now)
            assert plan.due == () and plan.void == (), (task.code, plan)
            assert task.next_check_at == plan.next_check_at, (task.code, task.next_check_at, plan.next_check_at)

        unit_of = {t.id: t.lead_unit_id for t in tasks}
        expected: dict[int, int] = defaultdict(int)
        for n in notices:
            if n.status is NoticeStatus.ISSUED and n.kind in POINTS:
                expected[unit_of[n.task_id]] += POINTS[n.kind]
        actual: dict[int, int] = defaultdict(int)
        for e in scores:
            actual[e.unit_id] += e.points
        assert actual == expected

        rows = Counter((o.notice_id, channel(o), o.recipient) for o in outbox if o.notice_id is not None)
        assert all(c == 1 for c in rows.values()), [k for k, c in rows.items() if c > 1]

        # every notice has its messages, to whom SPEC §3 says, and nothing else carries a notice
        expected = self.expected_messages(tasks, notices)
        code = {n.id: n.code for n in notices}
        queued = {(code[o.notice_id], channel(o), o.recipient) for o in outbox if o.notice_id is not None}
        assert queued == set(expected), (set(expected) - queued, queued - set(expected))
        row_of = {o.id: o for o in outbox}
        delivered = {(code[row.notice_id], channel(row), recipient) for _, m in self.sim.transport.sent
                     for row in map(row_of.__getitem__, m.outbox_ids) if row.notice_id is not None
                     for recipient in m.recipients if recipient == row.recipient}
        assert delivered <= set(expected)
        if not self.down_since_crash:
            assert delivered == {k for k, at in expected.items() if at <= now}, "a notice that fell due never went out"
        assert issues == Counter(n.code for n in notices if n.status is NoticeStatus.ISSUED)
        handed_over = Counter(i for _, m in self.sim.transport.sent for i in m.outbox_ids)
        assert all(c == 1 for c in handed_over.values()), "an outbox row went out twice"
        if not self.down_since_crash:  # what fell due has gone out (after a crash: at the next step)
            late = [o.id for o in outbox if o.status is not OutboxStatus.SENT and o.deliver_after <= now]
            assert not late, late


def test_random_lives_keep_the_guarantees(tmp_path: Path) -> None:
    machine = type("Machine", (BotMachine,), {"directory": tmp_path})
    # sized for 2 cores: 15–20 s usually, under a minute for an unlucky draw of long-lived drafts
    # (each waiting draft earns a sign reminder every working day, and every step re-checks them all)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=30, stateful_step_count=50, deadline=None))
