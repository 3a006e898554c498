"""What creating, issuing and voiding a notice does to the database: the notice row, its score
(第九条), its messages in the outbox, its audit event. Used by the engine and by 签发 / 暂缓.

The decisions and the messages are written once; where the rows go is a `Rows`: the ORM session
one row at a time (commands, `settle`), or `BatchRows`, which the engine's reconcile uses to settle
hundreds of tasks in one transaction — notices inserted at once through Core (so the unique
(task, kind, seq) check fires where it did), scores, audit events and outbox rows bulk-inserted at
the end. Both run the same functions below, so they write the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, text, update
from sqlmodel import Session, func, select

from message_templates.render import render
from message_templates.reply import Action, Reply
from reminders.ledger import notice_reads
from reminders.policy import Due, Policy
from reminders.rules import Rules
from storage import audit, cards, queries
from storage.models import (
    COLOURS,
    OPEN_STATUSES,
    AuditEvent,
    HardReport,
    Notice,
    NoticeKind,
    NoticeStatus,
    Outbox,
    OutboxStatus,
    Person,
    Role,
    ScoreEvent,
    Task,
    Unit,
)
from storage.outbox import enqueue, outbox_values
from storage.tz import SHANGHAI

LETTER = {
    NoticeKind.ACK_REMINDER: "A", NoticeKind.COURTESY: "C", NoticeKind.REPORT_REMINDER: "P",
    NoticeKind.BLUE: "B", NoticeKind.YELLOW: "Y", NoticeKind.RED: "R", NoticeKind.SIGN_REMINDER: "S",
    NoticeKind.DEPLOY_REMINDER: "D", NoticeKind.MONTH_REMINDER: "M", NoticeKind.HARD_REMINDER: "H",
}
SIGNER_ROLE = {NoticeKind.YELLOW: Role.EXECUTIVE_DEPUTY, NoticeKind.RED: Role.COUNTY_HEAD}


class Rows:
    """The notice functions' reads and writes, one row at a time through the ORM session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def unit(self, unit_id: int) -> Unit:
        return queries.unit(self.session, unit_id)

    def person(self, user_id: str) -> Person | None:
        return queries.person(self.session, user_id)

    def member(self, user_id: str) -> Person | None:
        return queries.member(self.session, user_id)

    def first_with_role(self, role: Role) -> Person | None:
        return queries.first_with_role(self.session, role)

    def people_with_role(self, role: Role) -> list[Person]:
        return queries.people_with_role(self.session, role)

    def notice(self, notice_id: int) -> Notice | None:
        return self.session.get(Notice, notice_id)

    def new_notice(self, **values: Any) -> Notice:
        return Notice(**values)

    def insert_notice(self, notice: Notice) -> None:
        self.session.add(notice)
        self.session.flush()  # the unique (task, kind, seq) check happens here, before anything else is written

    def changed(self, notice: Notice) -> None:
        self.session.add(notice)

    def task_changed(self, task: Task) -> None:
        self.session.add(task)

    def score(self, values: dict[str, Any]) -> None:
        self.session.add(ScoreEvent(**values))

    def audit(self, **values: Any) -> None:
        audit.record(self.session, **values)

    def outbox(self, reply: Reply, **values: Any) -> None:
        enqueue(self.session, reply, **values)

    def unsent(self, user_id: str | None, card_key: str) -> bool:
        """A card for `card_key` still waits to go out to this person (not an update of one)."""
        return self.session.exec(select(Outbox.id).where(
            Outbox.target == "user", Outbox.recipient == user_id, Outbox.card_key == card_key,
            Outbox.card_update.is_(False), Outbox.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING))
        )).first() is not None

    def flush(self) -> None:
        self.session.flush()


