"""The role × command matrix, exhaustively: every role in the roster (and a stranger) tries every
command on a prepared county; only the allowed ones change anything.

The expected matrix below is written out by hand from SPEC §1–§3 and 第七、八条, independently of
handlers/registry.py, so a change to who-may-do-what shows up here as a deliberate edit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.app import Bot
from bot.clock import FakeClock
from bot.settings import Settings
from bot.simulation import Simulation
from handlers.incoming import Incoming
from handlers.registry import primary_commands
from reminders.calendar import WorkCalendar
from storage.db import make_engine
from storage.tz import shanghai as sh
from tests.helpers import dump

PEOPLE = {
    "county_head": "u_xianzhang", "executive_deputy": "u_changwu", "deputy": "u_fuxianzhang",
    "office_director": "u_zhuren", "supervisor": "u_ducha1", "unit_head": "u_zhujian",
    "liaison": "u_zhujian_ll", "stranger": "u_nobody",
}
# The prepared county (see `county`): T1 open and unacknowledged, T2 reported done, T3 with a pending
# extension request, T4 with a yellow draft waiting for 常务副县长, T5 open, T6 assigned today (so still
# within the 5 working days for 难以执行), T7 with a 难以执行 report waiting; all 县长's, all 县住建局's.
COMMANDS = {
    "交办": "交办 县教育局 校园安全隐患排查 截止12月20日",
    "签收": "签收 DB-2026-0001",
    "进展": "进展 DB-2026-0001 已完成一半 50%",
    "办结": "办结 DB-2026-0001 已办结",
    "延期": "延期 DB-2026-0001 12月30日 需等待省里批复",
    "销号": "销号 DB-2026-0002",
    "退回": "退回 DB-2026-0002 缺少附件",
    "撤销": "撤销 DB-2026-0005 已并入大检查",
    "改派": "改派 DB-2026-0005 县教育局",
    "同意延期": "同意延期 DB-2026-0003",
    "驳回延期": "驳回延期 DB-2026-0003 理由不充分",
    "签发": "签发 DB-2026-0004-Y1",
    "暂缓": "暂缓 DB-2026-0004-Y1 当面督促",
    "通报": "通报",
    "部署": "部署 DB-2026-0001 成立专班推进",
    "难以执行": "难以执行 DB-2026-0006 需协调多部门",
    "继续执行": "继续执行 DB-2026-0007",
    "暂缓执行": "暂缓执行 DB-2026-0007 12月30日 待政策明确",
    "调整要求": "调整要求 DB-2026-0007 12月30日 先完成城区部分",
    "看板": "看板",
    "台账": "台账", "我的": "我的", "查询": "查询 DB-2026-0001", "积分": "积分", "预警": "预警 7", "帮助": "帮助",
}
LEADERS = {"county_head", "executive_deputy", "deputy", "office_director"}
UNIT = {"unit_head", "liaison"}
ROSTER = set(PEOPLE) - {"stranger"}
CHANGES = {  # who changes the database with each command, on the prepared county
    "交办": LEADERS | {"supervisor"},
    "签收": UNIT, "进展": UNIT, "办结": UNIT, "延期": UNIT,
    "销号": {"county_head", "supervisor"},  # the assigner, or the 督查室
    "退回": {"county_head", "supervisor"},
    "撤销": {"county_head"},  # the assigner only
    "改派": LEADERS | {"supervisor"},  # any leader or the 督查室: a unit's task to another unit
    "同意延期": {"office_director", "executive_deputy", "county_head"},  # none/blue ⇒ 主任 or higher
    "驳回延期": {"office_director", "executive_deputy", "county_head"},
    "签发": {"executive_deputy", "county_head"},  # a yellow: 常务副县长 (or 县长)
    "暂缓": {"executive_deputy", "county_head"},
    "通报": {"supervisor"},  # the monthly bulletin, issued now by the 督查室
    "部署": UNIT, "难以执行": UNIT,  # 湖北 (七) / (六): the unit's own statements
    "继续执行": {"county_head", "supervisor"},  # answering 难以执行: the assigner, or the 督查室
    "暂缓执行": {"county_head", "supervisor"},
    "调整要求": {"county_head", "supervisor"},
    "看板": LEADERS | {"supervisor"},  # a sign-in link to the dashboard (a link row, a DM)
}
ANSWERS = {"台账": ROSTER, "我的": ROSTER, "查询": ROSTER, "积分": ROSTER, "预警": ROSTER, "帮助": set(PEOPLE)}


def test_the_matrix_names_every_command():
    assert set(COMMANDS) == {c.name for c in primary_commands()}
    assert set(CHANGES) | set(ANSWERS) == set(COMMANDS)


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("county")
    sim = Simulation(f"sqlite:///{folder}/county.db", sh(2026, 11, 23, 9, 30))
    for text in ["交办 县住建局 第一项 截止12月18日", "交办 县住建局 第二项 截止12月18日",
                 "交办 县住建局 第三项 截止12月18日", "交办 县住建局 第四项 截止11月30日",
                 "交办 县住建局 第五项 截止12月18日"]:
        assert sim.say("u_xianzhang", text, group="cid_leaders")[0].title.startswith("已交办")
    sim.say("u_zhujian", "办结 DB-2026-0002 已完成")
    sim.say("u_zhujian", "延期 DB-2026-0003 12月25日 需等待省里批复")
    assert sim.wait_for_draft("DB-2026-0004", sh(2026, 12, 7, 18)) == "DB-2026-0004-Y1"
    for text in ["交办 县住建局 第六项 截止12月18日", "交办 县住建局 第七项 截止12月18日"]:
        assert sim.say("u_xianzhang", text, group="cid_leaders")[0].title.startswith("已交办")
    assert sim.say("u_zhujian", "难以执行 DB-2026-0007 需协调多部门")[0].title.startswith("难以执行已反馈")
    sim.engine.dispose()
    return folder / "county.db"


@pytest.mark.parametrize("role", list(PEOPLE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_role_may_use_command_only_if_allowed(county, tmp_path, role, command):
    db = tmp_path / "case.db"
    shutil.copy(county, db)
    engine = make_engine(f"sqlite:///{db}")
    bot = Bot(engine, Settings(), FakeClock(sh(2026, 12, 7, 17, 45)), WorkCalendar())  # just after the draft
    before = dump(engine)
    replies = bot.handle_sync(Incoming(msg_id="m-1", sender_id=PEOPLE[role], text=COMMANDS[command]))
    changed = dump(engine) != before
    assert len(replies) == 1
    reply = replies[0]
    if command in CHANGES:
        assert changed == (role in CHANGES[command]), f"{role} {command}: {reply.text}"
    else:
        assert not changed
        refused = reply.title in {"未登记", "无权使用"}
        assert refused == (role not in ANSWERS[command]), f"{role} {command}: {reply.text}"
    if role not in CHANGES.get(command, ANSWERS.get(command)):
        assert reply.title in {"未登记", "无权使用", "不是本单位事项", "无权操作", "无权撤销", "无权审批", "无权签发"}, \
            f"{role} {command}: {reply.title} {reply.text}"
    engine.dispose()
