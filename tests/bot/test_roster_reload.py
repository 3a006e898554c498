"""A roster reload is a diff (issue 9): whoever left the roster loses every standing at once, a
removed unit's open tasks stop escalating and go to the 督查室 for 改派, and waiting drafts follow
the signing role to its new holder. Through the real Bot on a simulated clock, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, func, select

from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.settings import DingTalkSettings
from bot.roster_sync import sync_roster
from bot.simulation import ROSTER, Simulation
from bot.transport import OutgoingMessage
from storage.models import Notice, NoticeKind, NoticeStatus, Outbox, ScoreEvent, Task, Unit
from storage.tz import shanghai as sh
from tests.emulator import Department, Emulator, OrgUser
from tests.helpers import LEADER, OFFICE, assign

OFFICE2 = "u_ducha2"
OLD_DEPUTY, NEW_DEPUTY = "u_changwu", "u_changwu2"
DEPUTY_LINE = "{id: u_changwu, name: 吴立新, title: 常务副县长, role: executive_deputy}"
CHENGGUAN = """  - name: 城关镇
    aliases: [城关]
    head: {id: u_chengguan, name: 何勇, title: 镇长}
    liaisons:
      - {id: u_chengguan_ll, name: 马丽, title: 党政办主任}
"""


def roster_file(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = ROSTER.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "roster.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def dms(sim: Simulation, user_id: str, since: datetime | None = None) -> list[OutgoingMessage]:
    return [m for at, m in sim.transport.sent
            if m.target == "user" and user_id in m.recipients and (since is None or at >= since)]


def notices_of(sim: Simulation, code: str) -> list[Notice]:
    with Session(sim.engine) as s:
        return list(s.exec(select(Notice).join(Task, Task.id == Notice.task_id).where(Task.code == code)
                           .order_by(Notice.id)))


def outbox_rows_of(sim: Simulation, code: str, since: datetime) -> int:
    with Session(sim.engine) as s:
        return s.exec(select(func.count()).select_from(Outbox).join(Task, Task.id == Outbox.task_id)
                      .where(Task.code == code, Outbox.created_at >= since)).one()


def scores(sim: Simulation, unit_name: str) -> list[int]:
    with Session(sim.engine) as s:
        return list(s.exec(select(ScoreEvent.points).join(Unit, Unit.id == ScoreEvent.unit_id)
                           .where(Unit.name == unit_name).order_by(ScoreEvent.id)))


def test_a_replaced_executive_deputy_loses_his_powers_and_his_waiting_draft_moves(sim_any, tmp_path):
    sim = sim_any
    first = assign(sim, "交办 县住建局 燃气管道隐患排查 截止11月30日")
    second = assign(sim, "交办 县应急局 防汛物资清点 截止12月3日")
    draft = sim.wait_for_draft(first, sh(2026, 12, 7, 18))  # day 5 after D, held to Monday 09:00
    assert any(draft in m.title for m in dms(sim, OLD_DEPUTY))

    sim.run_until(sh(2026, 12, 7, 10))
    change = sim.bot.load_roster(roster_file(tmp_path, (DEPUTY_LINE, DEPUTY_LINE.replace(
        "u_changwu", NEW_DEPUTY).replace("吴立新", "冯志远"))))
    assert "常务副县长 吴立新（u_changwu）" in change.render() and f"{draft}：吴立新 → 冯志远" in change.render()
    sim.deliver()

    assert sim.say(OLD_DEPUTY, f"签发 {draft}")[0].title == "未登记"
    assert sim.say(OLD_DEPUTY, "交办 县教育局 校园安全隐患排查 截止12月20日")[0].title == "未登记"
    [moved] = [m for m in dms(sim, NEW_DEPUTY) if draft in m.title]
    assert "原签发人吴立新已不在签发岗位" in moved.text
    assert [(a.label, a.command) for a in moved.actions][0] == ("签发", f"签发 {draft}")

    # the draft's reminder, a working day on, goes to the new signer only
    changed_at = sim.clock.now()
    sim.run_until(sh(2026, 12, 8, 10))
    assert any("签发" in m.title and draft in m.text for m in dms(sim, NEW_DEPUTY, since=sh(2026, 12, 8)))
    assert dms(sim, OLD_DEPUTY, since=changed_at) == []
    assert "已签发" in sim.say(NEW_DEPUTY, f"签发 {draft}")[0].title

    # a draft made after the change is the new holder's from the start
    later = sim.wait_for_draft(second, sh(2026, 12, 10, 18))
    assert [n.signer_id for n in notices_of(sim, second) if n.code == later] == [NEW_DEPUTY]
    sim.run_until(sim.clock.now())
    assert any(later in m.title for m in dms(sim, NEW_DEPUTY))
    assert dms(sim, OLD_DEPUTY, since=changed_at) == []
    assert "已签发" in sim.say(NEW_DEPUTY, f"签发 {later}")[0].title


def test_a_held_draft_moves_to_the_new_holder_too(sim_any, tmp_path):
    sim = sim_any
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止11月30日")
    draft = sim.wait_for_draft(code, sh(2026, 12, 7, 18))
    assert "已暂缓" in sim.say(OLD_DEPUTY, f"暂缓 {draft} 已当面督促")[0].title
    sim.bot.load_roster(roster_file(tmp_path, (DEPUTY_LINE, DEPUTY_LINE.replace(
        "u_changwu", NEW_DEPUTY).replace("吴立新", "冯志远"))))
    sim.deliver()
    [moved] = [m for m in dms(sim, NEW_DEPUTY) if draft in m.title]
    assert "**原签发人已暂缓**：已当面督促" in moved.text
    assert [(a.label, a.command) for a in moved.actions] == [("签发", f"签发 {draft}")]
    assert "已签发" in sim.say(NEW_DEPUTY, f"签发 {draft}")[0].title
    assert f"{draft} 转由冯志远签发" in sim.say(LEADER, f"查询 {code}")[0].text


def test_a_removed_unit_is_not_assignable_and_its_tasks_wait_for_reassignment(sim_any, tmp_path):
    sim = sim_any
    late = assign(sim, "交办 城关镇 老旧小区改造摸底 截止11月25日")
    quiet = assign(sim, "交办 城关镇 背街小巷路灯维修 截止12月4日")
    control = assign(sim, "交办 县住建局 燃气管道隐患排查 截止11月25日")
    sim.run_until(sh(2026, 11, 26, 10))
    assert [n.kind for n in notices_of(sim, late) if n.kind is NoticeKind.BLUE] == [NoticeKind.BLUE]
    assert scores(sim, "城关镇") == [-1]

    removed_at = sim.clock.now()
    change = sim.bot.load_roster(roster_file(tmp_path, (CHENGGUAN, "")))
    assert "单位 城关镇 已移出花名册，2 项未办结事项暂停督办" in change.render()
    assert "城关镇镇长 何勇（u_chengguan）" in change.render()
    sim.deliver()

    # the 督查室 (both of them) get the list, with what to do
    for office in (OFFICE, OFFICE2):
        [listing] = [m for m in dms(sim, office, since=removed_at) if "城关镇" in m.title]
        assert late in listing.text and quiet in listing.text and control not in listing.text
        assert "改派" in listing.text

    # nobody can assign to it, by name or by its former head; its people are strangers now
    refused = sim.say(LEADER, "交办 城关镇 新的一项 截止12月20日", group="cid_leaders")[0]
    assert refused.title == "没有这个单位"
    assert "现有单位：县住建局、县应急局、县市场监管局、县教育局、文星街道；" in refused.text
    mention = sim.say(LEADER, "交办 @何勇 新的一项 截止12月20日", group="cid_leaders", at_user_ids=("u_chengguan",))
    assert not mention[0].title.startswith("已交办")
    assert sim.say("u_chengguan", f"签收 {late}")[0].title == "未登记"
    assert sim.say("u_chengguan_ll", f"进展 {quiet} 已摸排一半")[0].title == "未登记"

    # time passes: its tasks get nothing more (no yellow, no red, no reminders, no points)
    sim.run_until(sh(2026, 12, 21, 10))
    for code in (late, quiet):
        assert outbox_rows_of(sim, code, removed_at) == 0
        assert all(n.created_at < removed_at or n.status is NoticeStatus.VOID for n in notices_of(sim, code))
    assert scores(sim, "城关镇") == [-1]
    assert NoticeKind.YELLOW in {n.kind for n in notices_of(sim, control)}  # the clock did run for others
    assert sim.say(OFFICE, f"改派 {late} 城关镇")[0].title == "没有这个单位"

    # 改派: the new unit gets the task with a fair start, and escalation resumes for it only
    reassigned_at = sim.clock.now()
    reply = sim.say(OFFICE, f"改派 {late} 县应急局")[0]
    assert reply.title == f"已改派 {late}", reply.text
    with Session(sim.engine) as s:
        task = s.exec(select(Task).where(Task.code == late)).one()
        assert s.get(Unit, task.lead_unit_id).name == "县应急局"
        assert task.deadline == sh(2026, 12, 30, 17, 30)  # 7 working days from Monday 21 December
    [told] = [m for m in dms(sim, "u_yingji", since=reassigned_at) if late in m.title]
    assert ("签收", f"签收 {late}") in [(a.label, a.command) for a in told.actions]
    assert "签收" in sim.say("u_yingji", f"签收 {late}")[0].title
    history = sim.say(OFFICE, f"查询 {late}")[0].text
    assert "城关镇移出花名册，暂停督办" in history and "改派给县应急局，期限2026-12-30 17:30" in history

    sim.run_until(sh(2026, 12, 31, 10))
    blues = [n for n in notices_of(sim, late) if n.kind is NoticeKind.BLUE]
    assert len(blues) == 2 and blues[-1].issued_at >= reassigned_at
    assert any(blues[-1].code in m.text for m in dms(sim, "u_yingji", since=reassigned_at))
    assert scores(sim, "县应急局") == [-1] and scores(sim, "城关镇") == [-1]  # the old points stay with 城关镇
    assert outbox_rows_of(sim, quiet, removed_at) == 0

    # the 督查室 may set the deadline; the same unit or no unit is one sentence, changing nothing
    assert sim.say(OFFICE, f"改派 {late} 应急")[0].title == "已是该单位"
    assert sim.say(OFFICE, f"改派 {quiet}")[0].title == "改派格式"
    assert sim.say(OFFICE, f"改派 {quiet} 教育局 1月5日")[0].title == f"已改派 {quiet}"
    with Session(sim.engine) as s:
        assert s.exec(select(Task.deadline).where(Task.code == quiet)).one() == sh(2027, 1, 5, 17, 30)


def test_a_unit_listed_again_gets_its_tasks_back_with_a_fresh_clock(sim_any, tmp_path):
    sim = sim_any
    code = assign(sim, "交办 城关镇 老旧小区改造摸底 截止11月25日")
    sim.run_until(sh(2026, 11, 26, 10))
    sim.bot.load_roster(roster_file(tmp_path, (CHENGGUAN, "")))
    sim.run_until(sh(2026, 12, 10, 10))
    assert blues(sim, code) == 1

    back_at = sim.clock.now()
    change = sim.bot.load_roster(ROSTER)
    assert f"+ 单位 城关镇 重新列入花名册，1 项事项交还本单位并重新计时：{code}" in change.render()
    sim.deliver()
    assert any(code in m.title for m in dms(sim, "u_chengguan", since=back_at))
    assert "签收" in sim.say("u_chengguan", f"签收 {code}")[0].title
    sim.run_until(sh(2026, 12, 21, 17))  # the new deadline: 7 working days from 10 December, 17:30
    assert blues(sim, code) == 1
    sim.run_until(sh(2026, 12, 22, 10))
    assert blues(sim, code) == 2


def blues(sim: Simulation, code: str) -> int:
    return sum(1 for n in notices_of(sim, code) if n.kind is NoticeKind.BLUE and n.status is NoticeStatus.ISSUED)


async def test_roster_sync_goes_through_the_same_diff_and_says_what_happened(sim_any, dingtalk: Emulator,
                                                                             tmp_path):
    sim = sim_any
    code = await asyncio.to_thread(assign, sim, "交办 城关镇 老旧小区改造摸底 截止12月10日")
    roster = tmp_path / "roster.yaml"
    shutil.copy(ROSTER, roster)
    dingtalk.departments = {d.dept_id: d for d in [
        Department(10, "县住建局", 1, ["u_zhujian2"]), Department(11, "县应急局", 1, ["u_yingji"]),
        Department(12, "县市场监管局", 1, ["u_shijian"]), Department(13, "县教育局", 1, ["u_jiaoyu"]),
        Department(14, "文星街道", 1, ["u_wenxing"]),
    ]}  # 城关镇 is gone, 县住建局 has a new head
    dingtalk.users = {u.userid: u for u in [
        OrgUser("u_zhujian2", "李新民", "局长", [10]), OrgUser("u_yingji", "陈志强", "局长", [11]),
        OrgUser("u_shijian", "黄丽", "局长", [12]), OrgUser("u_jiaoyu", "林涛", "局长", [13]),
        OrgUser("u_wenxing", "罗斌", "街道办主任", [14]),
    ]}
    settings = DingTalkSettings(client_id=dingtalk.client_id, client_secret=dingtalk.client_secret,
                                oapi_endpoint=dingtalk.url)
    async with OpenApiClient(settings) as client:
        diff = await sync_roster(client, roster, sim.engine, yes=True, now=sim.clock.now(), esc=sim.bot.escalation)
    text = diff.render()
    assert f"- 单位 城关镇 已移出花名册，1 项未办结事项暂停督办（不再提醒、不再扣分），已发给督查室改派：{code}" in text
    assert "- 人员 县住建局局长 王建华（u_zhujian） 已离开花名册" in text
    assert "- 人员 城关镇党政办主任 马丽（u_chengguan_ll） 已离开花名册" in text

    await asyncio.to_thread(sim.deliver)
    assert any(code in m.text for m in dms(sim, OFFICE) if "城关镇" in m.title)
    assert (await asyncio.to_thread(sim.say, "u_zhujian", "我的"))[0].title == "未登记"
    refused = await asyncio.to_thread(sim.say, LEADER, "交办 城关镇 新的一项 截止12月20日")
    assert refused[0].title == "没有这个单位"


def test_a_departed_assigner_is_sent_nothing_the_office_reviews_instead(sim_any, tmp_path):
    sim = sim_any
    code = sim.say(OLD_DEPUTY, "交办 县住建局 燃气管道隐患排查 截止12月10日", group="cid_leaders")[0].title.split()[-1]
    sim.bot.load_roster(roster_file(tmp_path, (DEPUTY_LINE, DEPUTY_LINE.replace(
        "u_changwu", NEW_DEPUTY).replace("吴立新", "冯志远"))))
    since = sim.clock.now()
    assert sim.say("u_zhujian", f"办结 {code} 排查完毕")[0].title == f"已报办结 {code}"
    sim.deliver()
    assert dms(sim, OLD_DEPUTY, since=since) == []
    assert any(code in m.text for m in dms(sim, OFFICE, since=since))


OFFICE_DIRECTOR_LINE = "{id: u_zhuren, name: 钱文华, title: 县政府办主任, role: office_director}"


def test_a_waiting_extension_request_goes_to_the_new_approver(sim_any, tmp_path):
    sim = sim_any
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止12月10日")
    assert "已提交" in sim.say("u_zhujian", f"延期 {code} 12月20日 乡镇管网图纸未移交")[0].text
    sim.deliver()
    assert len([m for m in dms(sim, "u_zhuren") if code in m.title]) == 1
    change = sim.bot.load_roster(roster_file(tmp_path, (OFFICE_DIRECTOR_LINE, OFFICE_DIRECTOR_LINE.replace(
        "u_zhuren", "u_zhuren2").replace("钱文华", "孙志刚"))))
    assert f"待批延期申请 {code}：转由孙志刚审批" in change.render()
    sim.deliver()
    [moved] = [m for m in dms(sim, "u_zhuren2") if code in m.title]
    assert "原审批人钱文华已不在审批岗位" in moved.text
    assert [a.command for a in moved.actions] == [f"同意延期 {code}", f"驳回延期 {code} "]
    assert len(dms(sim, "u_zhuren")) == 1  # the departed director is sent nothing more
    assert "同意" in sim.say("u_zhuren2", f"同意延期 {code}")[0].title

    # a second reload that changes nothing sends nothing again
    sim.bot.load_roster(roster_file(tmp_path, (OFFICE_DIRECTOR_LINE, OFFICE_DIRECTOR_LINE.replace(
        "u_zhuren", "u_zhuren2").replace("钱文华", "孙志刚"))))
    sim.deliver()
    assert len([m for m in dms(sim, "u_zhuren2") if code in m.title]) == 1