class BatchRows(Rows):
    """The same reads and writes for many tasks in one transaction, each table written by one
    bulk statement in `flush`. The batch's tasks and notices are plain rows (PlainTask, PlainNotice:
    loading and tracking thousands of ORM objects cost more than settling them); what changed in
    them is found at `flush` against their columns as read, and written then. A new notice gets a
    stand-in id (negative) until then, which the rows that refer to it (score, outbox, a sign
    reminder's draft) carry and `flush` replaces."""

    def __init__(self, session: Session, tasks: Sequence[PlainTask] = (), notices: Sequence[PlainNotice] = ()) -> None:
        super().__init__(session)
        self.conn = session.connection()
        task_ids = [t.id for t in tasks]
        self._tasks = [(task, task.values()) for task in tasks]  # with their columns as read
        # every notice of the batch's tasks by id (new ones by their stand-in id too), and the columns
        # of those written as the database holds them, to spot later changes
        self._known: dict[int, PlainNotice] = {n.id: n for n in notices}
        self._written: dict[int, dict[str, Any]] = {n.id: n.values() for n in notices}
        self._changed: dict[int, PlainNotice] = {}  # written notices changed since, by id
        self._stand_ins = 0
        # the cards already waiting for the batch's tasks, read once: `outbox` then asks nothing per row
        self._fetched = set(task_ids)
        self._roles: dict[tuple[str, Role], Any] = {}
        # the roster, read once (and held: the session's identity map holds objects weakly)
        self._units: dict[int, Unit] = {u.id: u for u in session.exec(select(Unit))}
        self._people: dict[str, Person | None] = {p.user_id: p for p in session.exec(select(Person))}
        self._pending: list[PlainNotice] = []  # new notices not yet written, in creation order
        self._scores: list[dict[str, Any]] = []
        self._audits: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self._placed: dict[tuple, str] = cards.waiting_cards(session, task_ids) if task_ids else {}
        self._waiting: set[tuple[str, str]] = set()  # (recipient, card_key) of its new cards in one-to-one chats

    def unit(self, unit_id: int) -> Unit:
        if unit_id not in self._units:
            self._units[unit_id] = super().unit(unit_id)
        return self._units[unit_id]

    def person(self, user_id: str) -> Person | None:
        if user_id not in self._people:
            self._people[user_id] = super().person(user_id)
        return self._people[user_id]

    def member(self, user_id: str) -> Person | None:
        found = self.person(user_id)
        return found if found is not None and found.active else None

    def first_with_role(self, role: Role) -> Person | None:
        key = ("first", role)
        if key not in self._roles:
            self._roles[key] = super().first_with_role(role)
        return self._roles[key]

    def people_with_role(self, role: Role) -> list[Person]:
        key = ("all", role)
        if key not in self._roles:
            self._roles[key] = super().people_with_role(role)
        return self._roles[key]

    def notice(self, notice_id: int) -> Notice | None:
        return self._known.get(notice_id) or super().notice(notice_id)  # type: ignore[return-value]

    def new_notice(self, **values: Any) -> Notice:
        return PlainNotice(**values)  # type: ignore[return-value]  # a Notice's columns, read the same way

    def insert_notice(self, notice: Notice) -> None:
        self._stand_ins += 1
        notice.id = -self._stand_ins
        self._known[notice.id] = notice  # type: ignore[assignment]
        self._pending.append(notice)  # type: ignore[arg-type]

    def changed(self, notice: Notice) -> None:
        if isinstance(notice, Notice):  # one outside the batch's tasks, read through the session
            self.session.add(notice)
        elif notice.id > 0:  # not a stand-in: `flush` writes a new notice with what it holds then
            self._changed[notice.id] = notice  # type: ignore[assignment]

    def task_changed(self, task: Task) -> None:
        pass  # `flush` compares every task of the batch with its columns as read

    def score(self, values: dict[str, Any]) -> None:
        self._scores.append(values)

    def audit(self, **values: Any) -> None:
        self._audits.append(audit.values(**values))

    def outbox(self, reply: Reply, **values: Any) -> None:
        # no autoflush: a card lookup (for a task outside the batch's) reads outbox rows, and the batch
        # holds none in the session (its rows go in at `flush`): flushing first would only cost a round trip
        with self.session.no_autoflush:
            row = outbox_values(self.session, reply, placed=self._placed,
                                fetched=values.get("task_id") in self._fetched, **values)
        if row["card_key"] and row["target"] == "user":
            self._waiting.add((row["recipient"], row["card_key"]))
        self._outbox.append(row)

    def unsent(self, user_id: str | None, card_key: str) -> bool:
        return (user_id, card_key) in self._waiting or super().unsent(user_id, card_key)

    def flush(self) -> None:
        """Write everything held, in creation order (so ids come out as one row at a time would give
        them); a duplicate notice fails here and the caller's transaction rolls back whole."""
        self.session.flush()
        self._update(Task.__table__, self._tasks)
        self._update(Notice.__table__, [(n, self._written[i]) for i, n in self._changed.items()])
        self._changed.clear()
        if self._pending:
            # ids reserved first, so the notices go in as one executemany (a pipeline on PostgreSQL)
            # rather than one INSERT … RETURNING whose thousands of parameters psycopg parses in Python
            real = dict(zip((n.id for n in self._pending), _reserve_notice_ids(self.conn, len(self._pending)),
                            strict=True))
            for notice in self._pending:
                notice.id = real[notice.id]
                notice.ref_notice_id = real.get(notice.ref_notice_id, notice.ref_notice_id)
                self._known[notice.id] = notice
                self._written[notice.id] = notice.values()
            self.conn.execute(Notice.__table__.insert(), [{"id": n.id, **self._written[n.id]} for n in self._pending])
            self._pending.clear()
            for rows in (self._scores, self._audits, self._outbox):
                for row in rows:
                    if (row.get("notice_id") or 0) < 0:
                        row["notice_id"] = real[row["notice_id"]]
        for model, rows in ((ScoreEvent, self._scores), (AuditEvent, self._audits), (Outbox, self._outbox)):
            if rows:
                self.conn.execute(model.__table__.insert(), rows)
            rows.clear()

    def _update(self, table: Table, rows: Sequence[tuple[PlainRow, dict[str, Any]]]) -> None:
        """Write the columns of `rows` that differ from what was read (`read`, brought up to date):
        one executemany per set of changed columns."""
        changes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row, read in rows:
            diff = {k: v for k, v in row.values().items() if v != read[k]}
            if diff:
                read.update(diff)
                changes.setdefault(tuple(sorted(diff)), []).append({"row_id": row.id, **diff})
        for params in changes.values():  # SET the columns the parameters name
            self.conn.execute(update(table).where(table.c.id == bindparam("row_id")), params)


