"""The duties of the other four documents, through the real bot on the simulated clock:
部署 / 布置落实 (湖北 (七), 鄂托克前旗 措施8), 难以执行 and its answers (湖北 (六)), 每月报送 (华容 措施九).

Working days follow the official calendar: 2026's National Day holiday runs 1–7 October and
Saturday 10 October is a make-up working day (调休), which the counting must step onto.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import Session, func, select

from bot.settings import Settings
from bot.simulation import Simulation
from reminders.rules import Rules
from storage.models import HardReport, Notice, NoticeKind, ScoreEvent, Task
from storage.tz import shanghai as sh
from tests.helpers import dump

LEADER, OFFICE, OFFICE2, HEAD, LIAISON, OTHER_HEAD = (
    "u_xianzhang", "u_ducha1", "u_ducha2", "u_zhujian", "u_zhujian_ll", "u_yingji")


def county(tmp_path, start: datetime, profile: str = "xiangyin", **rules: object) -> Simulation:
    url = f"sqlite:///{tmp_path}/duties-{profile}.db"
    return Simulation(url, start, settings=Settings(database_url=url, rules=Rules(profile=profile, **rules)))


def assign(sim: Simulation, text: str) -> str:
    reply = sim.say(LEADER, text, group="cid_leaders")[0]
    assert reply.title.startswith("已交办"), reply.text
    return reply.title.split()[-1]


def dms(sim: Simulation, title_start: str) -> list[tuple[datetime, str]]:
    """(when it went out, to whom) for each direct message whose title starts so."""
    return [(at, m.recipient) for at, m in sim.transport.sent
            if m.target == "user" and m.title.startswith(title_start)]


def task(sim: Simulation, code: str) -> Task:
    with Session(sim.engine) as s:
        return s.exec(select(Task).where(Task.code == code)).one()


# ---- 部署 / 布置落实 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("profile", "reminded_at"), [
    ("hubei", sh(2026, 10, 10, 10)),  # 3 working days: 9-30, holiday 10-1…10-7, 10-8, 10-9, 10-10 (调休)
    ("etuokeqianqi", sh(2026, 10, 9, 10)),  # 2 working days
    ("xiangyin", None),  # 湘阴 has no such duty: never reminded
])
def test_a_missing_deployment_is_reminded_after_n_working_days_across_the_holiday(tmp_path, profile, reminded_at):
    sim = county(tmp_path, sh(2026, 9, 29, 9, 30), profile)
    silent = assign(sim, "交办 县住建局 燃气管道隐患排查 截止10月30日")
    stated = assign(sim, "交办 县住建局 老旧小区加装电梯摸底 截止10月30日")
    for code in (silent, stated):
        assert "已签收" in sim.say(HEAD, f"签收 {code}", at=sh(2026, 9, 30, 10))[0].title
    reply = sim.say(LIAISON, f"部署 {stated} 已成立专班，分管副局长牵头，10月20日前完成摸底", at=sh(2026, 10, 8, 9))
    assert reply[0].title == f"部署已记录 {stated}"
    assert task(sim, stated).deploy_plan.startswith("已成立专班")
    sim.run_until(sh(2026, 10, 20, 18))
    sent = dms(sim, "🗂 布置落实提醒")
    if reminded_at is None:
        assert sent == []
    else:
        assert sent == [(reminded_at, HEAD)]  # once, to the head, and not for the task whose plan came
        text = next(m.text for _, m in sim.transport.sent if m.title == f"🗂 布置落实提醒 {silent}")
        assert f"部署 {silent}" in text
    with Session(sim.engine) as s:
        assert s.exec(select(func.count()).select_from(ScoreEvent)).one() == 0  # no score
    sim.engine.dispose()


def test_an_operator_setting_overrides_the_profile_number(tmp_path):
    sim = county(tmp_path, sh(2026, 9, 29, 9, 30), "hubei", deploy_workdays=1)
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止10月30日")
    sim.say(HEAD, f"签收 {code}", at=sh(2026, 9, 30, 10))
    sim.run_until(sh(2026, 10, 20, 18))
    assert dms(sim, "🗂 布置落实提醒") == [(sh(2026, 10, 8, 10), HEAD)]  # the first working day after
    sim.engine.dispose()


def test_deploy_needs_words_and_the_own_unit(sim):
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止12月18日")
    before = dump(sim.engine)
    assert sim.say(HEAD, f"部署 {code}")[0].title == "缺少部署内容"
    assert sim.say(OTHER_HEAD, f"部署 {code} 马上办")[0].title == "不是本单位事项"
    assert dump(sim.engine) == before
    # stating the plan acknowledges the task
    sim.say(HEAD, f"部署 {code} 成立专班推进")
    assert task(sim, code).acknowledged_at is not None


# ---- 难以执行 -----------------------------------------------------------------------------------------
def test_hard_report_waits_for_an_answer_and_the_office_is_reminded(sim):
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止12月18日")
    reply = sim.say(LIAISON, f"难以执行 {code} 管网图纸缺失，需县自然资源局先行补测", at=sh(2026, 11, 25, 10))[0]
    assert reply.title == f"难以执行已反馈 {code}" and "11月30日（周一）10:00" in reply.text
    told = [(m.recipient, tuple(a.label for a in m.actions)) for _, m in sim.transport.sent
            if m.title == f"难以执行反馈 {code}"]
    assert told == [(LEADER, ("继续执行", "暂缓执行", "调整要求")), (OFFICE, ("继续执行", "暂缓执行", "调整要求")),
                    (OFFICE2, ("继续执行", "暂缓执行", "调整要求"))]
    assert sim.say(HEAD, f"难以执行 {code} 再说一次")[0].title == "已在等待答复"
    sim.run_until(sh(2026, 12, 1, 12))
    # 3 working days after 11-25 10:00: 11-30 10:00, then each working day while unanswered
    assert dms(sim, "⏰ 难以执行待答复") == [(sh(2026, 11, 30, 10), r) for r in (LEADER, OFFICE, OFFICE2)] + [
        (sh(2026, 12, 1, 10), r) for r in (LEADER, OFFICE, OFFICE2)]
    reply = sim.say(OFFICE, f"调整要求 {code} 12月31日 先完成城区部分，乡镇部分纳入明年计划", at=sh(2026, 12, 1, 15))[0]
    assert reply.title == f"已答复 {code}" and "12月31日" in reply.text
    t = task(sim, code)
    assert (t.deadline, t.cycle) == (sh(2026, 12, 31, 17, 30), 1)
    answered = [m.recipient for _, m in sim.transport.sent if m.title == f"难以执行已答复 {code}"]
    assert answered == [LIAISON, HEAD]  # who reported it, and the head
    sim.run_until(sh(2026, 12, 10, 18))
    assert len(dms(sim, "⏰ 难以执行待答复")) == 6  # answered: no more reminders
    with Session(sim.engine) as s:
        report = s.exec(select(HardReport)).one()
        assert (report.answer, report.answered_by, report.new_deadline) == ("adjust", OFFICE, t.deadline)


def test_while_the_answer_waits_the_tasks_own_clock_runs(sim):
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止11月27日")
    sim.say(HEAD, f"难以执行 {code} 需协调多部门", at=sh(2026, 11, 24, 10))
    sim.run_until(sh(2026, 11, 27, 18))
    with Session(sim.engine) as s:
        kinds = set(s.exec(select(Notice.kind).join(Task).where(Task.code == code)))
    assert NoticeKind.BLUE in kinds  # blue at D, the answer still pending (due 11-27 10:00)
    reply = sim.say(LEADER, f"继续执行 {code} 请按期办结")[0]
    assert reply.title == f"已答复 {code}" and "按原期限" in reply.text
    assert task(sim, code).deadline == sh(2026, 11, 27, 17, 30)


def test_hard_report_after_five_working_days_is_refused_and_changes_nothing(sim):
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止12月18日")  # Monday 11-23 09:30
    sim.run_until(sh(2026, 11, 30, 9, 31))  # five working days later, and a minute
    before = dump(sim.engine)
    reply = sim.say(HEAD, f"难以执行 {code} 需协调多部门")[0]
    assert reply.title == "已过反馈时限" and "11月30日" in reply.text
    assert dump(sim.engine) == before


def test_answers_need_a_pending_report_the_right_person_and_a_later_deadline(sim):
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止12月18日")
    assert sim.say(LEADER, f"继续执行 {code}")[0].title == "没有待答复的反馈"
    sim.say(HEAD, f"难以执行 {code} 需协调多部门")
    before = dump(sim.engine)
    assert sim.say("u_fuxianzhang", f"继续执行 {code}")[0].title == "无权操作"  # not the assigner
    assert sim.say(LEADER, f"暂缓执行 {code}")[0].title == "答复格式"
    assert sim.say(LEADER, f"暂缓执行 {code} 12月10日 等省里政策")[0].title == "新期限须更晚"
    assert sim.say(LEADER, f"暂缓执行 {code} 1月15日")[0].title == "请写理由"
    assert dump(sim.engine) == before
    reply = sim.say(LEADER, f"暂缓执行 {code} 2027年1月15日 待省里政策明确")[0]
    assert reply.title == f"已答复 {code}"
    assert task(sim, code).deadline == sh(2027, 1, 15, 17, 30)


# ---- 每月报送 -----------------------------------------------------------------------------------------
def test_monthly_duty_reminds_each_missing_plan_progress_and_results(sim):
    code = assign(sim, "交办 县住建局 每月报送 城乡环境卫生整治 截止2027年3月31日")  # Monday 11-23
    assert task(sim, code).monthly_report
    dm = next(m.text for _, m in sim.transport.sent if m.title == f"新交办事项 {code}")
    assert "5日前报计划、15日前报进展、月底前报成效" in dm
    sim.say(HEAD, f"进展 {code} 12月计划：完成城区背街小巷整治", at=sh(2026, 12, 3, 10))  # the plan, in time
    sim.run_until(sh(2027, 1, 1, 18))
    reminders = [(at, m.recipient, m.text) for at, m in sim.transport.sent if m.title == f"📅 每月报送提醒 {code}"]
    # November's results (none by 11-30) ⇒ 12-1 09:00; December's plan came (12-3); its progress (by
    # 12-15) did not ⇒ 12-16 09:00; nor its results ⇒ 1-1 09:00 (2027's holidays are not published
    # yet: the calendar estimates Monday–Friday)
    assert [(at, who) for at, who, _ in reminders] == [
        (sh(2026, 12, 1, 9), HEAD), (sh(2026, 12, 16, 9), HEAD), (sh(2027, 1, 1, 9), HEAD)]
    assert "上月成效尚未报送" in reminders[0][2] and "月中进展尚未报送" in reminders[1][2]
    assert "上月成效尚未报送" in reminders[2][2]
    with Session(sim.engine) as s:
        assert s.exec(select(func.count()).select_from(ScoreEvent)).one() == 0


def test_a_task_without_the_monthly_duty_gets_no_monthly_reminder(sim):
    code = assign(sim, "交办 县住建局 城乡环境卫生整治 截止2027年3月31日")
    sim.run_until(sh(2027, 1, 10, 18))
    assert not task(sim, code).monthly_report
    assert dms(sim, "📅 每月报送提醒") == []


def test_the_history_shows_the_duties_and_help_explains_the_new_commands(sim):
    code = assign(sim, "交办 县住建局 燃气管道隐患排查 截止12月18日")
    sim.say(HEAD, f"部署 {code} 成立专班推进")
    sim.say(HEAD, f"难以执行 {code} 需协调多部门")
    sim.say(OFFICE, f"暂缓执行 {code} 12月30日 待政策明确")
    history = sim.say(LEADER, f"查询 {code}")[0].text
    assert "报送部署：成立专班推进" in history
    assert "反馈难以执行：需协调多部门，须于2026-11-26 09:30前答复" in history
    assert "答复难以执行：暂缓执行，新期限2026-12-30 17:30（待政策明确）" in history
    for word, words in (("部署", "部署 事项编号 落实措施"), ("难以执行", "难以执行 事项编号 理由"),
                        ("调整要求", "调整要求 事项编号 新期限 新要求")):
        assert words in sim.say(HEAD, f"帮助 {word}")[0].text
    assert "部署" in sim.say(HEAD, "帮助")[0].text
