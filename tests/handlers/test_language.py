"""The chat language as clerks type it (SPEC §6), end to end through Bot.handle_sync.

Every SPEC example and its everyday variants — forgiving unit names, lower-case and unpadded codes,
full-width and doubled spaces, English aliases, every deadline form — must land in the right fields
of the stored task. Every mistake gets exactly its sentence (written out here, so a change of wording
is a deliberate change of this file) and leaves every table as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from _pytest.mark import ParameterSet
from sqlmodel import Session, select

from bot.simulation import ROSTER, Simulation
from handlers.incoming import Incoming
from handlers.queries import suggest
from message_templates.reply import Reply
from storage.models import (
    ExtensionRequest,
    ExtensionStatus,
    Notice,
    NoticeStatus,
    ProgressReport,
    Task,
    TaskStatus,
    Unit,
)
from storage.tz import shanghai as sh
from tests.helpers import (
    DEPUTY,
    DIRECTOR,
    HEAD,
    LEADER,
    LIAISON,
    OFFICE,
    OTHER_HEAD,
    OTHER_LIAISON,
    START,
    STRANGER,
    VICE,
    dump,
)

GROUP = "cid_all_units"
CODE = "DB-2026-0001"
TITLE = "燃气管道隐患排查"
UNITS = ("县住建局", "县应急局", "县市场监管局", "县教育局", "城关镇", "文星街道")
DEFAULT_DEADLINE = sh(2026, 12, 2, 17, 30)  # 7 working days after 11月23日 (第三条)
TASK_CODE = re.compile(r"DB-2026-\d{4}")
SECOND = "DB-2026-0002"


# ---- the state a case starts from: DB-2026-0001 is always the task the case is about ---------------
def _say(sim: Simulation, sender: str, text: str) -> None:
    reply = sim.say(sender, text, group=GROUP)[0]
    assert not reply.title.startswith(("没有", "无权", "缺少", "请")), reply.text


def assigned(sim: Simulation) -> None:
    _say(sim, LEADER, f"交办 县住建局 {TITLE} 截止12月10日")


def acknowledged(sim: Simulation) -> None:
    assigned(sim)
    _say(sim, HEAD, f"签收 {CODE}")


def reported(sim: Simulation) -> None:
    acknowledged(sim)
    _say(sim, HEAD, f"办结 {CODE} 排查完毕，整改清单已报县政府办")


def closed(sim: Simulation) -> None:
    reported(sim)
    _say(sim, OFFICE, f"销号 {CODE}")


def requested(sim: Simulation) -> None:
    acknowledged(sim)
    _say(sim, HEAD, f"延期 {CODE} 12月20日 乡镇管网图纸未移交，需补测")


def own_request(sim: Simulation) -> None:
    """A request whose author is the 主任 (one roster cannot make that happen; the rule still holds)."""
    requested(sim)
    with Session(sim.engine) as s:
        request = s.exec(select(ExtensionRequest)).one()
        request.requester_id = DIRECTOR
        s.add(request)
        s.commit()


def late(sim: Simulation) -> None:
    _say(sim, LEADER, f"交办 县住建局 {TITLE} 截止12月2日")
    sim.run_until(sh(2026, 12, 3, 10))


def draft(sim: Simulation) -> None:
    """Blue issued at 12月2日, yellow DB-2026-0001-Y1 drafted on day 5 and waiting for 常务副县长."""
    _say(sim, LEADER, f"交办 县住建局 {TITLE} 截止12月2日")
    assert sim.wait_for_draft(CODE, sh(2026, 12, 8, 18)) == f"{CODE}-Y1"


def two_units(sim: Simulation) -> None:
    assigned(sim)
    _say(sim, LEADER, "交办 县应急局 森林防火隐患排查 截止12月11日")  # DB-2026-0002
    _say(sim, HEAD, f"进展 {CODE} 已完成城区排查 60%")


SETUPS: dict[str, Callable[[Simulation], None]] = {
    "empty": lambda sim: None, "assigned": assigned, "acknowledged": acknowledged, "reported": reported,
    "closed": closed, "requested": requested, "own_request": own_request, "late": late, "draft": draft,
    "two_units": two_units,
}


def facts(sim: Simulation, reply: Reply) -> dict[str, object]:
    """What a case may assert: the reply's title, first line, the units and tasks it names, and
    DB-2026-0001 as stored."""
    seen: dict[str, object] = {"reply": reply.title, "heading": reply.text.splitlines()[0],
                               "units": tuple(name for name in UNITS if name in reply.text),
                               "codes": tuple(dict.fromkeys(TASK_CODE.findall(reply.text)))}
    with Session(sim.engine) as s:
        names = {u.id: u.name for u in s.exec(select(Unit))}
        task = s.exec(select(Task).where(Task.code == CODE)).first()
        if task is not None:
            last = s.exec(select(ProgressReport).where(ProgressReport.task_id == task.id)
                          .order_by(ProgressReport.id.desc())).first()
            seen |= {"unit": names[task.lead_unit_id], "co": tuple(names[i] for i in task.co_unit_ids),
                     "category": task.category, "urgent": task.urgent, "deadline": task.deadline,
                     "report_every": task.report_every_days, "title": task.title, "status": task.status,
                     "percent": task.progress_percent, "note": last.text if last else None}
        request = s.exec(select(ExtensionRequest).order_by(ExtensionRequest.id.desc())).first()
        if request is not None:
            seen |= {"new_deadline": request.new_deadline, "extension": request.status}
        notice = s.exec(select(Notice).where(Notice.code == f"{CODE}-Y1")).first()
        if notice is not None:
            seen["notice"] = notice.status
    return seen


# ---- messages the bot must understand ---------------------------------------------------------------
def ok(setup: str, sender: str, text: str, *, at: tuple[str, ...] = (), **expect: object) -> ParameterSet:
    return pytest.param(setup, sender, text, at, expect, id=text)


def assign(text: str, deadline: object, *, at: tuple[str, ...] = (), unit: str = "县住建局",
           co: tuple[str, ...] = (), category: str = "其他", urgent: bool = False, report_every: int | None = None,
           title: str = TITLE, sender: str = LEADER) -> ParameterSet:
    """A 交办 on an empty board: every parsed field of the new task is asserted."""
    return ok("empty", sender, text, at=at, reply=f"已交办 {CODE}", unit=unit, co=co, category=category,
              urgent=urgent, report_every=report_every, title=title, deadline=deadline, status=TaskStatus.ASSIGNED)


UNDERSTOOD = [
    # 交办: the SPEC examples
    assign("交办 @王局长 完成全县燃气管道隐患排查并报送整改清单 截止12月10日", sh(2026, 12, 10, 17, 30), at=(HEAD,),
           title="完成全县燃气管道隐患排查并报送整改清单"),
    assign("交办 县住建局 协办 县应急局,县市场监管局 类别 县长批示件 特急 燃气隐患排查 3个工作日内",
           sh(2026, 11, 26, 17, 30), co=("县应急局", "县市场监管局"), category="县长批示件", urgent=True,
           title="燃气隐患排查"),
    # 交办: the deadline forms of SPEC §6 (now: Monday 11月23日 09:30)
    assign(f"交办 县住建局 {TITLE} 截止12月10日", sh(2026, 12, 10, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 12月10日前", sh(2026, 12, 10, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 2026年12月10日17时", sh(2026, 12, 10, 17)),
    assign(f"交办 县住建局 {TITLE} 12-10", sh(2026, 12, 10, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 下周五", sh(2026, 12, 4, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 明天下午5点", sh(2026, 11, 24, 17)),
    assign(f"交办 县住建局 {TITLE} 3天内", sh(2026, 11, 26, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 三天内", sh(2026, 11, 26, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 7个工作日内", sh(2026, 12, 2, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 本月底", sh(2026, 11, 30, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 今天18:00", sh(2026, 11, 23, 18)),
    assign(f"交办 县住建局 {TITLE} 下下周一", sh(2026, 12, 7, 17, 30)),
    assign(f"交办 县住建局 {TITLE} 十个工作日内", sh(2026, 12, 7, 17, 30)),
    assign("交办 县住建局 特急 燃气泄漏现场处置 2小时内", sh(2026, 11, 23, 11, 30), urgent=True, title="燃气泄漏现场处置"),
    assign(f"交办 县住建局 {TITLE} 截止 12月10日", sh(2026, 12, 10, 17, 30)),
    assign(f"交办 县住建局 请于12月10日前完成{TITLE}", sh(2026, 12, 10, 17, 30), title=f"请完成{TITLE}"),
    assign(f"交办 县住建局 {TITLE} 3天", DEFAULT_DEADLINE, title=f"{TITLE} 3天"),  # a span needs 内
    assign(f"交办 县住建局 {TITLE}", DEFAULT_DEADLINE),
    # 交办: units written forgivingly, by @mention, options
    assign(f"交办 住建局 {TITLE} 截止12月10日", sh(2026, 12, 10, 17, 30)),
    assign(f"交办 住建 {TITLE} 截止12月10日", sh(2026, 12, 10, 17, 30)),
    assign(f"交办 县住建 {TITLE} 截止12月10日", sh(2026, 12, 10, 17, 30)),
    assign("交办 应急管理局 森林防火隐患排查 12-10", sh(2026, 12, 10, 17, 30), unit="县应急局", title="森林防火隐患排查"),
    assign("交办 市监局 校园周边食品安全检查 下周五前", sh(2026, 12, 4, 17, 30), unit="县市场监管局",
           title="校园周边食品安全检查"),
    assign("交办 城关 老旧小区燃气管道改造摸底 本月底", sh(2026, 11, 30, 17, 30), unit="城关镇", title="老旧小区燃气管道改造摸底"),
    assign(f"交办 @赵晓燕 {TITLE} 截止12月10日", sh(2026, 12, 10, 17, 30), at=(LIAISON,)),
    assign("交办 县教育局 校园安全隐患排查，请@王建华 配合… 截止12月10日", sh(2026, 12, 10, 17, 30), at=(HEAD,),
           unit="县教育局", title="校园安全隐患排查，请@王建华 配合…"),  # a mention later on is not the target
    assign(f"交办 县住建局 协办 应急管理局、市监局 {TITLE}", DEFAULT_DEADLINE, co=("县应急局", "县市场监管局")),
    assign(f"交办 县住建局 协办 县应急局, 县市场监管局 {TITLE}", DEFAULT_DEADLINE, co=("县应急局", "县市场监管局")),
    assign(f"交办 县住建局 协办 县应急局，城关， {TITLE}", DEFAULT_DEADLINE, co=("县应急局", "城关镇")),
    assign(f"交办 县住建局 类别 重大决策部署 紧急 {TITLE}", DEFAULT_DEADLINE, category="重大决策部署", urgent=True),
    assign(f"交办 县住建局 每7天报送 {TITLE} 本月底", sh(2026, 11, 30, 17, 30), report_every=7),
    assign(f"交办 县住建局 类别 政府工作报告目标任务 每15天报送进展 {TITLE}", DEFAULT_DEADLINE,
           category="政府工作报告目标任务", report_every=15),
    # 交办: spaces and aliases
    assign(f"交办\u3000县住建局\u3000{TITLE}\u3000截止12月10日", sh(2026, 12, 10, 17, 30)),
    assign(f"  交办   县住建局    {TITLE}   截止12月10日 ", sh(2026, 12, 10, 17, 30)),
    assign(f"assign 县住建局 {TITLE} 截止12月10日", sh(2026, 12, 10, 17, 30)),
    assign(f"交办县住建局 {TITLE} 截止12月10日", sh(2026, 12, 10, 17, 30)),  # no space after the command
    assign(f"Assign 住建 {TITLE}", DEFAULT_DEADLINE, sender=OFFICE),
    # 签收
    ok("assigned", HEAD, "签收 DB-2026-0001", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", LIAISON, "签收 db-2026-1", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", HEAD, "签收 DB20260001", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", HEAD, "签收 ＤＢ－２０２６－０００１", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", HEAD, "签收\u3000DB-2026-0001", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", HEAD, "ack DB-2026-01", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", HEAD, "签收 DB-2026-0001。", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", HEAD, "签收DB-2026-0001", reply=f"已签收 {CODE}", status=TaskStatus.IN_PROGRESS),  # no space
    # 进展
    ok("acknowledged", HEAD, "进展 DB-2026-0001 已完成城区排查，乡镇部分进行中 60%", reply=f"进展已记录 {CODE}",
       percent=60, note="已完成城区排查，乡镇部分进行中", status=TaskStatus.IN_PROGRESS),
    ok("acknowledged", LIAISON, "进展 db-2026-1 城区排查完成 80％", reply=f"进展已记录 {CODE}", percent=80,
       note="城区排查完成"),
    ok("acknowledged", HEAD, "进展 DB-2026-0001，已完成城区排查 60%", reply=f"进展已记录 {CODE}", percent=60,
       note="已完成城区排查"),
    ok("acknowledged", HEAD, "进展 DB-2026-0001 城区已完成60%", reply=f"进展已记录 {CODE}", percent=60,
       note="城区已完成"),
    ok("assigned", HEAD, "progress DB-2026-1 乡镇部分进行中", reply=f"进展已记录 {CODE}", percent=None,
       note="乡镇部分进行中", status=TaskStatus.IN_PROGRESS),  # reporting progress is acknowledging
    # 办结, 销号, 退回, 撤销
    ok("acknowledged", HEAD, "办结 DB-2026-0001 排查完毕，整改清单已报县政府办", reply=f"已报办结 {CODE}",
       status=TaskStatus.REPORTED_DONE, percent=100, note="排查完毕，整改清单已报县政府办"),
    ok("assigned", LIAISON, "done db-2026-1 排查完毕", reply=f"已报办结 {CODE}", status=TaskStatus.REPORTED_DONE),
    ok("acknowledged", HEAD, "办结 db-2026-1,排查完毕", reply=f"已报办结 {CODE}", note="排查完毕"),
    ok("reported", OFFICE, "销号 DB-2026-0001", reply=f"已销号 {CODE}", status=TaskStatus.CLOSED),
    ok("reported", LEADER, "close db-2026-1", reply=f"已销号 {CODE}", status=TaskStatus.CLOSED),
    ok("reported", LEADER, "退回 DB-2026-0001 整改清单缺少乡镇部分", reply=f"已退回 {CODE}",
       status=TaskStatus.IN_PROGRESS),
    ok("reported", OFFICE, "reject DB-2026-1 缺少乡镇部分", reply=f"已退回 {CODE}", status=TaskStatus.IN_PROGRESS),
    ok("assigned", LEADER, "撤销 DB-2026-0001 已并入全县安全生产大检查", reply=f"已撤销 {CODE}",
       status=TaskStatus.CANCELLED),
    # 延期 (12月20日 is a Sunday: due Monday 12月21日), 同意延期, 驳回延期
    ok("acknowledged", HEAD, "延期 DB-2026-0001 12月20日 乡镇管网图纸未移交，需补测",
       reply=f"延期申请已提交 {CODE}", new_deadline=sh(2026, 12, 21, 17, 30), extension=ExtensionStatus.PENDING,
       deadline=sh(2026, 12, 10, 17, 30)),
    ok("acknowledged", LIAISON, "延期 db-2026-1 12月18日前 图纸未移交", reply=f"延期申请已提交 {CODE}",
       new_deadline=sh(2026, 12, 18, 17, 30)),
    ok("acknowledged", HEAD, "extend DB-2026-1 下下周五 图纸未移交", reply=f"延期申请已提交 {CODE}",
       new_deadline=sh(2026, 12, 11, 17, 30)),
    ok("acknowledged", HEAD, "延期 DB-2026-0001 2026年12月31日 图纸未移交", reply=f"延期申请已提交 {CODE}",
       new_deadline=sh(2026, 12, 31, 17, 30)),
    ok("requested", DIRECTOR, "同意延期 DB-2026-0001", reply=f"已同意延期 {CODE}", extension=ExtensionStatus.APPROVED,
       deadline=sh(2026, 12, 21, 17, 30)),
    ok("requested", LEADER, "approve db-2026-1", reply=f"已同意延期 {CODE}", extension=ExtensionStatus.APPROVED,
       deadline=sh(2026, 12, 21, 17, 30)),
    ok("requested", DIRECTOR, "驳回延期 DB-2026-0001 图纸可向县自然资源局调取", reply=f"已驳回延期 {CODE}",
       extension=ExtensionStatus.REJECTED, deadline=sh(2026, 12, 10, 17, 30)),
    ok("requested", DIRECTOR, "deny DB-2026-1 请按期办结", reply=f"已驳回延期 {CODE}",
       extension=ExtensionStatus.REJECTED),
    # 签发, 暂缓
    ok("draft", DEPUTY, "签发 DB-2026-0001-Y1", reply=f"已签发 {CODE}-Y1", notice=NoticeStatus.ISSUED),
    ok("draft", LEADER, "sign db-2026-1-y1", reply=f"已签发 {CODE}-Y1", notice=NoticeStatus.ISSUED),
    ok("draft", DEPUTY, "签发 ＤＢ－２０２６－０００１－Ｙ１。", reply=f"已签发 {CODE}-Y1", notice=NoticeStatus.ISSUED),
    ok("draft", DEPUTY, "暂缓 DB-2026-0001-Y1 已当面督促，待周五再看", reply=f"已暂缓 {CODE}-Y1",
       notice=NoticeStatus.HELD),
    ok("draft", DEPUTY, "hold DB-2026-1-Y1 已当面督促", reply=f"已暂缓 {CODE}-Y1", notice=NoticeStatus.HELD),
    # 台账, 我的, 查询, 积分, 帮助, 预警: what the reply is, and which units it covers
    ok("two_units", HEAD, "台账", reply="督办台账", heading="### 📋 督办台账", codes=(CODE, SECOND)),
    ok("two_units", HEAD, "台账 县住建局", reply="督办台账", heading="### 📋 督办台账 · 县住建局", codes=(CODE,)),
    ok("two_units", LEADER, "台账 应急管理局", heading="### 📋 督办台账 · 县应急局", codes=(SECOND,)),
    ok("two_units", LEADER, "台账 红", heading="### 📋 督办台账 · 🔴红色", codes=()),
    ok("two_units", LEADER, "台账 住建 黄色 逾期", heading="### 📋 督办台账 · 县住建局 · 🟡黄色 · 逾期", codes=()),
    ok("draft", OFFICE, "ledger 蓝", heading="### 📋 督办台账 · 🔵蓝色", codes=(CODE,)),
    ok("two_units", HEAD, "我的", reply="我的事项", heading="### 📋 县住建局的在办事项", codes=(CODE,)),
    ok("two_units", LEADER, "mine", reply="我的事项", heading="### 📋 我交办的在办事项", codes=(CODE, SECOND)),
    ok("two_units", OTHER_LIAISON, "查询 DB-2026-0001", reply=f"事项 {CODE}", heading=f"### 🔎 {CODE} {TITLE}"),
    ok("two_units", HEAD, "show db-2026-1", reply=f"事项 {CODE}", heading=f"### 🔎 {CODE} {TITLE}"),
    ok("two_units", HEAD, "积分", reply="2026年督办积分", units=UNITS),
    ok("two_units", HEAD, "积分 住建", reply="2026年督办积分", units=("县住建局",)),
    ok("two_units", LEADER, "score 城关", reply="2026年督办积分", units=("城关镇",)),
    ok("empty", STRANGER, "帮助", reply="督办助手 帮助"),
    ok("empty", HEAD, "help", reply="督办助手 帮助"),
    ok("empty", HEAD, "？", reply="督办助手 帮助"),
    ok("empty", LEADER, "帮助 交办", reply="帮助：交办"),
    ok("empty", LEADER, "help assign", reply="帮助：交办"),
    ok("two_units", HEAD, "预警", reply="督办预警", heading="### 🔭 督办预警 · 未来3天"),
    ok("two_units", LEADER, "预警 7天", reply="督办预警", heading="### 🔭 督办预警 · 未来7天"),
    ok("two_units", LEADER, "forecast 14", reply="督办预警", heading="### 🔭 督办预警 · 未来14天"),
]


@pytest.mark.parametrize(("setup", "sender", "text", "at", "expect"), UNDERSTOOD)
def test_the_bot_understands(sim: Simulation, setup: str, sender: str, text: str, at: tuple[str, ...],
                             expect: dict[str, object]) -> None:
    SETUPS[setup](sim)
    replies = sim.say(sender, text, group=GROUP, at_user_ids=at)
    assert len(replies) == 1, replies
    seen = facts(sim, replies[0])
    assert {key: seen.get(key) for key in expect} == expect, replies[0].text


# ---- mistakes: the exact sentence, and nothing written -------------------------------------------------
def bad(setup: str, sender: str, text: str, expected: str, *, id: str | None = None) -> ParameterSet:
    return pytest.param(setup, sender, text, expected, id=id or text)


UNITS_LIST = "县住建局、县应急局、县市场监管局、县教育局、城关镇、文星街道"
ASSIGN_EXAMPLE = "交办 县住建局 燃气管道隐患排查并报送整改清单 截止12月10日"
LOCAL_UNITS = "县住建局、县应急局、县市场监管局、县教育局"  # every unit whose name has 局

REFUSED = [
    # unknown commands, with a suggestion where one makes sense
    bad("assigned", HEAD, "签手 DB-2026-0001",
        "没有「签手」这个命令，您是不是要用「签收」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("empty", LEADER, "交待 县住建局 燃气管道隐患排查",
        "没有「交待」这个命令，您是不是要用「交办」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("reported", OFFICE, "销毁 DB-2026-0001",
        "没有「销毁」这个命令，您是不是要用「销号」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("empty", LEADER, "转办 县住建局 燃气管道隐患排查",
        "没有「转办」这个命令，您是不是要用「交办」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("assigned", HEAD, "汇报 DB-2026-0001 已完成城区排查",
        "没有「汇报」这个命令，您是不是要用「进展」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("requested", DIRECTOR, "不同意延期 DB-2026-0001 图纸可调取",
        "没有「不同意延期」这个命令，您是不是要用「驳回延期」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("empty", LEADER, "assgin 县住建局 燃气管道隐患排查",
        "没有「assgin」这个命令，您是不是要用「交办」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("empty", HEAD, "台帐",
        "没有「台帐」这个命令，您是不是要用「台账」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("empty", HEAD, "你好",
        "没有「你好」这个命令。发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    bad("empty", HEAD, "帮助 签手",
        "没有「签手」这个命令，您是不是要用「签收」？发送「帮助」可查看全部命令，例如：签收 DB-2026-0042"),
    # codes: missing, malformed, unknown
    bad("assigned", HEAD, "签收", "请在「签收」后写上事项编号，例如：签收 DB-2026-0042"),
    bad("reported", OFFICE, "销号 ", "请在「销号」后写上事项编号，例如：销号 DB-2026-0042"),
    bad("draft", DEPUTY, "签发", "请在「签发」后写上督办单号，例如：签发 DB-2026-0042-Y1"),
    bad("assigned", HEAD, "签收 XYZ", "「XYZ」不是事项编号，编号形如 DB-2026-0042，例如：签收 DB-2026-0042"),
    bad("assigned", HEAD, "进展 42 已完成城区排查",
        "「42」不是事项编号，编号形如 DB-2026-0042，例如：进展 DB-2026-0042 已完成城区排查，乡镇部分进行中 60%"),
    bad("draft", DEPUTY, "签发 DB-2026-0001",
        "「DB-2026-0001」不是督办单号，单号形如 DB-2026-0042-Y1，例如：签发 DB-2026-0042-Y1"),
    bad("assigned", HEAD, "签收 DB-2026-0999",
        "没有编号为 DB-2026-0999 的事项，请核对编号（发送「台账」可查看在办事项），例如：签收 DB-2026-0042"),
    bad("assigned", HEAD, "查询 db-2026-42",
        "没有编号为 DB-2026-0042 的事项，请核对编号（发送「台账」可查看在办事项），例如：查询 DB-2026-0042"),
    bad("draft", DEPUTY, "签发 DB-2026-0001-Y9",
        "没有单号为 DB-2026-0001-Y9 的督办单，请核对单号，例如：签发 DB-2026-0042-Y1"),
    bad("draft", LEADER, "暂缓 db-2026-1-r1 已当面督促",
        "没有单号为 DB-2026-0001-R1 的督办单，请核对单号，例如：暂缓 DB-2026-0042-Y1 已当面督促，待周五再看"),
    # units: unknown, ambiguous
    bad("empty", LEADER, "交办 县财政局 预算执行情况 截止12月10日",
        f"没有找到单位「县财政局」，现有单位：{UNITS_LIST}；例如：{ASSIGN_EXAMPLE}"),
    bad("empty", LEADER, "交办 县住建局 协办 县财政局 燃气管道隐患排查",
        f"没有找到单位「县财政局」，现有单位：{UNITS_LIST}；例如：{ASSIGN_EXAMPLE}"),
    bad("empty", HEAD, "积分 县财政局", f"没有找到单位「县财政局」，现有单位：{UNITS_LIST}；例如：积分 县住建局"),
    bad("empty", LEADER, "交办 局 燃气管道隐患排查",
        f"「局」可能是指{LOCAL_UNITS}，请写出完整的单位名称，例如：{ASSIGN_EXAMPLE}"),
    bad("empty", LEADER, "交办 县住建局 协办 县局 燃气管道隐患排查",
        f"「县局」可能是指{LOCAL_UNITS}，请写出完整的单位名称，例如：{ASSIGN_EXAMPLE}"),
    bad("assigned", HEAD, "台账 局 红", f"「局」可能是指{LOCAL_UNITS}，请写出完整的单位名称，例如：台账 县住建局 红"),
    bad("empty", HEAD, "积分 局", f"「局」可能是指{LOCAL_UNITS}，请写出完整的单位名称，例如：积分 县住建局"),
    # deadlines: unreadable, over, too late to extend
    bad("empty", LEADER, "交办 县住建局 燃气管道隐患排查 截止下周八",
        f"没看懂期限「截止下周八」，请写成 12月10日、下周五、3个工作日内 这样，例如：{ASSIGN_EXAMPLE}"),
    bad("empty", LEADER, "交办 县住建局 燃气管道隐患排查 截止13月40日",
        f"没看懂期限「截止13月40日」，请写成 12月10日、下周五、3个工作日内 这样，例如：{ASSIGN_EXAMPLE}"),
    bad("acknowledged", HEAD, "延期 DB-2026-0001 下个礼拜 图纸未移交",
        "没看懂期限「下个礼拜」，请写成 12月10日、下周五、3个工作日内 这样，"
        "例如：延期 DB-2026-0042 12月20日 乡镇管网图纸未移交，需补测"),
    bad("empty", LEADER, "交办 县住建局 燃气管道隐患排查 截止11月20日",
        f"期限「截止11月20日」已经过去了，请给一个将来的时间，例如：{ASSIGN_EXAMPLE}"),
    bad("empty", LEADER, "交办 县住建局 燃气管道隐患排查 今天9:00",
        f"期限「今天9:00」已经过去了，请给一个将来的时间，例如：{ASSIGN_EXAMPLE}"),
    bad("acknowledged", HEAD, "延期 DB-2026-0001 11月20日 图纸未移交",
        "期限「11月20日」已经过去了，请给一个将来的时间，例如：延期 DB-2026-0042 12月20日 乡镇管网图纸未移交，需补测"),
    bad("late", HEAD, "延期 DB-2026-0001 12月20日 图纸未移交",
        "DB-2026-0001 的期限12月2日（周三）17:30已过，不能再申请延期（第八条：须在规定时限内申请）；"
        "请抓紧办结后回复「办结 DB-2026-0001 办理结果」。"),
    bad("acknowledged", HEAD, "延期 DB-2026-0001 12月5日 图纸未移交",
        "新期限要晚于现行期限12月10日（周四）17:30，例如：延期 DB-2026-0001 12月20日 乡镇管网图纸未移交，需补测"),
    bad("acknowledged", HEAD, "延期 DB-2026-0001", "请写明新期限和理由，例如：延期 DB-2026-0001 12月20日 乡镇管网图纸未移交，需补测"),
    bad("acknowledged", HEAD, "延期 DB-2026-0001 12月20日",
        "「延期」需要写明理由，例如：延期 DB-2026-0042 12月20日 乡镇管网图纸未移交，需补测"),
    bad("requested", LIAISON, "延期 DB-2026-0001 12月25日 再延五天",
        "DB-2026-0001 已有一份延期申请在等待审批，请等审批结果后再申请；可发送「查询 DB-2026-0001」查看进度。"),
    # a finished task
    bad("closed", HEAD, "进展 DB-2026-0001 补充了乡镇部分", "DB-2026-0001 已销号，不能再进展；发送「查询 DB-2026-0001」可查看经过。"),
    bad("closed", LEADER, "销号 DB-2026-0001", "DB-2026-0001 已销号，不能再销号；发送「查询 DB-2026-0001」可查看经过。"),
    bad("closed", HEAD, "延期 DB-2026-0001 12月20日 图纸未移交",
        "DB-2026-0001 已销号，不能再延期；发送「查询 DB-2026-0001」可查看经过。"),
    # who may do what
    bad("assigned", STRANGER, "签收 DB-2026-0001", "您还不在督办花名册里，暂时只能使用「帮助」；如需使用「签收」，请联系县政府督查室登记。"),
    bad("assigned", STRANGER, "台账", "您还不在督办花名册里，暂时只能使用「帮助」；如需使用「台账」，请联系县政府督查室登记。"),
    bad("empty", HEAD, "交办 县应急局 森林防火隐患排查",
        "「交办」需要县长、副县长、常务副县长、县政府办主任、县政府督查室才能使用，您的身份是单位主要负责人；发送「帮助」可查看您能用的命令。"),
    bad("reported", LIAISON, "销号 DB-2026-0001",
        "「销号」需要县长、副县长、常务副县长、县政府办主任、县政府督查室才能使用，您的身份是单位联络员；发送「帮助」可查看您能用的命令。"),
    bad("assigned", LEADER, "签收 DB-2026-0001",
        "「签收」需要单位联络员、单位主要负责人才能使用，您的身份是县长；发送「帮助」可查看您能用的命令。"),
    bad("requested", VICE, "同意延期 DB-2026-0001",
        "「同意延期」需要县长、常务副县长、县政府办主任才能使用，您的身份是副县长；发送「帮助」可查看您能用的命令。"),
    bad("draft", OFFICE, "签发 DB-2026-0001-Y1",
        "「签发」需要县长、常务副县长才能使用，您的身份是县政府督查室；发送「帮助」可查看您能用的命令。"),
    bad("assigned", OTHER_HEAD, "签收 DB-2026-0001",
        "DB-2026-0001 不是交办给您单位的事项，只能办理本单位的事项；发送「我的」可查看本单位在办事项。"),
    bad("acknowledged", OTHER_LIAISON, "进展 DB-2026-0001 已完成城区排查 60%",
        "DB-2026-0001 不是交办给您单位的事项，只能办理本单位的事项；发送「我的」可查看本单位在办事项。"),
    bad("reported", VICE, "销号 DB-2026-0001",
        "DB-2026-0001 只能由交办领导或县政府督查室销号，如需销号请联系督查室，例如：销号 DB-2026-0042"),
    bad("assigned", OFFICE, "撤销 DB-2026-0001",
        "DB-2026-0001 只能由交办它的领导撤销；如需撤销，请联系交办领导，例如：撤销 DB-2026-0042 已并入全县安全生产大检查"),
    bad("own_request", DIRECTOR, "同意延期 DB-2026-0001",
        "不能审批自己提出的延期申请，DB-2026-0001 的申请请由其他有权领导回复「同意延期 DB-2026-0001」。"),
    # missing or wrong content
    bad("draft", DEPUTY, "暂缓 DB-2026-0001-Y1", "「暂缓」需要写明理由，例如：暂缓 DB-2026-0042-Y1 已当面督促，待周五再看"),
    bad("reported", LEADER, "退回 DB-2026-0001", "「退回」需要写明理由，例如：退回 DB-2026-0042 整改清单缺少乡镇部分"),
    bad("requested", DIRECTOR, "驳回延期 DB-2026-0001",
        "「驳回延期」需要写明理由，例如：驳回延期 DB-2026-0042 图纸可向县自然资源局调取，请按期办结"),
    bad("acknowledged", HEAD, "进展 DB-2026-0001 已完成城区排查 150%",
        "进度百分比应在0%到100%之间（您写的是150%），例如：进展 DB-2026-0042 已完成城区排查 60%"),
    bad("acknowledged", HEAD, "进展 DB-2026-0001 60%", "请写明进展情况，例如：进展 DB-2026-0001 已完成城区排查，乡镇部分进行中 60%"),
    bad("acknowledged", HEAD, "办结 DB-2026-0001", "请写明办理结果，例如：办结 DB-2026-0001 排查完毕，整改清单已报县政府办"),
    bad("empty", LEADER, "交办", f"请写明责任单位和事项内容，例如：{ASSIGN_EXAMPLE}"),
    bad("empty", LEADER, "交办 县住建局 截止12月10日", f"请写明交办的事项内容，例如：{ASSIGN_EXAMPLE}"),
    bad("empty", LEADER, "交办 县住建局 类别 随便 燃气管道隐患排查",
        "没有「随便」这个类别，可选：重大决策部署、政府工作报告目标任务、县长批示件、会议交办、其他；"
        "例如：交办 县住建局 类别 县长批示件 燃气隐患排查 3个工作日内"),
    bad("empty", LEADER, "交办 县住建局 " + "燃" * 201,
        f"事项内容请控制在200字以内，详细要求可在交办后用附件或进展补充，例如：{ASSIGN_EXAMPLE}", id="title too long"),
    bad("assigned", HEAD, "进展 DB-2026-0001 " + "进" * 2000,
        "消息太长了（超过2000字），请精简后再发，例如：进展 DB-2026-0042 已完成城区排查 60%", id="message too long"),
    # steps out of order
    bad("acknowledged", LIAISON, "签收 DB-2026-0001",
        "DB-2026-0001 已于11月23日（周一）09:30签收，不用重复签收；有进展请回复，例如：进展 DB-2026-0001 已完成城区排查 60%"),
    bad("reported", HEAD, "办结 DB-2026-0001 再报一次",
        "DB-2026-0001 已报办结，正等待销号，不用重复报送；发送「查询 DB-2026-0001」可查看经过。"),
    bad("assigned", OFFICE, "销号 DB-2026-0001",
        "DB-2026-0001 责任单位还没有报办结，不能销号；可等单位回复「办结 DB-2026-0001 办理结果」后再销号。"),
    bad("acknowledged", DIRECTOR, "同意延期 DB-2026-0001",
        "DB-2026-0001 没有等待审批的延期申请；单位可先发送「延期 DB-2026-0001 12月20日 理由」提出申请。"),
    bad("draft", DEPUTY, "签发 DB-2026-0001-B1",
        "督办单 DB-2026-0001-B1 已于12月2日（周三）17:30签发，无需重复操作；可发送「查询 DB-2026-0001」查看经过。"),
    # queries with filters they cannot read
    bad("assigned", HEAD, "台账 绿", "没看懂「绿」，台账可按单位、颜色（蓝/黄/红）、逾期筛选，例如：台账 县住建局 红"),
    bad("assigned", HEAD, "台账 县财政局", "没看懂「县财政局」，台账可按单位、颜色（蓝/黄/红）、逾期筛选，例如：台账 县住建局 红"),
    bad("assigned", HEAD, "预警 999", "没看懂「999」，请写1到60之间的天数，例如：预警 7天"),
    bad("assigned", HEAD, "预警 下周", "没看懂「下周」，请写1到60之间的天数，例如：预警 7天"),
]


@pytest.mark.parametrize(("setup", "sender", "text", "expected"), REFUSED)
def test_a_mistake_gets_its_sentence_and_changes_nothing(sim: Simulation, setup: str, sender: str, text: str,
                                                         expected: str) -> None:
    SETUPS[setup](sim)
    before = dump(sim.engine)
    replies = sim.say(sender, text, group=GROUP)
    assert [r.text for r in replies] == [expected]
    assert dump(sim.engine) == before


def test_mentioning_someone_who_heads_no_unit(sim: Simulation) -> None:
    before = dump(sim.engine)
    replies = sim.bot.handle_sync(Incoming(msg_id="m-1", sender_id=LEADER, text=f"交办 @吴立新 {TITLE}",
                                           conversation_id=GROUP, is_group=True, at_user_ids=(DEPUTY,),
                                           at_names=("吴立新",)))
    assert [r.text for r in replies] == [
        "@吴立新 不是任何责任单位的负责人或联络员，请@单位负责人或直接写单位名称，例如：交办 县住建局 燃气管道隐患排查 截止12月10日"]
    assert dump(sim.engine) == before


def test_a_county_where_a_short_name_fits_two_units(tmp_path: Path) -> None:
    roster = yaml.safe_load(ROSTER.read_text(encoding="utf-8"))
    roster["units"] += [
        {"name": "县自然资源局", "aliases": ["自然资源局", "资源局"], "head": {"id": "u_ziran", "name": "邓军"}},
        {"name": "县自然资源执法大队", "aliases": ["执法大队"], "head": {"id": "u_zhifa", "name": "许峰"}},
    ]
    path = tmp_path / "roster.yaml"
    path.write_text(yaml.safe_dump(roster, allow_unicode=True), encoding="utf-8")
    sim = Simulation(f"sqlite:///{tmp_path}/county.db", START, roster=path)
    try:
        assert [r.text for r in sim.say(LEADER, "交办 自然资源 违法占地排查", group=GROUP)] == [
            f"「自然资源」可能是指县自然资源局、县自然资源执法大队，请写出完整的单位名称，例如：{ASSIGN_EXAMPLE}"]
        assert sim.say(LEADER, "交办 资源局 违法占地排查", group=GROUP)[0].title == f"已交办 {CODE}"  # an alias is exact
        assert sim.say(LEADER, "交办 执法 违法占地查处", group=GROUP)[0].title == f"已交办 {SECOND}"
    finally:
        sim.engine.dispose()


@pytest.mark.parametrize(("word", "expected"), [
    ("签手", "签收"), ("签到", "签收"), ("交待", "交办"), ("转办", "交办"), ("督办", "交办"), ("销毁", "销号"),
    ("进度", "进展"), ("汇报", "进展"), ("报送", "进展"), ("办完", "办结"), ("完成", "办结"), ("延长", "延期"),
    ("批准延期", "同意延期"), ("不同意延期", "驳回延期"), ("拒绝", "驳回延期"), ("暂停", "暂缓"), ("台帐", "台账"),
    ("查看", "查询"), ("积份", "积分"), ("帮忙", "帮助"), ("预测", "预警"), ("签收DB-2026-0001", "签收"),
    ("台账县住建局", "台账"), ("assgin", "交办"), ("ACKK", "签收"), ("helo", "帮助"), ("progres", "进展"),
    ("你好", None), ("统计", None), ("ok", None), ("hi", None),
])
def test_suggest_names_the_command_meant(word: str, expected: str | None) -> None:
    assert suggest(word) == expected
