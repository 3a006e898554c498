"""The bot on DingTalk, end to end: the SDK's frames, handlers and acks over a real websocket, our
OpenAPI client over real HTTP, all against the local emulator (tests/emulator). Time is a
FakeClock; the only real waiting is the network's."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import yaml
from sqlmodel import Session, select

from bot.clock import FakeClock
from bot.dingtalk.inbound import InboundHandler
from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.stream import StreamClient
from bot.outbox import SendPacer
from bot.roster import load_roster
from bot.roster_sync import sync_from_settings, sync_roster
from bot.run import RunSettings, Service
from bot.settings import Settings
from bot.simulation import ROSTER
from bot.transport import SendError
from handlers.incoming import Incoming
from message_templates.reply import Reply
from storage.db import create_schema, make_engine, transaction
from storage.models import OutboxStatus, Person, TaskStatus, Unit
from storage.outbox import COUNTERS, enqueue
from storage.tz import shanghai
from tests.emulator import Department, Emulator, Fault, OrgUser
from tests.helpers import START, World, dingtalk_settings, running

BATCH_SEND = "/v1.0/robot/oToMessages/batchSend"
GROUP_SEND = "/v1.0/robot/groupMessages/send"
OFFLINE = "http://127.0.0.1:9"  # nothing listens there: connecting is refused
DTMD_LINK = re.compile(r"\[(?P<label>[^\]]+)\]\(dtmd://dingtalkclient/sendMessage\?content=(?P<content>[^)]+)\)")


async def test_assign_in_a_group_then_acknowledge_by_tapping_the_link(world: World) -> None:
    emulator = world.emulator
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_all_units")

    [task] = world.tasks()
    [confirmation] = emulator.to("cid_all_units", "webhook")
    assert confirmation.at_user_ids == ("u_zhujian",)  # the head is @-mentioned in the group
    assert task.code in confirmation.text and "@u_zhujian" in confirmation.text

    assert await world.deliver() == 1  # head and liaison get the same DM: one batchSend
    [call] = emulator.calls(BATCH_SEND)
    assert call.body["userIds"] == ["u_zhujian", "u_zhujian_ll"] and call.body["msgKey"] == "sampleMarkdown"
    [dm] = emulator.to("u_zhujian", "user")
    links = {m["label"]: unquote(m["content"]) for m in DTMD_LINK.finditer(dm.text)}
    assert links["签收"] == f"签收 {task.code}"

    world.clock.advance(minutes=5)
    await world.say("u_zhujian", links["签收"])  # what the DingTalk client sends when the link is tapped

    [task] = world.tasks()
    assert task.status == TaskStatus.IN_PROGRESS and task.acknowledged_at == world.clock.now()
    [answer] = emulator.to("cidu_zhujiansingle", "webhook")
    assert task.code in answer.text


async def test_the_client_reconnects_after_disconnect_and_after_a_dropped_socket(world: World) -> None:
    await world.emulator.disconnect()
    await world.emulator.wait_for(lambda: world.stream.connections == 2 and world.stream.connected)
    await world.say("u_xianzhang", "交办 县应急局 防汛物资清点 截止12月4日", group="cid_leaders")

    await world.emulator.drop_stream()
    await world.emulator.wait_for(lambda: world.stream.connections == 3 and world.stream.connected)
    await world.say("u_xianzhang", "交办 县教育局 校舍安全检查 截止12月4日", group="cid_leaders")

    assert [t.title for t in world.tasks()] == ["防汛物资清点", "校舍安全检查"]
    assert len(world.emulator.calls("/v1.0/gateway/connections/open")) == 3  # a fresh ticket each time


async def test_a_redelivered_frame_changes_state_once(world: World) -> None:
    frame = world.emulator.robot_message("交办 县住建局 燃气隐患排查 截止12月10日", sender="u_xianzhang",
                                         conversation_id="cid_all_units")
    await world.push(frame)
    await world.push(frame)  # DingTalk sends it again, acked or not

    assert world.emulator.acked(frame) == 2
    assert len(world.tasks()) == 1
    assert len(world.emulator.to("cid_all_units", "webhook")) == 1
    assert [row.recipient for row in world.outbox()] == ["u_zhujian", "u_zhujian_ll"]


async def test_a_reply_that_never_went_out_is_sent_when_dingtalk_redelivers_the_message(
        dingtalk: Emulator, tmp_path: Path) -> None:
    async with running(dingtalk, tmp_path, outbox=False) as world:
        frame = dingtalk.robot_message("交办 县住建局 燃气隐患排查 截止12月10日", sender="u_xianzhang",
                                       conversation_id="cid_all_units")
        dingtalk.fail_next("/robot/sendBySession", Fault.SERVER_ERROR, count=3)  # every try, and no outbox
        await world.push(frame)
        [task] = world.tasks()  # the command committed; the leader saw nothing
        assert dingtalk.to("cid_all_units", "webhook") == []

        await world.push(frame)  # DingTalk delivers it again
        [confirmation] = dingtalk.to("cid_all_units", "webhook")
        assert "已交办" in confirmation.text and task.code in confirmation.text
        assert confirmation.at_user_ids == ("u_zhujian",)  # the stored reply, @-mention and all
        assert len(world.tasks()) == 1

        await world.push(frame)  # and again: answered now, so nothing
        assert len(dingtalk.to("cid_all_units", "webhook")) == 1
        assert len(world.tasks()) == 1


async def test_a_reply_lost_with_the_process_is_sent_when_dingtalk_redelivers_the_message(world: World) -> None:
    frame = world.emulator.robot_message("交办 县应急局 防汛物资清点 截止12月4日", sender="u_xianzhang",
                                         conversation_id="cid_leaders")
    data = json.loads(frame["data"])
    # the last life handled it — committed the task — and died before the reply went out
    world.bot.handle_sync(Incoming(msg_id=data["msgId"], sender_id="u_xianzhang", text=data["text"]["content"],
                                   conversation_id="cid_leaders", is_group=True))
    [task] = world.tasks()

    await world.push(frame)  # DingTalk redelivers it to this life

    [confirmation] = world.emulator.to("cid_leaders", "webhook")
    assert "已交办" in confirmation.text and task.code in confirmation.text
    assert len(world.tasks()) == 1
    await world.push(frame)
    assert len(world.emulator.to("cid_leaders", "webhook")) == 1


async def test_a_notice_falling_due_while_the_stream_is_down_is_still_sent(world: World) -> None:
    emulator = world.emulator
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止11月24日", group="cid_all_units")
    await world.deliver()

    emulator.fail_next("/v1.0/gateway/connections/open", Fault.SERVER_ERROR, count=1000)
    await emulator.drop_stream()
    await emulator.wait_for(lambda: not world.stream.connected)

    world.clock.set(shanghai(2026, 11, 25, 9, 0))
    assert world.bot.tick() > 0
    assert await world.deliver() > 0
    assert not world.stream.connected
    assert any("蓝色督办单" in d.text for d in emulator.to("u_zhujian", "user"))


async def test_a_reply_the_session_webhook_will_not_take_goes_through_the_outbox(world: World) -> None:
    world.emulator.fail_next("/robot/sendBySession", Fault.SERVER_ERROR, count=3)  # every retry of it
    await world.say("u_zhujian", "我的")

    assert world.emulator.to("cidu_zhujiansingle", "webhook") == []
    assert await world.deliver() == 1
    [answer] = world.emulator.to("u_zhujian", "user")
    assert answer.msg_key == "sampleMarkdown"


async def test_a_frame_whose_handling_fails_is_still_acked(dingtalk: Emulator) -> None:
    async def broken(_incoming: Incoming) -> list[Reply]:
        raise RuntimeError("a bug in a handler")

    settings = dingtalk_settings(dingtalk)
    async with OpenApiClient(settings) as client:
        handler = InboundHandler(broken, client, FakeClock(START))
        stream = StreamClient(settings, handler)
        running = asyncio.create_task(stream.start())
        await dingtalk.wait_for(lambda: stream.connected)
        frame = dingtalk.robot_message("帮助", sender="u_zhujian")
        await dingtalk.push_frame(frame)
        await dingtalk.wait_for(lambda: dingtalk.acked(frame) == 1)
        assert (handler.handled, handler.failed) == (0, 1)
        assert dingtalk.acks[-1]["code"] == 200
        await stream.stop()
        await running
        await stream.aclose()


@pytest.mark.parametrize(("fault", "path", "retry_after"), [
    (Fault.SERVER_ERROR, GROUP_SEND, None),
    (Fault.TOO_MANY, GROUP_SEND, 7.0),
    (Fault.THROTTLED, GROUP_SEND, None),  # 403 Forbidden.AccessDenied.QpsLimitForApi
    (Fault.THROTTLED, "/media/upload", None),  # errcode 90002
    (Fault.TIMEOUT, GROUP_SEND, None),
    (Fault.DROP, GROUP_SEND, None),
])
async def test_dingtalk_failures_that_pass_are_transient(dingtalk: Emulator, tmp_path: Path, fault: Fault,
                                                         path: str, retry_after: float | None) -> None:
    picture = tmp_path / "chart.png"
    picture.write_bytes(b"\x89PNG not really")
    dingtalk.fail_next(path, fault, retry_after=retry_after or 1.0)
    async with OpenApiClient(dingtalk_settings(dingtalk)) as client:
        with pytest.raises(SendError) as failure:
            if path == GROUP_SEND:
                await client.send_group("cid_leaders", "sampleText", {"content": "x"})
            else:
                await client.upload_media(picture, "image")
    assert failure.value.transient
    assert failure.value.retry_after == retry_after
    # no answer after the request went out: DingTalk may have acted on it (not for an upload, which
    # delivers nothing by itself — but the client cannot tell, the transport can)
    assert failure.value.maybe_delivered == (fault in (Fault.TIMEOUT, Fault.DROP))
    assert "access_token" not in str(failure.value)  # errors are logged: no token in them


async def test_a_refused_connection_is_surely_not_sent(dingtalk: Emulator) -> None:
    async with OpenApiClient(dingtalk_settings(dingtalk, oapi_endpoint=OFFLINE)) as client:
        with pytest.raises(SendError) as failure:
            await client.get_user("u_zhujian")
    assert failure.value.transient and not failure.value.maybe_delivered


async def test_an_answer_after_our_timeout_is_sent_again_and_flagged_as_a_possible_duplicate(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    with transaction(world.engine) as session:
        row = enqueue(session, Reply(title="通知", text="迟到的回答"), target="group", recipient="cid_leaders",
                      deliver_after=START, now=START)
        session.flush()
        row_id = row.id
    world.emulator.fail_next(GROUP_SEND, Fault.LATE)
    before = COUNTERS.unknown_outcome

    await world.deliver_all()

    # DingTalk delivered it, we never heard: sent again (a notice must not be lost), and said so
    assert [d.text for d in world.emulator.to("cid_leaders", "group")] == ["迟到的回答", "迟到的回答"]
    assert COUNTERS.unknown_outcome == before + 1
    assert [r for r in caplog.records if "possible duplicate" in r.getMessage() and f"row={row_id} " in r.getMessage()]


async def test_dingtalk_refusals_are_permanent(dingtalk: Emulator) -> None:
    dingtalk.invalid_users.add("u_gone")
    async with OpenApiClient(dingtalk_settings(dingtalk)) as client:
        result = await client.batch_send_users(["u_zhujian", "u_gone"], "sampleText", {"content": "x"})
        assert result.invalid == ("u_gone",)
        with pytest.raises(SendError) as failure:
            await client.send_group("", "sampleText", {"content": "x"})
        assert not failure.value.transient and "HTTP 400" in str(failure.value)


async def test_refused_app_credentials_hold_the_notices_back_until_fixed_never_kill_them(world: World) -> None:
    """Wrong credentials on the first morning: every send fails alike, and it is not the message's
    fault. The rows wait (no 督查室 dead letter, no lost notice) and go out once the secret is fixed."""
    with transaction(world.engine) as session:
        enqueue(session, Reply(title="蓝色督办单", text="请尽快办结"), target="user", recipient="u_zhujian",
                deliver_after=START, now=START)
    secret = world.emulator.client_secret
    world.emulator.client_secret = "rotated-by-someone"
    world.emulator.expire_tokens()
    for hour in range(1, 25):  # a whole day of retries with the wrong secret
        await world.deliver()
        world.clock.set(START + timedelta(hours=hour))
    [row] = world.outbox()
    assert row.status == OutboxStatus.PENDING and "钉钉拒绝了应用凭据" in row.last_error
    assert world.emulator.to("u_zhujian", "user") == []

    world.emulator.client_secret = secret  # the operator fixes it
    await world.deliver_all()
    assert [m.text for m in world.emulator.to("u_zhujian", "user")] == ["请尽快办结"]
    assert [r.status for r in world.outbox()] == [OutboxStatus.SENT]  # and no dead letter was queued


async def test_with_30_percent_of_sends_failing_every_row_arrives_exactly_once(world: World) -> None:
    emulator = world.emulator
    units = ["县住建局", "县应急局", "县市场监管局", "县教育局", "城关镇", "文星街道"]
    for n, unit in enumerate(units * 2):
        replies = await world.bot.handle(Incoming(msg_id=f"m{n}", sender_id="u_xianzhang", text=(
            f"交办 {unit} 专项检查第{n}项 截止11月25日"), conversation_id="cid_leaders", is_group=True))
        assert "已交办" in replies[0].title
    people = [f"u_{i:02d}" for i in range(20)]
    with transaction(world.engine) as session:  # three messages each, which must arrive in order
        for n in range(3):
            enqueue(session, Reply(title=f"通报{n}", text=f"全县通报第{n}期"), target="group",
                    recipient="cid_all_units", deliver_after=START + timedelta(seconds=n), now=START)
            for person in people:
                enqueue(session, Reply(title="提醒", text=f"{person} 第{n}条"), target="user", recipient=person,
                        deliver_after=START + timedelta(seconds=n), now=START)
    world.clock.set(shanghai(2026, 11, 26, 10))
    world.bot.tick()  # courtesy pings and blue notices for all twelve
    emulator.fail_randomly(0.3, [Fault.SERVER_ERROR, Fault.TOO_MANY, Fault.TIMEOUT, Fault.DROP])

    rounds = await world.deliver_all()

    rows = world.outbox()
    assert {row.status for row in rows} == {OutboxStatus.SENT}
    for row in rows:
        channel = "user" if row.target == "user" else "group"
        copies = [d for d in emulator.to(row.recipient, channel) if row.text in d.text]
        assert len(copies) == 1, f"row {row.id} to {row.recipient} arrived {len(copies)} times"
    for recipient, channel in [("cid_all_units", "group"), *((p, "user") for p in people)]:
        texts = [d.text for d in emulator.to(recipient, channel)]
        assert texts == sorted(texts) and len(texts) == 3  # 第0 before 第1 before 第2
    retries = sum(row.attempts - 1 for row in rows)
    calls = len(emulator.calls(BATCH_SEND)) + len(emulator.calls(GROUP_SEND))
    assert emulator.faults_injected and retries > 0
    print(f"\n30% faults: {len(rows)} outbox rows, {calls} send calls, {len(emulator.faults_injected)} faults "
          f"injected, {retries} retries over {rounds} rounds; every row delivered exactly once")


async def test_the_pacer_keeps_under_dingtalks_rate_limit(world: World) -> None:
    emulator = world.emulator
    emulator.limit_rate(25)

    def broadcast(tag: str) -> None:
        with transaction(world.engine) as session:
            for n in range(30):
                enqueue(session, Reply(title="通知", text=f"{tag} 第{n}条"), target="user", recipient=f"u_{n:02d}",
                        deliver_after=world.clock.now(), now=world.clock.now())

    broadcast("paced")
    await world.deliver(pacer=SendPacer(per_second=10))  # a bucket of 10 plus 10/s: at most 20 in any second
    assert emulator.faults_injected == []
    assert len(emulator.calls(BATCH_SEND)) == 30

    broadcast("unpaced")
    await world.deliver()
    assert {kind for _, kind in emulator.faults_injected} == {Fault.TOO_MANY}  # the limit is real


async def test_a_rejected_token_is_refreshed_once(world: World) -> None:
    with transaction(world.engine) as session:
        enqueue(session, Reply(title="通知", text="一"), target="user", recipient="u_zhujian",
                deliver_after=START, now=START)
    await world.deliver()
    world.emulator.expire_tokens()
    with transaction(world.engine) as session:
        enqueue(session, Reply(title="通知", text="二"), target="group", recipient="cid_leaders",
                deliver_after=START, now=START)
    assert await world.deliver() == 1
    assert len(world.emulator.calls("/v1.0/oauth2/accessToken")) == 2
    assert [c.path for c in world.emulator.requests[-3:]] == [GROUP_SEND, "/v1.0/oauth2/accessToken", GROUP_SEND]


async def test_files_are_uploaded_then_sent(world: World, tmp_path: Path) -> None:
    ledger = tmp_path / "台账.xlsx"
    ledger.write_bytes(b"PK\x03\x04 not really excel")
    with transaction(world.engine) as session:
        enqueue(session, Reply(title="台账", text="本周台账见附件", file_path=str(ledger)), target="group",
                recipient="cid_leaders", deliver_after=START, now=START)
    assert await world.deliver() == 1
    [caption, attachment] = world.emulator.to("cid_leaders", "group")
    assert caption.msg_key == "sampleMarkdown" and attachment.msg_key == "sampleFile"
    assert world.emulator.media[attachment.param["mediaId"]] == "台账.xlsx"
    assert attachment.param["fileType"] == "xlsx"


async def test_roster_sync_shows_the_diff_and_writes_only_when_told(dingtalk: Emulator, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    roster = tmp_path / "roster.yaml"
    shutil.copy(ROSTER, roster)
    dingtalk.departments = {d.dept_id: d for d in [
        Department(10, "县住建局", 1, ["u_zhujian2"]),  # a new head
        Department(11, "县应急局", 1, ["u_yingji"]),
        Department(12, "县市场监管局", 1, ["u_shijian"]),  # her title changed
        Department(13, "县教育局", 1, ["u_jiaoyu"]),
        Department(14, "县文旅局", 1, ["u_wenlv"]),  # a new unit
        Department(15, "县政府办", 1, ["u_zhuren"]),  # its manager is an official, not a unit head
        Department(16, "综合股", 11, ["u_yingji_ll"]),  # below a unit: not a unit itself
    ]}  # 城关镇 and 文星街道 are gone
    dingtalk.users = {u.userid: u for u in [
        OrgUser("u_zhujian2", "李新民", "局长", [10]), OrgUser("u_yingji", "陈志强", "局长", [11]),
        OrgUser("u_shijian", "黄丽", "党组书记、局长", [12]), OrgUser("u_jiaoyu", "林涛", "局长", [13]),
        OrgUser("u_wenlv", "张文", "局长", [14]), OrgUser("u_zhuren", "钱文华", "县政府办主任", [15]),
        OrgUser("u_yingji_ll", "刘洋", "综合股股长", [16]),
    ]}
    engine = make_engine(f"sqlite:///{tmp_path}/sync.db")
    create_schema(engine)
    before = roster.read_text(encoding="utf-8")

    async with OpenApiClient(dingtalk_settings(dingtalk)) as client:
        diff = await sync_roster(client, roster, engine, yes=False)
        assert roster.read_text(encoding="utf-8") == before
        with Session(engine) as session:
            assert session.exec(select(Unit)).first() is None
        text = diff.render()
        assert "+ 单位 县文旅局，负责人 张文（u_wenlv）" in text
        assert "~ 单位 县住建局 负责人：王建华（u_zhujian）→ 李新民（u_zhujian2）" in text
        assert "~ 人员 u_shijian：黄丽 局长 → 黄丽 党组书记、局长" in text
        assert "- 单位 城关镇" in text and "- 单位 文星街道" in text
        assert "- 人员 王建华（u_zhujian）" in text
        assert "! 部门 县政府办（15）主管 钱文华 已是县政府办主任 钱文华" in text

    # what `duban roster sync --yes` does: everything from the environment
    monkeypatch.setenv("DUBAN_DINGTALK_CLIENT_ID", dingtalk.client_id)
    monkeypatch.setenv("DUBAN_DINGTALK_CLIENT_SECRET", dingtalk.client_secret)
    monkeypatch.setenv("DUBAN_DINGTALK_OAPI_ENDPOINT", dingtalk.url)
    settings = Settings(database_url=f"sqlite:///{tmp_path}/sync.db", roster_file=roster)
    assert await sync_from_settings(settings, yes=True)

    written = load_roster(roster)
    assert [u.name for u in written.units] == ["县住建局", "县应急局", "县市场监管局", "县教育局", "县文旅局"]
    assert written.units[0].aliases == ["住建局", "住建"] and written.units[0].liaisons[0].id == "u_zhujian_ll"
    assert (tmp_path / "roster.yaml.bak").read_text(encoding="utf-8") == before
    assert yaml.safe_load(roster.read_text(encoding="utf-8"))["groups"][0]["conversation_id"] == "cid_leaders"
    with Session(engine) as session:
        housing = session.exec(select(Unit).where(Unit.name == "县住建局")).one()
        assert housing.head_user_id == "u_zhujian2"
        assert session.get(Person, "u_wenlv").name == "张文"
    engine.dispose()


async def test_duban_run_serves_health_metrics_and_stops_cleanly(dingtalk: Emulator, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/run.db"
    clock = FakeClock(START)
    service = Service(Settings(database_url=url, roster_file=ROSTER), dingtalk_settings(dingtalk),
                      RunSettings(http_port=0), clock)
    await service.start()
    try:
        await dingtalk.wait_for(lambda: service.stream.connected)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
            health = (await http.get("/healthz")).json()
            assert health["status"] == "ok" and health["stream_connected"] and health["database"]

            frame = dingtalk.robot_message("交办 县住建局 燃气隐患排查 截止12月10日", sender="u_xianzhang",
                                           conversation_id="cid_all_units")
            await dingtalk.push_frame(frame)
            await dingtalk.wait_for(lambda: len(dingtalk.to("u_zhujian", "user")) == 1)  # the sender woke at once
            await dingtalk.wait_for(lambda: dingtalk.acked(frame) > 0)  # counted before the ack goes out

            metrics = (await http.get("/metrics")).text
            assert 'duban_inbound_messages_total{result="handled"} 1.0' in metrics
            assert f'duban_outbox_possible_duplicates_total{{cause="unknown_outcome"}} {COUNTERS.unknown_outcome:.1f}' \
                in metrics
            assert 'duban_outbox_possible_duplicates_total{cause="lease_expired"}' in metrics
            assert "duban_stream_connected 1.0" in metrics

            dingtalk.fail_next("/v1.0/gateway/connections/open", Fault.SERVER_ERROR, count=1000)
            await dingtalk.drop_stream()
            await dingtalk.wait_for(lambda: not service.stream.connected)
            response = await http.get("/healthz")
            assert response.status_code == 503 and response.json()["stream_connected"] is False
    finally:
        with transaction(service.engine) as session:  # due as the service stops: the last round sends it
            enqueue(session, Reply(title="通知", text="关机前"), target="user", recipient="u_yingji",
                    deliver_after=clock.now(), now=clock.now())
        await service.stop()
    assert [d.text for d in dingtalk.to("u_yingji", "user")] == ["关机前"]
    assert dingtalk.live_connections == 0


async def test_duban_run_stops_while_the_database_refuses_to_record_a_delivery(
        dingtalk: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A message went out, then the database went away before it was recorded: the round retries
    the record (never the send) — until the stop, which no longer waits for it for ever."""
    from sqlalchemy.exc import OperationalError

    import bot.outbox
    import bot.run

    def away(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("UPDATE outbox", {}, Exception("server closed the connection"))

    monkeypatch.setattr(bot.run, "STOP_SENDER_SECONDS", 0.5)
    monkeypatch.setattr(bot.outbox, "MARK_RETRY_FIRST_SECONDS", 0.05)
    service = Service(Settings(database_url=f"sqlite:///{tmp_path}/run.db", roster_file=ROSTER),
                      dingtalk_settings(dingtalk), RunSettings(http_port=0), FakeClock(START))
    await service.start()
    with transaction(service.engine) as session:
        enqueue(session, Reply(title="通知", text="已送达未记录"), target="user", recipient="u_yingji",
                deliver_after=START, now=START)
    monkeypatch.setattr(bot.outbox, "mark_sent", away)
    service._wake.set()
    await dingtalk.wait_for(lambda: len(dingtalk.to("u_yingji", "user")) == 1)
    await asyncio.wait_for(service.stop(), 30)
    assert [d.text for d in dingtalk.to("u_yingji", "user")] == ["已送达未记录"]  # not sent again on the way out
    assert "delivered but could not be recorded before stopping" in caplog.text
