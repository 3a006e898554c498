"""The roster: people, roles, units, groups. Read from YAML, validated, written to the database."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import Session, select

from storage.models import ChatGroup, Person, Role, Unit

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


def apply_roster(session: Session, roster: Roster) -> None:
    """Upsert the roster. Units no longer listed stay (their tasks keep their history); unit staff no
    longer listed lose their standing at once — a replaced head must not go on acting for the unit."""
    for entry in roster.officials:
        _upsert_person(session, entry, LEADER_ROLES[entry.role], None)
    for entry in roster.units:
        unit = session.exec(select(Unit).where(Unit.name == entry.name)).first() or Unit(name=entry.name)
        unit.aliases = list(entry.aliases)
        unit.head_user_id = entry.head.id
        session.add(unit)
        session.flush()
        _upsert_person(session, entry.head, Role.UNIT_HEAD, unit.id)
        for liaison in entry.liaisons:
            _upsert_person(session, liaison, Role.LIAISON, unit.id)
    listed = {p.id for p in roster.officials} | {u.head.id for u in roster.units} | {
        li.id for u in roster.units for li in u.liaisons}
    for gone in session.exec(select(Person).where(Person.role.in_((Role.UNIT_HEAD, Role.LIAISON)))):
        if gone.user_id not in listed:
            session.delete(gone)  # history keeps their userId; they are now strangers to the bot
    for entry in roster.groups:
        group = session.get(ChatGroup, entry.key) or ChatGroup(key=entry.key, name=entry.name,
                                                               conversation_id=entry.conversation_id)
        group.name, group.conversation_id = entry.name, entry.conversation_id
        session.add(group)


def _upsert_person(session: Session, entry: PersonEntry, role: Role, unit_id: int | None) -> None:
    person = session.get(Person, entry.id) or Person(user_id=entry.id, name=entry.name, role=role)
    person.name, person.title, person.role, person.unit_id = entry.name, entry.title, role, unit_id
    session.add(person)
