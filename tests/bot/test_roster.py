"""Roster files: the example is valid; mistakes are reported in Chinese with where they are."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.roster import RosterError, load_roster
from bot.simulation import ROSTER


def test_the_example_roster_is_a_small_county():
    roster = load_roster(ROSTER)
    roles = {p.role for p in roster.officials}
    assert {"county_head", "executive_deputy", "office_director", "supervisor"} <= roles
    assert len(roster.units) == 6 and {g.key for g in roster.groups} == {"leaders", "all_units"}
    result = CliRunner().invoke(app, ["roster", "check", str(ROSTER)])
    assert result.exit_code == 0 and "6 个单位" in result.output


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace("role: county_head", "role: mayor"), "角色 'mayor' 不认识"),
    (lambda t: t.replace("u_changwu", "u_xianzhang"), "人员 id 重复：u_xianzhang"),
    (lambda t: t.replace("aliases: [应急局", "aliases: [住建局"), "单位名称或简称重复：住建局"),
    (lambda t: t.replace("{key: leaders", "{key: bosses"), "缺少工作群 leaders"),
    (lambda t: t.replace("head: {id: u_jiaoyu, name: 林涛, title: 局长}", "boss: x"), "units.3"),
    (lambda t: t + "\n  - [unclosed", "不是合法的 YAML"),
])
def test_mistakes_are_reported_clearly(tmp_path, change, message):
    path = tmp_path / "roster.yaml"
    path.write_text(change(ROSTER.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(RosterError, match=message.replace("(", r"\(")):
        load_roster(path)
    result = CliRunner().invoke(app, ["roster", "check", str(path)])
    assert result.exit_code == 1


def test_a_replaced_unit_head_can_no_longer_act_for_the_unit(tmp_path):
    from bot.simulation import Simulation
    from storage.tz import shanghai

    sim = Simulation(f"sqlite:///{tmp_path}/r.db", shanghai(2026, 11, 23, 9, 30))
    sim.say("u_xianzhang", "交办 县住建局 燃气管道隐患排查", group="cid_leaders")
    path = tmp_path / "roster.yaml"
    path.write_text(ROSTER.read_text(encoding="utf-8").replace(
        "head: {id: u_zhujian, name: 王建华, title: 局长}", "head: {id: u_zhujian2, name: 张新, title: 局长}"),
        encoding="utf-8")
    sim.bot.load_roster(path)
    assert sim.say("u_zhujian", "签收 DB-2026-0001")[0].title == "未登记"
    assert sim.say("u_zhujian2", "签收 DB-2026-0001")[0].title.startswith("已签收")
    sim.engine.dispose()
