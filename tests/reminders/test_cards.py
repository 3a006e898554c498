"""Cards kept current (reminders/cards.py) on SQLite and PostgreSQL: each card shown about a task
gets one update per change of what it shows, naming the newest report and its author, and none
when nothing it shows changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.settings import Settings
from bot.simulation import ROSTER, Simulation
from reminders import cards
from storage.db import transaction
from storage.models import Outbox, Task, Unit
from tests.helpers import DEPUTY, HEAD, LIAISON, START, assign


@pytest.fixture
def carded(db_url: str) -> Iterator[Simulation]:
    sim = Simulation(db_url, START, settings=Settings(database_url=db_url, dingtalk_cards=True))
    yield sim
    sim.engine.dispose()


def updates(sim: Simulation) -> list[Outbox]:
    with Session(sim.engine) as s:
        return list(s.exec(select(Outbox).where(Outbox.card_update.is_(True)).order_by(Outbox.id)))


def refresh(sim: Simulation) -> int:
    with transaction(sim.engine) as s:
        return cards.refresh(s, s.exec(select(Task)).one(), sim.clock.now())


def test_each_card_gets_the_newest_report_once_and_nothing_when_unchanged(carded: Simulation) -> None:
    code = assign(carded)
    carded.say(HEAD, f"进展 {code} 已排查城区 40%")
    first = updates(carded)
    assert sorted(row.recipient for row in first) == sorted([HEAD, LIAISON])  # the unit's two cards
    assert all("已排查城区" in row.text and "40%" in row.text and "王建华" in row.text for row in first)
    assert refresh(carded) == 0  # what the cards show has not changed: nothing is queued
    carded.clock.advance(minutes=5)
    carded.say(LIAISON, f"进展 {code} 乡镇部分进行中 60%")
    second = updates(carded)[len(first):]
    assert len(second) == 2 and all("乡镇部分进行中" in row.text and "赵晓燕" in row.text for row in second)
    assert refresh(carded) == 0


def test_a_draft_card_keeps_its_buttons_only_for_the_signer_who_holds_the_role(carded: Simulation,
                                                                             tmp_path: Path) -> None:
    """Two cards about one draft — the replaced signer's and the new one's — show it alike, but only
    the signer's offers 签发 and 暂缓."""
    code = assign(carded)
    draft = carded.wait_for_draft(code, START + timedelta(days=60))
    roster = tmp_path / "roster.yaml"
    roster.write_text(ROSTER.read_text(encoding="utf-8").replace(
        "{id: u_changwu, name: 吴立新,", "{id: u_changwu2, name: 林新,"), encoding="utf-8")
    carded.bot.load_roster(roster)
    carded.deliver()
    before = len(updates(carded))
    carded.say(HEAD, f"进展 {code} 已整改过半 50%")
    shown = {row.recipient: row for row in updates(carded)[before:] if row.card_key == f"n.{draft}"}
    assert set(shown) == {DEPUTY, "u_changwu2"}
    assert shown[DEPUTY].text == shown["u_changwu2"].text
    assert shown[DEPUTY].actions == [] and [label for label, _ in shown["u_changwu2"].actions] == ["签发", "暂缓"]


def test_each_draft_card_shows_its_own_draft(carded: Simulation) -> None:
    code = assign(carded)
    yellow = carded.wait_for_draft(code, START + timedelta(days=60))
    carded.say(DEPUTY, f"签发 {yellow}")
    red = carded.wait_for_draft(code, START + timedelta(days=90))
    carded.deliver()
    before = len(updates(carded))
    with transaction(carded.engine) as s:  # what both drafts' cards show changes: the unit's name
        task = s.exec(select(Task)).one()
        s.get(Unit, task.lead_unit_id).name = "县住房和城乡建设局"
        cards.refresh(s, task, carded.clock.now())
    shown = {row.card_key: row.text for row in updates(carded)[before:] if row.card_key.startswith("n.")}
    assert set(shown) == {f"n.{yellow}", f"n.{red}"}
    assert all(key.removeprefix("n.") in text and "县住房和城乡建设局" in text for key, text in shown.items())