def _reserve_notice_ids(conn: Connection, count: int) -> list[int]:
    """`count` new notice ids, ascending: those `count` inserts one at a time would be given. On
    PostgreSQL drawn from the id sequence; on SQLite the next after the largest (a rowid table
    without AUTOINCREMENT numbers new rows so), which stays so until commit: every transaction
    holds SQLite's write lock from its start (storage/db.py, BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        return sorted(conn.execute(_NEXT_NOTICE_IDS, {"count": count}).scalars())
    start = conn.execute(_LAST_NOTICE_ID).scalar_one() + 1
    return list(range(start, start + count))


_NEXT_NOTICE_IDS = text("SELECT nextval(pg_get_serial_sequence('notice', 'id')) FROM generate_series(1, :count)")
_LAST_NOTICE_ID = select(func.coalesce(func.max(Notice.id), 0))


class PlainRow:
    """A row's columns as plain attributes, without the ORM's per-attribute bookkeeping (loading or
    constructing an ORM object costs about a tenth of a millisecond): read the same way."""

    __slots__: tuple[str, ...] = ()
    COLUMNS: tuple[str, ...] = ()
    DEFAULTS: dict[str, Any] = {}

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values[name] if name in values else self.DEFAULTS[name])

    def values(self) -> dict[str, Any]:
        """Its columns but the id, as an INSERT or a comparison takes them."""
        return {name: getattr(self, name) for name in self.COLUMNS}


class PlainNotice(PlainRow):
    __slots__ = tuple(c.name for c in Notice.__table__.columns)
    COLUMNS = tuple(name for name in __slots__ if name != "id")
    DEFAULTS = {"id": None, "ref_notice_id": None, "issued_at": None, "signer_id": None, "signed_by": None,
                "hold_reason": ""}


class PlainTask(PlainRow):
    __slots__ = tuple(c.name for c in Task.__table__.columns)
    COLUMNS = tuple(name for name in __slots__ if name != "id")


def as_rows(where: Session | Rows) -> Rows:
    return where if isinstance(where, Rows) else Rows(where)



def score_for(kind: NoticeKind, rules: Rules) -> int:
    return {NoticeKind.BLUE: rules.score_blue, NoticeKind.YELLOW: rules.score_yellow,
            NoticeKind.RED: rules.score_red}.get(kind, 0)


def create(session: Session | Rows, task: Task, due: Due, now: datetime, policy: Policy) -> Notice:
    rows = as_rows(session)
    # the signer is whoever holds the role now; a roster change later moves the draft (move_drafts)
    signer = rows.first_with_role(SIGNER_ROLE[due.kind]) if due.draft else None
    notice = rows.new_notice(
        code=f"{task.code}-{LETTER[due.kind]}{due.seq}",
        task_id=task.id,
        kind=due.kind,
        seq=due.seq,
        cycle=due.cycle,
        ref_notice_id=due.ref_notice_id,
        status=NoticeStatus.DRAFT if due.draft else NoticeStatus.ISSUED,
        due_at=due.due_at,
        created_at=now,
        issued_at=None if due.draft else now,  # as `issue` sets it: the row is written once
        signer_id=signer.user_id if signer else None,
        deadline_at_issue=task.deadline,
    )
    rows.insert_notice(notice)  # a duplicate (task, kind, seq) fails here, before anything else is written
    if due.draft:
        _send_draft(rows, task, notice, now, policy)
        rows.audit(at=now, actor=audit.SYSTEM, action="notice_drafted", task_id=task.id,
                   notice=notice.code, kind=notice.kind, signer=notice.signer_id)
    else:
        issue(rows, task, notice, now, policy, signed_by=None)
    return notice


def issue(session: Session | Rows, task: Task, notice: Notice, now: datetime, policy: Policy,
          signed_by: str | None) -> None:
    rows = as_rows(session)
    notice.status, notice.issued_at, notice.signed_by = NoticeStatus.ISSUED, now, signed_by
    notice.deadline_at_issue = task.deadline
    rows.changed(notice)
    unit = rows.unit(task.lead_unit_id)
    points = score_for(notice.kind, policy.rules)
    if notice.kind in COLOURS:
        rows.score({"unit_id": unit.id, "task_id": task.id, "notice_id": notice.id, "year": now.year,
                    "points": points, "at": now})
    rows.audit(at=now, actor=signed_by or audit.SYSTEM, action="notice_issued", task_id=task.id,
               notice=notice.code, kind=notice.kind, points=points)
    _deliver(rows, task, notice, unit, now, policy)


def void(session: Session | Rows, task: Task, notice: Notice, now: datetime) -> None:
    rows = as_rows(session)
    notice.status = NoticeStatus.VOID
    rows.changed(notice)
    rows.audit(at=now, actor=audit.SYSTEM, action="notice_void", task_id=task.id, notice=notice.code)


def reds_this_year(session: Session, unit_id: int, year: int) -> int:
    """Reds issued to the unit in the calendar year (第十条: 2 ⇒ 通报批评, 3 ⇒ 诫勉谈话)."""
    start, end = datetime(year, 1, 1, tzinfo=SHANGHAI), datetime(year + 1, 1, 1, tzinfo=SHANGHAI)
    query = (select(func.count()).select_from(Notice).join(Task, Task.id == Notice.task_id)
             .where(Task.lead_unit_id == unit_id, Notice.kind == NoticeKind.RED,
                    Notice.status == NoticeStatus.ISSUED, Notice.issued_at >= start, Notice.issued_at < end))
    return session.exec(query).one()


def _context(rows: Rows, task: Task, notice: Notice, unit: Unit, now: datetime, policy: Policy) -> dict:
    head = rows.person(unit.head_user_id) if unit.head_user_id else None  # none once the unit left
    signer = rows.person(notice.signed_by or notice.signer_id or "")
    if notice.kind is NoticeKind.RED:
        rows.flush()  # the count includes this red
    return {
        "task": task, "notice": notice, "unit": unit, "head": head, "signer": signer, "now": now,
        "overdue_days": max((now.date() - task.deadline.date()).days, 0),
        "next_at": _next_step(task, notice, now, policy, sent_at=policy.send_time(now)),
        "points": score_for(notice.kind, policy.rules),
        "reds": reds_this_year(rows.session, unit.id, now.year) if notice.kind is NoticeKind.RED else 0,
        "rules": policy.rules,
        "estimate": task.deadline_is_estimate,
        "unread_yellow": _unread_yellow(rows.session, task, now) if notice.kind is NoticeKind.RED else [],
    }


def _unread_yellow(session: Session, task: Task, now: datetime) -> list[str]:
    """The names of those the task's latest yellow notice went to who have not read it."""
    yellow = next((r for r in notice_reads(session, task, now) if r["notice"].kind is NoticeKind.YELLOW), None)
    return [p["name"] for p in yellow["people"] if p["known"] and p["read_at"] is None] if yellow else []



