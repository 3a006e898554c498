"""Interactive cards end to end: the real SDK's stream and our OpenAPI client against the emulator,
which shows cards and pushes taps in DingTalk's wire format (tests/emulator/cards.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from bot.receipts_job import poll_once
from storage.models import (
    AuditEvent,
    Notice,
    NoticeKind,
    NoticeStatus,
    Outbox,
    OutboxStatus,
    ProgressReport,
    TaskStatus,
)
from storage.tz import shanghai
from tests.emulator import Emulator, Fault
from tests.helpers import HEAD, OFFICE

ASSIGN = "交办 县住建局 燃气隐患排查 截止12月10日"


@pytest.fixture
async def world(dingtalk: Emulator, tmp_path: Path) -> AsyncIterator:
    from tests.helpers import running

    async with running(dingtalk, tmp_path, cards=True) as world:
        yield world


async def tap(world, card, label: str, user_id: str, *, stale: bool = False) -> dict:
    frame = world.emulator.cards.tap(card.out_track_id, label, user_id=user_id, stale=stale)
    await world.push(frame)
    await world.deliver()
    return frame


def texts(world, to: str) -> list[str]:
    return [d.text for d in world.emulator.to(to)]


def audit_count(world) -> int:
    with Session(world.engine) as session:
        return len(session.exec(select(AuditEvent)).all())


async def test_a_task_is_tapped_from_assignment_to_closing_and_its_cards_stay_current(world) -> None:
    emulator = world.emulator
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    [task] = world.tasks()
    await world.deliver()

    [card] = emulator.cards.on("user", "u_zhujian")
    assert card.callback_type == "STREAM" and card.template_id.startswith("1366a1eb-")
    assert card.labels == ["签收", "汇报进展", "申请延期", "办结"]
    assert task.code in card.markdown and card.data["title"]
    [call, _] = emulator.calls("/v1.0/card/instances/createAndDeliver")  # head and liaison: one call each
    assert call.body["openSpaceId"] == "dtv1.card//IM_ROBOT.u_zhujian"
    assert emulator.calls("/v1.0/robot/oToMessages/batchSend") == []

    # 签收, by a tap: the task moves on, and the card no longer offers 签收
    frame = await tap(world, card, "签收", "u_zhujian")
    [task] = world.tasks()
    assert task.status == TaskStatus.IN_PROGRESS and task.acknowledged_at == world.clock.now()
    assert any("已签收" in t for t in texts(world, "u_zhujian"))
    assert card.labels == ["汇报进展", "申请延期", "办结"]
    assert "办理中" in card.markdown and "⚪未督办" in card.markdown and "签收" in card.markdown
    [liaison_card] = emulator.cards.on("user", "u_zhujian_ll")
    assert liaison_card.labels == card.labels  # every card shown about the task is current

    before = (audit_count(world), len(emulator.deliveries), card.updates)
    await world.push(frame)  # DingTalk redelivers the same callback
    await world.deliver()
    assert (audit_count(world), len(emulator.deliveries), card.updates) == before

    world.clock.advance(minutes=1)
    await tap(world, card, "签收", "u_zhujian", stale=True)  # a spent button, on a phone not yet redrawn
    assert audit_count(world) == before[0] and card.updates == before[2]
    [spent] = emulator.deliveries[before[1]:]
    assert spent.to == "u_zhujian" and "不用重复签收" in spent.text and "\n" not in spent.text.strip()

    # 汇报进展: the bot asks, the next message in that chat is the progress
    asked = await tap(world, card, "汇报进展", "u_zhujian")
    assert "请回复进展情况" in emulator.deliveries[-1].text
    assert world.tasks()[0].last_progress_at is None
    before = len(emulator.deliveries)
    await world.push(asked)  # the tap redelivered: asked once
    await world.deliver()
    assert len(emulator.deliveries) == before
    world.clock.advance(minutes=3)
    await world.say("u_zhujian", "已完成城区排查 60%")
    await world.deliver()
    [task] = world.tasks()
    assert task.progress_percent == 60 and task.last_progress_at == world.clock.now()
    with Session(world.engine) as session:
        [report] = session.exec(select(ProgressReport)).all()
    assert report.text == "已完成城区排查" and report.author_id == "u_zhujian"
    assert "已完成城区排查" in card.markdown and "60%" in card.markdown

    await world.say("u_zhujian", "城区已全部完成")  # the question was answered: not taken again
    assert world.tasks()[0].progress_percent == 60

    # past the deadline: 申请延期 is gone; the yellow draft waits for the 常务副县长
    for _ in range(40):
        world.clock.advance(days=1)
        world.bot.tick()
        await world.deliver()
        if any("签发" in c.labels for c in emulator.cards.on("user", "u_changwu")):
            break
    assert card.labels == ["汇报进展", "办结"] and "🔵蓝色" in card.markdown
    [draft_card] = [c for c in emulator.cards.on("user", "u_changwu") if "签发" in c.labels]
    assert draft_card.labels == ["签发", "暂缓"]

    await tap(world, draft_card, "签发", "u_zhujian")  # a unit head may not sign
    with Session(world.engine) as session:
        [draft] = session.exec(select(Notice).where(Notice.kind == NoticeKind.YELLOW)).all()
    assert draft.status == NoticeStatus.DRAFT and draft_card.labels == ["签发", "暂缓"]

    await tap(world, draft_card, "签发", "u_changwu")
    with Session(world.engine) as session:
        draft = session.get(Notice, draft.id)
    assert draft.status == NoticeStatus.ISSUED and draft.signed_by == "u_changwu"
    assert draft_card.labels == [] and "已签发" in draft_card.markdown and "吴立新" in draft_card.markdown
    assert "🟡黄色" in card.markdown

    # 办结 by a tap and the words; the 督查室 closes it by a tap
    await tap(world, card, "办结", "u_zhujian")
    await world.say("u_zhujian", "已完成全部隐患整改 台账已归档")
    await world.deliver()
    assert world.tasks()[0].status == TaskStatus.REPORTED_DONE
    assert card.labels == [] and "待销号" in card.markdown
    [review] = [c for c in emulator.cards.on("user", "u_ducha1") if "销号" in c.labels]
    assert review.labels == ["销号", "退回"]
    await tap(world, review, "销号", "u_ducha1")
    assert world.tasks()[0].status == TaskStatus.CLOSED
    assert review.labels == [] and "已销号" in review.markdown and "已销号" in card.markdown

    updates = len(emulator.calls("/v1.0/card/instances"))
    await tap(world, review, "销号", "u_ducha1", stale=True)  # spent: one sentence, nothing changes
    assert world.tasks()[0].status == TaskStatus.CLOSED
    assert len(emulator.calls("/v1.0/card/instances")) == updates
    assert "\n" not in emulator.deliveries[-1].text.strip()


async def test_a_burst_of_changes_costs_one_update_per_card(world) -> None:
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    await world.deliver()
    [card] = world.emulator.cards.on("user", "u_zhujian")
    code = world.tasks()[0].code
    for text in (f"签收 {code}", f"进展 {code} 已摸排 10%", f"进展 {code} 已摸排 30%"):
        await world.say("u_zhujian", text)  # typed: three changes before the sender runs
    puts = len(world.emulator.calls("/v1.0/card/instances"))
    await world.deliver()
    assert len(world.emulator.calls("/v1.0/card/instances")) == puts + 2  # one per card: head's and liaison's
    assert "30%" in card.markdown and card.labels == ["汇报进展", "申请延期", "办结"]


async def test_a_question_expires_after_ten_minutes_and_cancel_ends_it(world) -> None:
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    await world.deliver()
    [card] = world.emulator.cards.on("user", "u_zhujian")

    await tap(world, card, "申请延期", "u_zhujian")
    assert "请回复新期限和理由" in world.emulator.deliveries[-1].text
    await world.say("u_zhujian", "取消")
    assert "已取消" in world.emulator.to("cidu_zhujiansingle", "webhook")[-1].text
    await world.say("u_zhujian", "12月20日 图纸未移交")  # no question open any more: not an extension
    with Session(world.engine) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "extension_requested")).all() == []

    await tap(world, card, "汇报进展", "u_zhujian")
    world.clock.advance(minutes=11)
    await world.say("u_zhujian", "已完成城区排查 60%")
    assert world.tasks()[0].last_progress_at is None

    await tap(world, card, "汇报进展", "u_zhujian")
    await world.say("u_zhujian", f"进展 {world.tasks()[0].code} 全部排查完毕 100%")  # a typed full command
    assert world.tasks()[0].progress_percent == 100


async def test_taps_from_people_who_may_not_act_change_nothing(world) -> None:
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    await world.deliver()
    [card] = world.emulator.cards.on("user", "u_zhujian")
    before = audit_count(world)

    await tap(world, card, "签收", "u_yingji")  # another unit's head, on a forwarded card
    assert world.tasks()[0].status == TaskStatus.ASSIGNED and audit_count(world) == before
    assert "不是交办给您单位的事项" in texts(world, "u_yingji")[-1]

    await tap(world, card, "签收", "u_nobody")  # not in the roster at all
    assert world.tasks()[0].status == TaskStatus.ASSIGNED and audit_count(world) == before


async def test_with_cards_off_messages_are_markdown_with_links(dingtalk: Emulator, tmp_path: Path) -> None:
    from tests.helpers import running

    async with running(dingtalk, tmp_path, cards=False) as world:
        await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
        await world.deliver()
    assert dingtalk.cards.cards == {}
    [call] = dingtalk.calls("/v1.0/robot/oToMessages/batchSend")
    assert call.body["msgKey"] == "sampleMarkdown"
    assert "dtmd://dingtalkclient/sendMessage" in json.loads(call.body["msgParam"])["text"]


async def test_a_tap_is_read_whichever_way_dingtalk_hands_back_the_value(world) -> None:
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    await world.deliver()
    [card] = world.emulator.cards.on("user", "u_zhujian")
    await world.push(world.emulator.cards.tap(card.out_track_id, "签收", user_id="u_zhujian", spread=True))
    assert world.tasks()[0].status == TaskStatus.IN_PROGRESS


async def test_identity_comes_from_the_callback_never_from_the_button(world) -> None:
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    await world.deliver()
    [card] = world.emulator.cards.on("user", "u_zhujian")
    frame = world.emulator.cards.tap(card.out_track_id, "签收", user_id="u_yingji")
    data = json.loads(frame["data"])
    forged = {"cmd": f"签收 {world.tasks()[0].code}", "ask": False, "userId": "u_zhujian", "sender_id": "u_zhujian"}
    data["content"] = json.dumps({"cardPrivateData": {"actionIds": ["b0"], "params": forged}})
    frame["data"] = json.dumps(data, ensure_ascii=False)
    await world.push(frame)
    assert world.tasks()[0].status == TaskStatus.ASSIGNED  # u_yingji tapped: refused


async def test_card_sends_and_updates_survive_dingtalk_failures(world) -> None:
    emulator = world.emulator
    emulator.fail_next("/v1.0/card/instances/createAndDeliver", Fault.SERVER_ERROR)
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    await world.deliver_all()
    [card] = emulator.cards.on("user", "u_zhujian")
    assert len(emulator.to("u_zhujian", "user")) == 1  # the failed create showed nothing; the retry did

    emulator.fail_next("/v1.0/card/instances", Fault.TOO_MANY, count=2)
    await world.say("u_zhujian", f"签收 {world.tasks()[0].code}")
    await world.deliver_all()
    assert card.labels == ["汇报进展", "申请延期", "办结"]
    assert {row.status for row in world.outbox()} == {OutboxStatus.SENT}


async def test_colour_notices_are_messages_with_read_receipts_beside_the_card_updated_in_place(world) -> None:
    """Cards on (production's default): each colour notice reaches the head as one markdown message,
    whose read status DingTalk reports (a card's it never does), while the task's card is updated
    in place; the read shows in 查询, 台账 and the Excel file, and the red notice names the head who
    left the yellow unread."""
    emulator = world.emulator
    world.bot.settings.rules.auto_issue = True  # yellow and red issued at once, unsigned
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止11月24日", group="cid_all_units")
    await world.deliver_all()
    [card] = emulator.cards.on("user", HEAD)
    world.clock.set(shanghai(2026, 11, 25, 9, 0))
    world.bot.tick()
    await world.deliver_all()

    with Session(world.engine) as session:
        [blue] = session.exec(select(Notice).where(Notice.kind == NoticeKind.BLUE)).all()
        [row] = session.exec(select(Outbox).where(Outbox.notice_id == blue.id, Outbox.recipient == HEAD)).all()
    sends = [c for c in emulator.calls("/v1.0/robot/oToMessages/batchSend") if blue.code in c.body["msgParam"]]
    assert len(sends) == 1 and sends[0].body["userIds"] == [HEAD] and sends[0].body["msgKey"] == "sampleMarkdown"
    assert "dtmd://dingtalkclient/sendMessage" in json.loads(sends[0].body["msgParam"])["text"]  # its actions
    assert row.receipt_key and not row.card_key and row.status == OutboxStatus.SENT
    assert not any(blue.code in c.markdown for c in emulator.cards.on("user", HEAD))  # no card for it
    assert "🔵蓝色" in card.markdown  # the task's card, updated in place

    read_at = shanghai(2026, 11, 25, 9, 14)
    assert emulator.receipts.read(HEAD, read_at) >= 1
    world.clock.set(shanghai(2026, 11, 25, 9, 10))
    assert await poll_once(world.engine, world.client, world.clock.now()) >= 1
    code = world.tasks()[0].code
    await world.say(OFFICE, f"查询 {code}")
    await world.say(OFFICE, "台账")
    shown = [d.text for d in emulator.to(f"cid{OFFICE}single", "webhook")]
    assert "已读 11月25日 09:14" in shown[-2] and "已读 11月25日 09:14" in shown[-1], shown[-2:]
    assert "钉钉未回报已读" not in shown[-2]
    await world.say(OFFICE, "台账 导出")
    [export] = [r for r in world.outbox() if r.file_path and r.status == OutboxStatus.PENDING]
    await world.deliver_all()
    [[*_, cell]] = list(load_workbook(str(export.file_path))["督办台账"].iter_rows(min_row=2))
    assert "已读 11月25日 09:14" in cell.value

    for day in range(1, 24):  # yellow, then red; the head reads nothing more
        world.clock.set(shanghai(2026, 11, 25, 9, 0) + timedelta(days=day))
        world.bot.tick()
        await world.deliver_all()
        await poll_once(world.engine, world.client, world.clock.now())
    with Session(world.engine) as session:
        colours = session.exec(select(Notice).where(Notice.kind.in_((NoticeKind.YELLOW, NoticeKind.RED)))).all()
    assert {n.kind for n in colours} == {NoticeKind.YELLOW, NoticeKind.RED}
    for notice in colours:  # one message each, never a card as well
        assert len([c for c in emulator.calls("/v1.0/robot/oToMessages/batchSend")
                    if notice.code in c.body["msgParam"]]) == 1
        assert not any(notice.code in c.markdown for c in emulator.cards.on("user", HEAD))
    assert "🔴红色" in card.markdown
    red_post = next(d for d in emulator.to("cid_leaders", "group") if "红色督办单" in d.text)
    named = red_post.text.split("黄色督办单至今未读")[1].splitlines()[0]
    assert "王建华" in named
