"""The 总览 is reused (bot/dashboard/data.Overviews) only while nothing it shows can have changed: the
same minute and the same data — a command, a change written without an audit event, a roster change,
the next minute, or a row dated ahead of the page each make it build afresh."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session

from bot.dashboard import data
from bot.simulation import Simulation
from storage.db import transaction
from storage.models import Person, ProgressReport, Task, Unit
from storage.tz import shanghai as sh

OFFICE, LEADER, HEAD = "u_ducha1", "u_xianzhang", "u_zhujian"


def look(sim: Simulation, overviews: data.Overviews, filters: data.Filters | None = None) -> data.Overview:
    with Session(sim.engine) as session:
        scope = data.Scope(session.get(Person, OFFICE))
        return overviews.get(session, sim.clock.now(), sim.bot.settings, sim.bot.calendar, scope,
                             filters or data.Filters())[1]


def open_of(view: data.Overview, unit: str) -> int:
    return next(r.open for r in view.rows if r.unit.name == unit)


def test_reused_within_the_minute_and_built_afresh_on_any_change(sim_any: Simulation) -> None:
    sim, overviews = sim_any, data.Overviews()
    sim.say(LEADER, "交办 县住建局 燃气排查 截止12月25日", group="cid_leaders")
    sim.say(LEADER, "交办 县住建局 管网排查 截止12月28日", group="cid_leaders")
    sim.clock.set(sh(2026, 11, 23, 10) + timedelta(seconds=5))
    first = look(sim, overviews)
    assert open_of(first, "县住建局") == 2
    sim.clock.advance(seconds=20)
    assert look(sim, overviews) is first  # the same minute, nothing changed: reused
    assert look(sim, overviews, data.Filters(category="其他")) is not first  # other filters: their own

    sim.say(HEAD, "签收 DB-2026-0001")  # a command (10:00:25)
    sim.clock.advance(seconds=5)
    after = look(sim, overviews)
    assert after is not first

    with transaction(sim.engine) as session:  # a change with no audit event: a task closed behind its back
        session.exec(update(Task).where(Task.code == "DB-2026-0002").values(closed_at=sim.clock.now() - timedelta(hours=1)))
    sim.clock.advance(seconds=5)
    closed = look(sim, overviews)
    assert open_of(closed, "县住建局") == 1

    with transaction(sim.engine) as session:  # the roster renamed a unit
        session.exec(update(Unit).where(Unit.name == "县住建局").values(name="县住房和城乡建设局"))
    sim.clock.advance(seconds=5)
    renamed = look(sim, overviews)
    assert open_of(renamed, "县住房和城乡建设局") == 1
    sim.clock.advance(seconds=5)
    assert look(sim, overviews) is renamed

    sim.clock.advance(minutes=1)  # the next minute: overdue and the forecast move with the clock
    assert look(sim, overviews) is not renamed


def test_not_kept_when_a_row_is_dated_ahead_of_the_page(sim: Simulation) -> None:
    overviews = data.Overviews()
    sim.say(LEADER, "交办 县住建局 燃气排查 截止12月25日", group="cid_leaders")
    with transaction(sim.engine) as session:  # another instance, its clock a little ahead, wrote a report
        session.add(ProgressReport(task_id=1, author_id=HEAD, text="进展", at=sim.clock.now() + timedelta(seconds=30)))
    sim.clock.advance(seconds=1)
    first = look(sim, overviews)
    sim.clock.advance(seconds=40)  # the report now counts: a look now must not reuse the one before it
    assert look(sim, overviews) is not first
