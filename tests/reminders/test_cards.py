"""Cards kept current (reminders/cards.py) on SQLite and PostgreSQL: each card shown about a task
gets one update per change of what it shows, naming the newest report and its author, and none
when nothing it shows changed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from bot.settings import Settings
from bot.simulation import Simulation
from reminders import cards
from storage.db import transaction
from storage.models import Outbox, Task
from tests.helpers import HEAD, LIAISON, START, assign


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
