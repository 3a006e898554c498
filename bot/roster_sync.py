"""The roster from DingTalk's org chart: each department under a root department is a unit, and its
first manager (dept_manager_userid_list) is the unit's head.

The roster file stays the source of truth: a sync computes the new roster, shows what would
change, and only with `yes` rewrites the file (the old one kept as *.bak) and applies it to the
database. Officials, groups, unit aliases and liaisons are the operator's and are kept as they are.
Units gone from DingTalk leave the file; applying goes through the same diff as every roster load
(bot/roster.py apply_roster): they and people no longer listed lose their standing, their open tasks
are suspended and listed to the 督查室 for 改派, and the operator is shown what happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.settings import DingTalkSettings
from bot.roster import PersonEntry, Roster, RosterChange, RosterError, UnitEntry, apply_roster, load_roster
from bot.settings import Settings
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from reminders.rules import Rules
from storage.db import create_schema, make_engine, transaction
from storage.tz import SHANGHAI

log = logging.getLogger(__name__)

ROOT_DEPARTMENT = 1  # DingTalk's id for the organisation itself


@dataclass(frozen=True)
class OrgUnit:
    dept_id: int
    name: str
    managers: tuple[PersonEntry, ...]


@dataclass
class RosterDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    applied: RosterChange | None = None  # what writing it did to the database, once applied

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def render(self) -> str:
        lines = [f"+ {line}" for line in self.added] + [f"~ {line}" for line in self.changed]
        lines += [f"- {line}" for line in self.removed] + [f"! {line}" for line in self.warnings]
        summary = (f"与钉钉通讯录相比：新增 {len(self.added)} 项，变更 {len(self.changed)} 项，"
                   f"移除 {len(self.removed)} 项" if self else "花名册与钉钉通讯录一致，无需更新")
        applied = [self.applied.render()] if self.applied is not None else []
        return "\n".join([summary, *lines, *applied])


async def fetch_org(client: OpenApiClient, root_dept_id: int = ROOT_DEPARTMENT) -> list[OrgUnit]:
    """The departments directly under the root, each with its managers' names and titles."""
    units = []
    for dept in await client.list_sub_departments(root_dept_id):
        detail = await client.get_department(int(dept["dept_id"]))
        managers = []
        for user_id in detail.get("dept_manager_userid_list") or ():
            user = await client.get_user(user_id)
            managers.append(PersonEntry(id=user["userid"], name=user["name"], title=user.get("title") or ""))
        units.append(OrgUnit(int(dept["dept_id"]), str(detail.get("name") or dept["name"]), tuple(managers)))
    return units


def plan(roster: Roster, org: list[OrgUnit]) -> tuple[Roster, RosterDiff]:
    """The roster the org chart implies, and how it differs from `roster`."""
    diff = RosterDiff()
    by_name = {name: unit for unit in roster.units for name in (unit.name, *unit.aliases)}
    taken = {p.id: f"{p.title or p.role} {p.name}" for p in roster.officials}
    taken |= {li.id: f"{u.name}联络员 {li.name}" for u in roster.units for li in u.liaisons}
    old_heads = {unit.head.id: unit for unit in roster.units}
    units: list[UnitEntry] = []
    for dept in org:
        old = by_name.get(dept.name)
        head = dept.managers[0] if dept.managers else None
        if head is None or head.id in taken:
            why = "未设主管" if head is None else f"主管 {head.name} 已是{taken[head.id]}"
            diff.warnings.append(f"部门 {dept.name}（{dept.dept_id}）{why}，未作为责任单位同步")
            if old:
                units.append(old)
            continue
        if len(dept.managers) > 1:
            others = "、".join(m.name for m in dept.managers[1:])
            diff.warnings.append(f"部门 {dept.name} 有多位主管，取第一位 {head.name} 为负责人（另有 {others}）")
        taken[head.id] = f"{dept.name}负责人 {head.name}"
        if old is None:
            diff.added.append(f"单位 {dept.name}，负责人 {head.name}（{head.id}）")
            units.append(UnitEntry(name=dept.name, head=head))
            continue
        if old.head.id != head.id:
            diff.changed.append(f"单位 {old.name} 负责人：{old.head.name}（{old.head.id}）→ {head.name}（{head.id}）")
        elif (old.head.name, old.head.title) != (head.name, head.title):
            diff.changed.append(f"人员 {head.id}：{old.head.name} {old.head.title} → {head.name} {head.title}")
        units.append(old.model_copy(update={"head": head}))
    kept = {u.name for u in units}
    for old in roster.units:
        if old.name not in kept:
            diff.removed.append(f"单位 {old.name}（钉钉中已无此部门；其未办结事项将暂停督办，交督查室改派）")
    heads_now = {u.head.id for u in units}
    for head_id, unit in old_heads.items():
        if head_id not in heads_now:
            diff.removed.append(f"人员 {unit.head.name}（{head_id}）不再是任何单位的负责人")
    return roster.model_copy(update={"units": units}), diff


async def sync_roster(client: OpenApiClient, roster_path: Path, engine: Engine, *, yes: bool,
                      root_dept_id: int = ROOT_DEPARTMENT, now: datetime | None = None,
                      esc: Escalation | None = None) -> RosterDiff:
    """Compare the roster file with DingTalk; with `yes`, write the file and the database."""
    roster = load_roster(roster_path)
    new, diff = plan(roster, await fetch_org(client, root_dept_id))
    try:
        new = Roster.model_validate(new.model_dump())  # the same checks a hand-edited file gets
    except ValidationError as exc:
        raise RosterError(f"按钉钉通讯录生成的花名册不合法，未写入：{exc}") from exc
    if yes and diff:
        now = now or datetime.now(SHANGHAI)
        write_roster(roster_path, new, now)
        with transaction(engine) as session:
            diff.applied = apply_roster(session, new, now, esc or Escalation(WorkCalendar(), Rules()))
        log.info("roster synced from DingTalk: %d added, %d changed, %d removed",
                 len(diff.added), len(diff.changed), len(diff.removed))
    return diff


async def sync_from_settings(settings: Settings, *, yes: bool, root_dept_id: int = ROOT_DEPARTMENT) -> RosterDiff:
    """`duban roster sync [--yes]`: the configured roster file and database, DingTalk from the
    environment (DUBAN_DINGTALK_*)."""
    engine = make_engine(settings.database_url)
    create_schema(engine)
    try:
        async with OpenApiClient(DingTalkSettings()) as client:
            esc = Escalation(WorkCalendar.from_file(settings.calendar_overrides), settings.rules)
            return await sync_roster(client, settings.roster_file, engine, yes=yes, root_dept_id=root_dept_id,
                                     esc=esc)
    finally:
        engine.dispose()


def write_roster(path: Path, roster: Roster, now: datetime) -> None:
    backup = path.with_name(path.name + ".bak")
    backup.write_bytes(path.read_bytes())
    header = f"# 花名册：由 duban roster sync 按钉钉通讯录更新于 {now:%Y-%m-%d %H:%M}；上一版见 {backup.name}\n"
    body = yaml.safe_dump(roster.model_dump(exclude_defaults=True), allow_unicode=True, sort_keys=False)
    path.write_text(header + body, encoding="utf-8")
