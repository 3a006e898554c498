"""Cards rendered when sent (reminders/card_updates.py): a change only notes its task; the sender
renders the noted tasks' cards once, from what the tasks are then."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.settings import Settings
from bot.simulation import Simulation
from handlers.incoming import Incoming
from storage.models import Outbox, StaleCard
from tests.helpers import HEAD, START, assign


@pytest.fixture
def sim_cards(db_url: str):
    """The bot with interactive cards on (the suite's default is off), on SQLite and PostgreSQL."""
    simulation = Simulation(db_url, START, settings=Settings(database_url=db_url, dingtalk_cards=True))
    yield simulation
    simulation.engine.dispose()


def card_updates(sim) -> list[Outbox]:
    with Session(sim.engine) as s:
        return list(s.exec(select(Outbox).where(Outbox.card_update.is_(True)).order_by(Outbox.id)))


def stale(sim) -> list[int]:
    with Session(sim.engine) as s:
        return list(s.exec(select(StaleCard.task_id)))


def test_a_card_made_with_the_change_is_not_updated_to_say_it_again(sim_cards) -> None:
    assign(sim_cards)  # the task's cards go out (to the unit's head and liaison) with it
    assert card_updates(sim_cards) == [] and stale(sim_cards) == []


def test_a_burst_of_changes_is_one_update_a_card_showing_the_last(sim_cards) -> None:
    code = assign(sim_cards)
    with Session(sim_cards.engine) as s:
        shown = set(s.exec(select(Outbox.card_id).where(Outbox.card_id.is_not(None))))
    for n in range(1, 21):  # twenty reports before the sender runs again
        replies = sim_cards.bot.handle_sync(Incoming(msg_id=f"burst-{n}", sender_id=HEAD, text=f"进展 {code} 第{n}次 {n}%"))
        assert replies[0].title.startswith("进展已记录")
    assert len(stale(sim_cards)) == 1  # one note for the task, however many changes
    assert card_updates(sim_cards) == []  # nothing rendered on the command's path
    sim_cards.deliver()
    updates = card_updates(sim_cards)
    assert sorted(u.card_id for u in updates) == sorted(shown)  # one a card
    assert all("第20次" in u.text and "第19次" not in u.text for u in updates)
    assert stale(sim_cards) == []
    sim_cards.deliver()  # rendered again: nothing changed, nothing queued
    assert len(card_updates(sim_cards)) == len(shown)


def test_the_note_outlives_a_crash_before_the_sender_ran(sim_cards) -> None:
    sim = sim_cards
    code = assign(sim)
    sim.bot.handle_sync(Incoming(msg_id="before-crash", sender_id=HEAD, text=f"进展 {code} 已完成城区排查 60%"))
    sim.restart()  # the note was committed with the progress report
    sim.deliver()
    assert card_updates(sim) and all("60%" in u.text for u in card_updates(sim))
