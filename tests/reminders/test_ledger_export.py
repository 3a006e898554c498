"""The Excel 台账 from chat: control characters never break it, the file reaches the sender once (in a
group and one to one, over the emulator), and export files do not pile up once delivered."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from bot.settings import Settings
from bot.simulation import Simulation
from handlers.incoming import Incoming
from message_templates.reply import Reply
from storage.db import transaction
from storage.models import Outbox, ProgressReport, Task
from storage.tz import shanghai as sh
from tests.helpers import HEAD, OFFICE, World

CODE = "DB-2026-0001"


@pytest.fixture
def office(db_url: str, tmp_path: Path) -> Simulation:
    """The example county, with exports waiting in a folder of this test's own."""
    sim = Simulation(db_url, sh(2026, 11, 23, 9, 30),
                     settings=Settings(database_url=db_url, reports_dir=tmp_path / "reports"))
    yield sim
    sim.engine.dispose()


_ids = itertools.count()


def send(sim: Simulation, user: str, text: str) -> list[Reply]:
    """A message through the real Bot, leaving the outbox undelivered."""
    return sim.bot.handle_sync(Incoming(msg_id=f"x-{next(_ids)}", sender_id=user, text=text))


def exported(sim: Simulation) -> list[Path]:
    """The export files queued so far, oldest first."""
    with Session(sim.engine) as s:
        return [Path(r.file_path) for r in s.exec(select(Outbox).where(Outbox.file_path.is_not(None))
                                                    .order_by(Outbox.id))]


def ledger_cells(path: Path) -> list[list[object]]:
    return [list(row) for row in load_workbook(path)["督办台账"].iter_rows(min_row=2, values_only=True)]


def test_control_characters_are_dropped_and_the_export_still_works(office: Simulation) -> None:
    office.say("u_xianzhang", "交办 县住建局 燃气\u2060管道\u00ad隐患排查 截止12月10日")
    assert office.say(HEAD, f"进展 {CODE} 已完成\x02一半")[0].title == f"进展已记录 {CODE}"
    # a NUL, which PostgreSQL refuses in text, is dropped before it reaches the database
    assert office.say(HEAD, f"进展 {CODE} 城区\x00排查完毕 60%", at=sh(2026, 11, 23, 10))[0].title == f"进展已记录 {CODE}"
    [reply] = office.say(OFFICE, "台账 导出")
    assert reply.title == "督办台账" and "Excel 台账已单独发给您" in reply.text
    [[code, title, *_, last, _, _, _]] = ledger_cells(exported(office)[0])
    assert (code, title, last) == (CODE, "燃气管道隐患排查", "11-23 城区排查完毕")
    with Session(office.engine) as s:
        assert [p.text for p in s.exec(select(ProgressReport).order_by(ProgressReport.id))] == [
            "已完成一半", "城区排查完毕"]


def test_text_stored_before_the_cleaning_does_not_break_the_export(office: Simulation) -> None:
    office.say("u_xianzhang", "交办 县住建局 燃气管道隐患排查 截止12月10日")
    with transaction(office.engine) as s:  # rows written by an older version, control characters and all
        task = s.exec(select(Task)).one()
        task.title = "燃气\x1b管道隐患排查"
        s.add(ProgressReport(task_id=task.id, author_id=HEAD, at=office.clock.now(), text="已完成\x02一半"))
    [reply] = office.say(OFFICE, "台账 导出")
    assert reply.title == "督办台账"
    [[_, title, *_, last, _, _, _]] = ledger_cells(exported(office)[0])
    assert (title, last) == ("燃气管道隐患排查", "11-23 已完成一半")


def test_an_export_file_stays_until_delivered_then_goes(office: Simulation) -> None:
    send(office, OFFICE, "台账 导出")
    [first] = exported(office)
    office.clock.set(office.clock.now() + timedelta(minutes=30))
    send(office, OFFICE, "台账 导出")  # the first is still waiting for the outbox: it stays
    assert first.is_file()
    office.deliver()
    assert [m.file_path for _, m in office.transport.sent] == [str(p) for p in exported(office)]
    office.clock.set(office.clock.now() + timedelta(minutes=5))
    send(office, OFFICE, "台账 导出")  # the second was delivered moments ago: it may stay a while
    first, second, third = exported(office)
    assert not first.exists() and second.is_file() and third.is_file()
    office.deliver()
    office.clock.set(office.clock.now() + timedelta(minutes=11))
    send(office, OFFICE, "台账 导出")
    assert [p.parent.exists() for p in exported(office)] == [False, False, False, True]
    assert len(list((office.bot.settings.reports_dir / "ledger").iterdir())) == 1


@pytest.mark.parametrize("group", ["", "cid_leaders"], ids=["one-to-one", "group"])
async def test_the_file_reaches_the_sender_once(world: World, group: str) -> None:
    await world.say(OFFICE, "台账 导出", group=group)
    await world.deliver_all()
    files = [d for d in world.emulator.deliveries if d.msg_key == "sampleFile"]
    assert [(d.channel, d.to) for d in files] == [("user", OFFICE)]
    assert world.emulator.media[files[0].param["mediaId"]].startswith("督办台账-")
    ledgers = [d for d in world.emulator.deliveries if "督办台账" in d.text]
    assert len(ledgers) == 1 and "Excel 台账已单独发给您" in ledgers[0].text  # the reply, once