def _next_step(task: Task, notice: Notice, now: datetime, policy: Policy, *, sent_at: datetime) -> datetime | None:
    """When the next colour would follow, as the notice tells the unit (SPEC §3); None when that
    moment is already past when the notice goes out (the bot was down): no notice names a past date."""
    step = _step(task, notice, now, policy)
    return step if step is None or step > sent_at else None


def _step(task: Task, notice: Notice, now: datetime, policy: Policy) -> datetime | None:
    rules = policy.rules
    if notice.kind in (NoticeKind.COURTESY, NoticeKind.ACK_REMINDER, NoticeKind.REPORT_REMINDER):
        return policy.send_time(task.deadline)
    if notice.kind is NoticeKind.BLUE:
        return policy.send_time(policy.after_days(task.deadline, rules.yellow_after_days))
    if notice.kind is NoticeKind.YELLOW:
        return policy.send_time(policy.after_days(notice.issued_at or now, rules.red_after_yellow_days))
    if notice.kind is NoticeKind.RED:
        return policy.send_time(policy.after_days(notice.issued_at or now, rules.red_repeat_days))
    return None


def task_actions(task: Task, at: datetime | None = None) -> tuple[Action, ...]:
    """The unit's actions on `task` for a message going out at `at`: no 签收 once acknowledged, no
    申请延期 from the deadline on (第八条: extensions are asked for within the deadline)."""
    actions = [Action("签收", f"签收 {task.code}")] if task.acknowledged_at is None else []
    actions.append(Action("汇报进展", f"进展 {task.code} "))
    if at is None or at < task.deadline:
        actions.append(Action("申请延期", f"延期 {task.code} "))
    return (*actions, Action("办结", f"办结 {task.code} "))


