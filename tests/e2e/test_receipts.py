"""Issue 13 end to end on the emulator: recipients DingTalk refused are reported and not counted
as sent; read receipts come back from DingTalk's read-status APIs within a stated call budget;
red notices DING the unit head through the outbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from openpyxl import load_workbook
from sqlmodel import Session, select

from bot.clock import FakeClock
from bot.dingtalk import receipts as wire
from bot.receipts_job import poll_once
from bot.run import RunSettings, Service
from bot.settings import Settings
from bot.simulation import ROSTER
from reminders.reports import print_report
from storage.models import Notice, NoticeKind, Outbox, OutboxStatus, Person, ReadReceipt, Undeliverable
from storage.receipts import MAX_POLLS, OTO_WINDOW, WATCH_FOR, max_polls
from storage.tz import shanghai
from tests.emulator import Emulator
from tests.helpers import HEAD, LIAISON, OFFICE, START, World, dingtalk_settings

BATCH_SEND = "/v1.0/robot/oToMessages/batchSend"


async def _blue(world: World) -> Notice:
    """A task whose deadline passed: its blue notice is sent to the head (and the liaison)."""
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止11月24日", group="cid_all_units")
    await world.deliver_all()
    world.clock.set(shanghai(2026, 11, 25, 9, 0))
    assert world.bot.tick() > 0
    await world.deliver_all()
    with Session(world.engine) as session:
        return session.exec(select(Notice).where(Notice.kind == NoticeKind.BLUE)).one()


async def test_a_refused_recipient_is_not_counted_as_sent_and_the_office_is_told_once(world: World) -> None:
    world.emulator.invalid_users.add(HEAD)
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_all_units")
    await world.deliver_all()
    world.clock.advance(minutes=5)  # a second send, its own call: refused again, not told again
    await world.say("u_xianzhang", "交办 县住建局 道路修补 截止12月11日", group="cid_all_units")
    await world.deliver_all()

    rows = [r for r in world.outbox() if r.task_id]
    to_head = [r for r in rows if r.recipient == HEAD]
    assert len(to_head) == 2 and all(r.status == OutboxStatus.DEAD for r in to_head)
    assert all("invalidStaffIdList" in r.last_error for r in to_head)
    assert all(r.status == OutboxStatus.SENT for r in rows if r.recipient == LIAISON)
    assert world.emulator.to(HEAD, "user") == []
    told = [d for d in world.emulator.to(OFFICE, "user") if HEAD in d.text]
    assert len(told) == 1, [d.text for d in world.emulator.to(OFFICE, "user")]
    with Session(world.engine) as session:
        [refused] = session.exec(select(Undeliverable)).all()
    assert (refused.user_id, refused.rows) == (HEAD, 2)
    weekly = print_report("weekly", shanghai(2026, 11, 30, 9, 0), world.engine, world.bot.settings, world.bot.calendar)
    with Session(world.engine) as session:
        assert f"钉钉拒收 1 人\n{session.get(Person, HEAD).name}：" in weekly


async def test_read_receipts_arrive_and_show_in_query_ledger_and_excel(world: World) -> None:
    notice = await _blue(world)
    sent_at = world.clock.now()
    read_at = shanghai(2026, 11, 25, 9, 14)
    world.emulator.receipts.read(HEAD, read_at)

    world.clock.set(sent_at + timedelta(minutes=10))
    assert await poll_once(world.engine, world.client, world.clock.now()) >= 1
    with Session(world.engine) as session:
        receipt = session.exec(select(ReadReceipt).where(ReadReceipt.user_id == HEAD)).one()
    assert (receipt.notice_id, receipt.read_at, receipt.exact) == (notice.id, read_at, True)

    # 查询, 台账 and the Excel file all show it
    code = world.tasks()[0].code
    await world.say(OFFICE, f"查询 {code}")
    await world.say(OFFICE, "台账")
    shown = [d.text for d in world.emulator.to(f"cid{OFFICE}single", "webhook")]
    assert "已读 11月25日 09:14" in shown[-2] and "已读 11月25日 09:14" in shown[-1], shown
    [[*_, cell]] = _exported_rows(await _export(world))
    assert "已读 11月25日 09:14" in cell.value
    assert cell.font.color is None or cell.font.color.rgb != "FFFF0000"


async def test_unread_after_a_working_day_is_red_in_the_excel_file(world: World) -> None:
    await _blue(world)
    assert "未读" in str(_exported_rows(await _export(world))[0][-1].value)
    world.clock.set(shanghai(2026, 11, 26, 9, 30))  # a working day after it went out
    [[*_, cell]] = _exported_rows(await _export(world))
    assert "未读" in cell.value and cell.font.color.rgb == "FFFF0000"


async def _export(world: World) -> Path:
    await world.say(OFFICE, "台账 导出")
    [row] = [r for r in world.outbox() if r.file_path and r.status == OutboxStatus.PENDING]
    await world.deliver_all()
    return Path(str(row.file_path))


def _exported_rows(path: Path) -> list[tuple]:
    return list(load_workbook(path)["督办台账"].iter_rows(min_row=2))


async def test_the_read_status_job_stays_within_its_call_budget(world: World) -> None:
    """Nobody reads: every key is asked about on the schedule until the week is out, and never
    more than MAX_POLLS times; one who reads stops the asking for that key."""
    world.emulator.follow(world.clock.now)  # DingTalk forgets a one-to-one key after 24 hours
    await _blue(world)
    with Session(world.engine) as session:
        keys = {r.receipt_key for r in session.exec(select(Outbox).where(Outbox.notice_id.is_not(None)))}
    start = world.clock.now()
    wire.CALLS.clear()
    while world.clock.now() < start + WATCH_FOR + timedelta(days=1):
        world.clock.advance(minutes=30)
        await poll_once(world.engine, world.client, world.clock.now())
    calls = sum(wire.CALLS.values())
    per_key = calls / len(keys)
    budget = max_polls(OTO_WINDOW)  # a blue notice goes one to one only
    print(f"\nread-status calls: {calls} for {len(keys)} keys ({dict(wire.CALLS)}): {per_key:.1f} per key, "
          f"budget {budget} (one-to-one), {MAX_POLLS} (group, DING)")
    assert per_key == budget
    assert world.emulator.receipts.expired_asks == 0  # never asked after DingTalk forgot the key


async def _red(world: World) -> None:
    """Blue, yellow and red, each issued at once (auto_issue) and sent."""
    world.bot.settings.rules.auto_issue = True
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止11月24日", group="cid_all_units")
    await world.deliver_all()
    for day in range(24):
        world.clock.set(shanghai(2026, 11, 25, 9, 0) + timedelta(days=day))
        world.bot.tick()
        await world.deliver_all()


async def test_a_red_notice_dings_the_head_once_and_names_who_left_the_yellow_unread(world: World) -> None:
    await _red(world)
    with Session(world.engine) as session:
        reds = session.exec(select(Notice).where(Notice.kind == NoticeKind.RED)).all()
        dings = session.exec(select(Outbox).where(Outbox.ding_remind_type.is_not(None))).all()
    assert reds, "no red notice in the week"
    assert len(world.emulator.receipts.dings_to(HEAD)) == len(reds) == len(dings)
    assert all(d.receipt_key and d.status == OutboxStatus.SENT for d in dings)  # openDingId kept
    [ding] = world.emulator.receipts.dings_to(HEAD)[:1]
    assert ding.remind_type == 1 and reds[0].code in ding.content
    red_post = next(d for d in world.emulator.to("cid_leaders", "group") if "红色督办单" in d.text)
    assert "黄色督办单至今未读" in red_post.text and "住建" in red_post.text
    named = red_post.text.split("黄色督办单至今未读")[1].splitlines()[0]
    assert "吴立新" not in named  # the signer was sent the draft, not the notice: never named as its reader


async def test_duban_run_lists_refused_people_in_healthz_and_counts_in_metrics(dingtalk: Emulator,
                                                                               tmp_path: Path) -> None:
    dingtalk.invalid_users.add(HEAD)
    service = Service(Settings(database_url=f"sqlite:///{tmp_path}/run.db", roster_file=ROSTER),
                      dingtalk_settings(dingtalk), RunSettings(http_port=0), FakeClock(START))
    await service.start()
    try:
        await dingtalk.wait_for(lambda: service.stream.connected)
        await dingtalk.push_frame(dingtalk.robot_message("交办 县住建局 燃气隐患排查 截止12月10日",
                                                         sender="u_xianzhang", conversation_id="cid_all_units"))
        await dingtalk.wait_for(lambda: len(dingtalk.to(LIAISON, "user")) == 1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
            await dingtalk.wait_for(lambda: bool(service.health()["undeliverable_users"]))
            assert (await http.get("/healthz")).json()["undeliverable_users"] == [HEAD]
            metrics = (await http.get("/metrics")).text
        assert "duban_outbox_undeliverable_total" in metrics and "duban_read_status_calls" in metrics
    finally:
        await service.stop()


async def test_group_and_ding_reads_are_recorded_once_at_the_look_that_saw_them(world: World) -> None:
    await _red(world)
    seen_at = world.clock.now() + timedelta(hours=1)
    world.emulator.receipts.read_group("cid_leaders", HEAD, seen_at)
    world.emulator.receipts.read(HEAD, seen_at)  # opens the DMs and the DINGs
    world.clock.set(seen_at)
    await poll_once(world.engine, world.client, world.clock.now())
    with Session(world.engine) as session:
        rows = {r.id: r for r in session.exec(select(Outbox))}
        receipts = session.exec(select(ReadReceipt).where(ReadReceipt.user_id == HEAD)).all()
    by_kind = {("ding" if rows[r.outbox_id].ding_remind_type else rows[r.outbox_id].target) for r in receipts}
    assert {"group", "ding"} <= by_kind, by_kind
    group_reads = {r.id: r.read_at for r in receipts if rows[r.outbox_id].target == "group"}
    assert all(not r.exact for r in receipts if rows[r.outbox_id].target == "group")  # no read time from a group

    world.clock.advance(hours=13)  # the next look sees the same readers: nothing is rewritten or added
    await poll_once(world.engine, world.client, world.clock.now())
    with Session(world.engine) as session:
        again = session.exec(select(ReadReceipt).where(ReadReceipt.user_id == HEAD)).all()
    assert {r.id: r.read_at for r in again if rows[r.outbox_id].target == "group"} == group_reads
    assert len(again) == len(receipts)
