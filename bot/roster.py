"""The roster: people, roles, units, groups. Read from YAML, validated, written to the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import Session, select

from handlers.extensions import approvers, move_extension_requests
from handlers.reassign import hand_over, notify_unit
from message_templates.render import ROLE_NAMES, render
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from reminders.notices import move_drafts
from reminders.rules import Rules
from storage import audit, queries
from storage.dashboard import end_sessions
from storage.models import OPEN_STATUSES, ChatGroup, Person, Role, Task, Unit
from storage.outbox import enqueue
from storage.tz import SHANGHAI

log = logging.getLogger(__name__)

LEADER_ROLES = {
    "county_head": Role.COUNTY_HEAD,
    "executive_deputy": Role.EXECUTIVE_DEPUTY,
    "deputy": Role.DEPUTY,
    "office_director": Role.OFFICE_DIRECTOR,
    "supervisor": Role.SUPERVISOR,
}


class RosterError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PersonEntry(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    title: str = ""


class OfficialEntry(PersonEntry):
    role: str

    @model_validator(mode="after")
    def _known_role(self) -> OfficialEntry:
        if self.role not in LEADER_ROLES:
            raise ValueError(f"角色 {self.role!r} 不认识，可用：{', '.join(LEADER_ROLES)}")
        return self


class UnitEntry(_Strict):
    name: str = Field(min_length=1)
    aliases: list[str] = []
    head: PersonEntry
    liaisons: list[PersonEntry] = []


class GroupEntry(_Strict):
    key: str = Field(min_length=1)
    name: str = Field(min_length=1)
    conversation_id: str = Field(min_length=1)


class Roster(_Strict):
    county: str = ""
    officials: list[OfficialEntry]
    units: list[UnitEntry]
    groups: list[GroupEntry]

    @model_validator(mode="after")
    def _consistent(self) -> Roster:
        ids = [p.id for p in self.officials]
        ids += [u.head.id for u in self.units] + [li.id for u in self.units for li in u.liaisons]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"人员 id 重复：{', '.join(sorted(dup))}（每人只能有一个角色）")
        names = [u.name for u in self.units] + [a for u in self.units for a in u.aliases]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"单位名称或简称重复：{', '.join(sorted(dup))}")
        roles = [p.role for p in self.officials]
        for needed in ("county_head", "executive_deputy", "office_director", "supervisor"):
            if needed not in roles:
                raise ValueError(f"缺少角色 {needed}（县长、常务副县长、县政府办主任、督查室都必须有人）")
        keys = {g.key for g in self.groups}
        for needed in ("leaders", "all_units"):
            if needed not in keys:
                raise ValueError(f"缺少工作群 {needed}（leaders 县长工作群，all_units 县直单位工作群）")
        return self


def load_roster(path: Path) -> Roster:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RosterError(f"读不到花名册文件 {path}：{exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RosterError(f"花名册 {path} 不是合法的 YAML：{exc}") from exc
    try:
        return Roster.model_validate(data or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(整个文件)"
            lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
        raise RosterError(f"花名册 {path} 有 {len(lines)} 处错误：\n" + "\n".join(lines)) from exc


@dataclass
class RosterChange:
    """What a roster reload did to people, units, their tasks and waiting drafts (for the operator)."""

    people_left: list[str] = field(default_factory=list)
    units_left: dict[str, list[str]] = field(default_factory=dict)  # unit → its open tasks, now suspended
    units_back: dict[str, list[str]] = field(default_factory=dict)  # unit → its tasks, clock restarted
    drafts_moved: list[str] = field(default_factory=list)
    extensions_moved: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.people_left or self.units_left or self.units_back or self.drafts_moved
                    or self.extensions_moved)

    def render(self) -> str:
        if not self:
            return "花名册已生效：没有人员或单位离开。"
        lines = [f"- 人员 {who} 已离开花名册，不能再使用任何命令" for who in self.people_left]
        for unit, codes in self.units_left.items():
            lines.append(f"- 单位 {unit} 已移出花名册，" + (
                f"{len(codes)} 项未办结事项暂停督办（不再提醒、不再扣分），已发给督查室改派：{'、'.join(codes)}"
                if codes else "没有未办结事项"))
        for unit, codes in self.units_back.items():
            lines.append(f"+ 单位 {unit} 重新列入花名册" + (
                f"，{len(codes)} 项事项交还本单位并重新计时：{'、'.join(codes)}" if codes else ""))
        lines += [f"~ 待签督办单 {line}" for line in self.drafts_moved]
        lines += [f"~ 待批延期申请 {line}" for line in self.extensions_moved]
        return "\n".join(["花名册已生效：", *lines])


def apply_roster(session: Session, roster: Roster, now: datetime | None = None,
                 esc: Escalation | None = None) -> RosterChange:
    """Make the database's roster the file's, as a diff. People and units no longer listed are kept
    (tasks and history point at them) but lose every standing at once: the bot treats such a
    person as a stranger, never names them as a signer or approver, and such a unit can no longer
    be assigned. The unit's open tasks stop escalating and go to the 督查室 for 改派; waiting
    drafts whose signer left go to the role's new holder. A unit listed again gets its tasks back
    with a fresh clock, as if they were 改派 to it. `now` and `esc` default to the wall clock and the
    default rules, which only a first load into an empty database may rely on."""
    now = now or datetime.now(SHANGHAI)
    esc = esc or Escalation(WorkCalendar(), Rules())
    change = RosterChange()
    approvers_before = approvers(session)
    listed = {p.id for p in roster.officials} | {u.head.id for u in roster.units} | {
        li.id for u in roster.units for li in u.liaisons}
    for gone in list(session.exec(select(Person).where(Person.active))):
        if gone.user_id not in listed:
            unit = session.get(Unit, gone.unit_id) if gone.unit_id else None
            change.people_left.append(f"{unit.name if unit else ''}{gone.title or ROLE_NAMES[gone.role]} "
                                      f"{gone.name}（{gone.user_id}）")
            gone.active, gone.unit_id = False, None
            session.add(gone)
            end_sessions(session, gone.user_id)  # signed out of the dashboard, even if listed again later
    for entry in roster.officials:
        _upsert_person(session, entry, LEADER_ROLES[entry.role], None)
    back: list[Unit] = []
    for entry in roster.units:
        unit = session.exec(select(Unit).where(Unit.name == entry.name)).first() or Unit(name=entry.name)
        if not unit.active:
            back.append(unit)
        unit.aliases, unit.head_user_id, unit.active = list(entry.aliases), entry.head.id, True
        session.add(unit)
        session.flush()
        _upsert_person(session, entry.head, Role.UNIT_HEAD, unit.id)
        for liaison in entry.liaisons:
            _upsert_person(session, liaison, Role.LIAISON, unit.id)
    names = {u.name for u in roster.units}
    left: list[tuple[Unit, list[Task]]] = []
    for unit in list(session.exec(select(Unit).where(Unit.active))):
        if unit.name not in names:
            unit.active, unit.head_user_id = False, None
            session.add(unit)
            left.append((unit, _open_tasks(session, unit)))
    session.flush()
    for unit, tasks in left:
        for task in tasks:
            esc.settle(session, task, now)  # the engine suspends a task whose unit is off the roster
            audit.record(session, at=now, actor=audit.SYSTEM, action="unit_left_roster", task_id=task.id,
                         unit=unit.name)
        change.units_left[unit.name] = [t.code for t in tasks]
    for unit in back:
        tasks = _open_tasks(session, unit)
        for task in tasks:
            hand_over(session, task, unit, now, esc, actor=audit.SYSTEM)
            notify_unit(session, task, unit, unit, now, by=None)
        change.units_back[unit.name] = [t.code for t in tasks]
    for entry in roster.groups:
        group = session.get(ChatGroup, entry.key) or ChatGroup(key=entry.key, name=entry.name,
                                                               conversation_id=entry.conversation_id)
        group.name, group.conversation_id = entry.name, entry.conversation_id
        session.add(group)
    session.flush()
    for draft, old, new in move_drafts(session, now, esc.policy):
        change.drafts_moved.append(f"{draft.code}：{old.name if old else '（无）'} → {new.name}")
    for _, task, new in move_extension_requests(session, approvers_before, now):
        change.extensions_moved.append(f"{task.code}：转由{new.name}审批")
    _tell_the_office(session, left, now)
    if change:
        log.info("%s", change.render())
    return change


def _open_tasks(session: Session, unit: Unit) -> list[Task]:
    return list(session.exec(select(Task).where(Task.lead_unit_id == unit.id, Task.status.in_(OPEN_STATUSES))
                             .order_by(Task.id)))


def _tell_the_office(session: Session, left: list[tuple[Unit, list[Task]]], now: datetime) -> None:
    """Each unit that left with open tasks: one DM per 督查室 member listing them for 改派."""
    current = queries.active_units(session)
    example = current[0].name if current else "单位名称"
    for unit, tasks in left:
        if not tasks:
            continue
        reply = render("roster_unit_left_dm", unit=unit, tasks=tasks, example_unit=example, now=now)
        for office in queries.people_with_role(session, Role.SUPERVISOR):
            enqueue(session, reply, target="user", recipient=office.user_id, deliver_after=now, now=now)


def _upsert_person(session: Session, entry: PersonEntry, role: Role, unit_id: int | None) -> None:
    person = session.get(Person, entry.id) or Person(user_id=entry.id, name=entry.name, role=role)
    person.name, person.title, person.role, person.unit_id = entry.name, entry.title, role, unit_id
    person.active = True
    session.add(person)