def _deliver(rows: Rows, task: Task, notice: Notice, unit: Unit, now: datetime, policy: Policy) -> None:
    ctx = _context(rows, task, notice, unit, now, policy)
    at = policy.send_time(now)
    head = ctx["head"]
    if notice.kind is NoticeKind.COURTESY and at >= task.deadline:
        return  # a 临期提醒 that could only go out once the deadline passed means nothing: dropped
    if notice.kind is NoticeKind.SIGN_REMINDER:
        draft = rows.notice(notice.ref_notice_id)
        if rows.unsent(draft.signer_id, f"n.{draft.code}"):
            return  # the draft, or a reminder of it, still waits to go out to the signer: one is enough
        ctx["draft"] = draft
        reply = render("reminder_sign", actions=_sign_actions(draft), **ctx)
        rows.outbox(reply, target="user", recipient=draft.signer_id, deliver_after=at, now=now,
                    task_id=task.id, notice_id=notice.id)
        return
    if notice.kind is NoticeKind.HARD_REMINDER:  # 难以执行 waits for an answer: the 督查室 and the assigner
        report = rows.session.exec(select(HardReport).where(HardReport.task_id == task.id,
                                                            HardReport.answer.is_(None))
                                   .order_by(HardReport.id.desc())).first()
        reply = render("notice_hard_reminder", actions=hard_actions(task), report=report, **ctx)
        people = [task.assigner_id, *(p.user_id for p in rows.people_with_role(Role.SUPERVISOR))]
        for user_id in dict.fromkeys(people):
            if rows.member(user_id):
                rows.outbox(reply, target="user", recipient=user_id, deliver_after=at, now=now,
                            task_id=task.id, notice_id=notice.id)
        return
    reply = render(f"notice_{notice.kind}", actions=task_actions(task, at), **ctx)
    if head:
        # a colour notice goes as a chat message even when cards are on: DingTalk reports who read a
        # message, never a card; the task's card beside it is updated in place (reminders/cards.py)
        rows.outbox(reply, target="user", recipient=head.user_id, deliver_after=at, now=now,
                    task_id=task.id, notice_id=notice.id, plain=notice.kind in COLOURS)
        ding = {NoticeKind.RED: policy.rules.ding_red, NoticeKind.YELLOW: policy.rules.ding_yellow}.get(notice.kind)
        if ding:  # after the notice in the head's queue: the DING points at a message already there
            rows.outbox(render("notice_ding", **ctx), target="user", recipient=head.user_id,
                        deliver_after=at, now=now, task_id=task.id, notice_id=notice.id, ding_remind_type=ding)
    groups = []
    if notice.kind in (NoticeKind.YELLOW, NoticeKind.RED):
        groups.append(queries.task_conversation(rows.session, task))
    if notice.kind is NoticeKind.RED:
        leaders = queries.group(rows.session, "leaders")
        groups.append(leaders.conversation_id if leaders else "")
    for conversation in dict.fromkeys(g for g in groups if g):
        rows.outbox(render(f"notice_{notice.kind}", **ctx), target="group", recipient=conversation,
                    deliver_after=at, now=now, task_id=task.id, notice_id=notice.id)


