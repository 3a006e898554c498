"""Issue 12, the 09:00 burst end to end on the emulator: a head whose many blue notices fall due at
one moment gets one digest and one file holding every notice's whole text — two messages, not
dozens — and each notice is still sent once, with the digest's read-receipt key, so that a read
of the digest shows as a read of each notice."""

from __future__ import annotations

import io
import itertools
from datetime import timedelta

from openpyxl import load_workbook
from sqlmodel import Session, select

from bot.outbox import MAX_FOLDED_TEXT_BYTES, MAX_MESSAGES_PER_MOMENT
from bot.receipts_job import poll_once
from bot.transport import SendError
from handlers.incoming import Incoming
from storage.models import Notice, NoticeKind, OutboxStatus, ReadReceipt, ReadWatch
from storage.outbox import COUNTERS
from storage.tz import shanghai
from tests.helpers import HEAD, World

TASKS = 40  # blue notices of ~800 bytes each: far more than two messages hold
NINE = shanghai(2026, 11, 25, 9, 0)  # the working day after the deadline: the blue notices go out
_ids = itertools.count(1)


async def _burst(world: World) -> list:
    """TASKS tasks of 县住建局 whose deadline passed: 09:00 the next working day, their blue notices."""
    for n in range(TASKS):
        await world.bot.handle(Incoming(msg_id=f"burst-{next(_ids)}", sender_id="u_xianzhang",
                                        text=f"交办 县住建局 第{n + 1}项隐患排查 截止11月24日",
                                        conversation_id="cid_all_units", is_group=True))
    await world.deliver_all()
    world.clock.set(NINE)
    before = len(world.emulator.deliveries)
    assert world.bot.tick() > 0
    await world.deliver_all()
    return world.emulator.deliveries[before:]


async def test_a_head_gets_one_digest_and_the_whole_text_and_each_notice_counts_as_read(world: World) -> None:
    sent = await _burst(world)

    to_head = [d for d in sent if d.to == HEAD]
    assert [d.msg_key for d in to_head] == ["sampleFile", "sampleMarkdown"]
    attached, digest = to_head
    # the 40 blue notices and, due at the same moment, the 40 签收提醒 of the tasks not yet acknowledged
    assert f"共{2 * TASKS}条" in digest.param["title"]
    assert f"🔵 蓝色督办单 **{TASKS}**　📨 签收提醒 **{TASKS}**" in digest.text
    assert attached.param["fileName"].endswith(".xlsx") and attached.param["fileName"] in digest.text
    assert attached.param["mediaId"] in world.emulator.media  # uploaded before it was sent
    assert len(digest.text.encode()) < MAX_FOLDED_TEXT_BYTES

    with Session(world.engine) as session:
        blues = list(session.exec(select(Notice).where(Notice.kind == NoticeKind.BLUE)))
        watched = {w.outbox_id for w in session.exec(select(ReadWatch))}
    rows = [r for r in world.outbox() if r.recipient == HEAD and r.notice_id in {n.id for n in blues}]
    assert len(blues) == TASKS and len(rows) == TASKS
    digested = [r for r in world.outbox() if r.recipient == HEAD and r.deliver_after == world.clock.now()]
    assert len(digested) == 2 * TASKS and all(r.receipt_key == rows[0].receipt_key for r in digested)
    # without the digest these would have been more than two folded messages
    assert sum(len(r.text.encode()) for r in rows) > MAX_MESSAGES_PER_MOMENT * MAX_FOLDED_TEXT_BYTES
    assert all(r.status == OutboxStatus.SENT and r.attempts == 1 for r in rows)
    assert len({r.receipt_key for r in rows}) == 1 and rows[0].receipt_key is not None
    assert {r.id for r in rows} <= watched  # each notice's readers are asked for, by the digest's key

    read_at = shanghai(2026, 11, 25, 9, 14)
    world.emulator.receipts.read(HEAD, read_at)
    world.clock.set(read_at + timedelta(minutes=10))
    await poll_once(world.engine, world.client, world.clock.now())
    with Session(world.engine) as session:
        reads = session.exec(select(ReadReceipt).where(ReadReceipt.user_id == HEAD)).all()
    assert {r.notice_id for r in reads} == {n.id for n in blues}
    assert {r.read_at for r in reads} == {read_at}


async def test_the_attached_file_holds_every_notice_whole(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    uploaded: dict[str, bytes] = {}
    upload = world.client.upload_media

    async def keep(path, kind):  # type: ignore[no-untyped-def]
        uploaded[path.name] = path.read_bytes()
        return await upload(path, kind)

    monkeypatch.setattr(world.client, "upload_media", keep)
    sent = await _burst(world)

    [attached] = [d for d in sent if d.to == HEAD and d.msg_key == "sampleFile"]
    sheet = load_workbook(io.BytesIO(uploaded[attached.param["fileName"]])).active
    [header, *lines] = list(sheet.iter_rows(values_only=True))
    rows = [r for r in world.outbox() if r.recipient == HEAD and r.deliver_after == world.clock.now()]
    assert header == ("序号", "标题", "全文")
    assert [(title, text) for _, title, text in lines] == [(r.title, r.text) for r in rows]  # verbatim
    blues = [text for _, title, text in lines if title.startswith("🔵 蓝色督办单")]
    assert len(blues) == TASKS and all("扣1分" in text for text in blues)


async def test_a_digest_refused_after_its_file_went_out_is_resent_whole_and_flagged(
        world: World, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    send = world.client.batch_send_users
    refusals = iter([SendError("batchSend: HTTP 503", transient=True)])

    async def refuse_the_digest_once(user_ids, msg_key, param):  # type: ignore[no-untyped-def]
        if msg_key == "sampleMarkdown" and HEAD in user_ids and "汇总" in param["title"] \
                and (refusal := next(refusals, None)):
            raise refusal
        return await send(user_ids, msg_key, param)

    monkeypatch.setattr(world.client, "batch_send_users", refuse_the_digest_once)
    before = COUNTERS.unknown_outcome
    sent = await _burst(world)

    # the file went, the digest did not: both go again (the file twice: flagged, never lost)
    assert [d.msg_key for d in sent if d.to == HEAD] == ["sampleFile", "sampleFile", "sampleMarkdown"]
    rows = [r for r in world.outbox() if r.recipient == HEAD and r.deliver_after == NINE]
    assert len(rows) == 2 * TASKS and all(r.status == OutboxStatus.SENT and r.attempts == 2 for r in rows)
    assert COUNTERS.unknown_outcome == before + len(rows)
    assert any("possible duplicate" in r.getMessage() and "after sampleFile went out" in r.getMessage()
               for r in caplog.records)
