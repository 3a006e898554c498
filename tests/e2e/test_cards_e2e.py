"""Interactive cards end to end: the real SDK's stream and our OpenAPI client against the emulator,
which shows cards and pushes taps in DingTalk's wire format (tests/emulator/cards.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from storage.models import AuditEvent, Notice, NoticeKind, NoticeStatus, ProgressReport, TaskStatus
from tests.emulator import Emulator

ASSIGN = "交办 县住建局 燃气隐患排查 截止12月10日"


@pytest.fixture
async def world(dingtalk: Emulator, tmp_path: Path) -> AsyncIterator:
    from tests.helpers import running

    async with running(dingtalk, tmp_path, cards=True) as world:
        yield world


async def tap(world, card, label: str, user_id: str) -> dict:
    frame = world.emulator.cards.tap(card.out_track_id, label, user_id=user_id)
    await world.push(frame)
    await world.deliver()
    return frame


def texts(world, to: str) -> list[str]:
    return [d.text for d in world.emulator.to(to)]


def audit_count(world) -> int:
    with Session(world.engine) as session:
        return len(session.exec(select(AuditEvent)).all())


async def test_a_task_card_is_tapped_through_acknowledge_and_progress(world) -> None:
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

    frame = await tap(world, card, "签收", "u_zhujian")
    [task] = world.tasks()
    assert task.status == TaskStatus.IN_PROGRESS and task.acknowledged_at == world.clock.now()
    answered = texts(world, "u_zhujian")
    assert any("已签收" in t for t in answered)

    before = (audit_count(world), len(emulator.deliveries))
    await world.push(frame)  # DingTalk redelivers the same callback
    await world.deliver()
    assert (audit_count(world), len(emulator.deliveries)) == before

    world.clock.advance(minutes=1)
    await tap(world, card, "签收", "u_zhujian")  # a second tap on a spent button: one sentence, no change
    assert audit_count(world) == before[0]
    [spent] = emulator.deliveries[before[1]:]
    assert spent.to == "u_zhujian" and "不用重复签收" in spent.text

    await tap(world, card, "汇报进展", "u_zhujian")
    assert "请回复进展情况" in emulator.deliveries[-1].text
    assert world.tasks()[0].last_progress_at is None  # asked, nothing recorded yet
    world.clock.advance(minutes=3)
    await world.say("u_zhujian", "已完成城区排查 60%")  # the words, typed in the same chat
    [task] = world.tasks()
    assert task.progress_percent == 60 and task.last_progress_at == world.clock.now()
    with Session(world.engine) as session:
        [report] = session.exec(select(ProgressReport)).all()
    assert report.text == "已完成城区排查" and report.author_id == "u_zhujian"

    await world.say("u_zhujian", "城区已全部完成")  # the question was answered: not taken again
    assert world.tasks()[0].progress_percent == 60
    assert "不认识" in emulator.to("cidu_zhujiansingle", "webhook")[-1].text or \
        "命令" in emulator.to("cidu_zhujiansingle", "webhook")[-1].text


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


async def test_a_yellow_draft_is_signed_and_the_task_closed_by_taps(world) -> None:
    emulator = world.emulator
    await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
    await world.deliver()
    [card] = emulator.cards.on("user", "u_zhujian")
    await tap(world, card, "签收", "u_zhujian")

    for _ in range(40):  # day by day past the deadline, until the yellow draft waits for its signer
        world.clock.advance(days=1)
        world.bot.tick()
        await world.deliver()
        if any("签发" in c.labels for c in emulator.cards.on("user", "u_changwu")):
            break
    [draft_card] = [c for c in emulator.cards.on("user", "u_changwu") if "签发" in c.labels]
    assert draft_card.labels == ["签发", "暂缓"]

    await tap(world, draft_card, "签发", "u_zhujian")  # a unit head may not sign
    with Session(world.engine) as session:
        [draft] = session.exec(select(Notice).where(Notice.kind == NoticeKind.YELLOW)).all()
    assert draft.status == NoticeStatus.DRAFT

    await tap(world, draft_card, "签发", "u_changwu")
    with Session(world.engine) as session:
        draft = session.get(Notice, draft.id)
    assert draft.status == NoticeStatus.ISSUED and draft.signed_by == "u_changwu"

    await tap(world, card, "办结", "u_zhujian")
    await world.say("u_zhujian", "已完成全部隐患整改 台账已归档")
    assert world.tasks()[0].status == TaskStatus.REPORTED_DONE
    await world.deliver()
    [review] = [c for c in emulator.cards.on("user", "u_ducha1") if "销号" in c.labels]
    assert review.labels == ["销号", "退回"]
    await tap(world, review, "销号", "u_ducha1")
    assert world.tasks()[0].status == TaskStatus.CLOSED


async def test_with_cards_off_messages_are_markdown_with_links(dingtalk: Emulator, tmp_path: Path) -> None:
    from tests.helpers import running

    async with running(dingtalk, tmp_path, cards=False) as world:
        await world.say("u_xianzhang", ASSIGN, group="cid_all_units")
        await world.deliver()
    assert dingtalk.cards.cards == {}
    [call] = dingtalk.calls("/v1.0/robot/oToMessages/batchSend")
    assert call.body["msgKey"] == "sampleMarkdown"
    assert "dtmd://dingtalkclient/sendMessage" in json.loads(call.body["msgParam"])["text"]