def hard_actions(task: Task) -> tuple[Action, ...]:
    """The three answers to a 难以执行 report (湖北 (六))."""
    return (Action("继续执行", f"继续执行 {task.code} "), Action("暂缓执行", f"暂缓执行 {task.code} "),
            Action("调整要求", f"调整要求 {task.code} "))


def _sign_actions(draft: Notice) -> tuple[Action, ...]:
    return (Action("签发", f"签发 {draft.code}"), Action("暂缓", f"暂缓 {draft.code} "))


def _send_draft(rows: Rows, task: Task, notice: Notice, now: datetime, policy: Policy) -> None:
    if notice.signer_id is None:
        return  # no signer in the roster: the roster check refuses such a roster, so this is a test set-up
    unit = rows.unit(task.lead_unit_id)
    ctx = _context(rows, task, notice, unit, now, policy)
    reply = render("notice_draft", actions=_sign_actions(notice), **ctx)
    rows.outbox(reply, target="user", recipient=notice.signer_id, deliver_after=policy.send_time(now),
                now=now, task_id=task.id, notice_id=notice.id)


def move_drafts(session: Session, now: datetime, policy: Policy) -> list[tuple[Notice, Person | None, Person]]:
    """After a roster change: every waiting draft whose signer no longer holds the signing role
    goes to whoever holds it now, with a DM carrying its 签发/暂缓 actions. Returns (draft, old, new)."""
    moved = []
    waiting = session.exec(select(Notice).join(Task, Task.id == Notice.task_id).where(
        Notice.kind.in_(tuple(SIGNER_ROLE)), Notice.status.in_((NoticeStatus.DRAFT, NoticeStatus.HELD)),
        Task.status.in_(OPEN_STATUSES)).order_by(Notice.id))
    for notice in list(waiting):
        role = SIGNER_ROLE[notice.kind]
        old = queries.person(session, notice.signer_id or "")
        if old is not None and old.active and old.role is role:
            continue
        new = queries.first_with_role(session, role)
        if new is None:
            continue  # the roster check requires every signing role: only a hand-built database gets here
        notice.signer_id = new.user_id
        session.add(notice)
        task = session.get(Task, notice.task_id)
        unit = session.get(Unit, task.lead_unit_id)
        ctx = _context(Rows(session), task, notice, unit, now, policy)
        actions = _sign_actions(notice)[:1 if notice.status is NoticeStatus.HELD else 2]  # held: 签发 only
        reply = render("notice_draft_moved", actions=actions, previous=old, **ctx)
        enqueue(session, reply, target="user", recipient=new.user_id, deliver_after=policy.send_time(now),
                now=now, task_id=task.id, notice_id=notice.id)
        audit.record(session, at=now, actor=audit.SYSTEM, action="notice_signer_changed", task_id=task.id,
                     notice=notice.code, old=old.user_id if old else None, new=new.user_id,
                     new_name=new.name)
        moved.append((notice, old, new))
    return moved
