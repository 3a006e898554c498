"""`duban demo` plays the whole scenario of issue 2, and sends no notice twice."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from bot.cli import app


def test_demo_plays_the_whole_escalation():
    result = CliRunner().invoke(app, ["demo", "--no-colour"])
    assert result.exit_code == 0, result.output
    out = result.output
    sent = re.findall(r"^\[(\d\d-\d\d) 周. (\d\d:\d\d)\] 📤 → (.+?)：(.+)$", out, re.M)
    titles = [(day, time, to, title) for day, time, to, title in sent]

    def when(fragment: str, recipient: str = "王建华") -> list[str]:
        return [f"{d} {t}" for d, t, to, title in titles if fragment in title and recipient in to]

    assert "按7个工作日计" in out
    assert when("临期提醒 DB-2026-0001") == ["12-01 09:00"]
    assert when("蓝色督办单 DB-2026-0001-B1") == ["12-02 17:30"]
    assert when("待签发：🟡 黄色督办单 DB-2026-0001-Y1", "吴立新") == ["12-07 17:30"]
    assert when("黄色督办单 DB-2026-0001-Y1") == ["12-07 17:40"]
    assert "不能再申请延期" in out
    assert when("待签发：🔴 红色督办单 DB-2026-0001-R1", "周建国") == ["12-17 17:40"]
    assert when("红色督办单 DB-2026-0001-R1") == ["12-17 17:50"]
    assert when("红色督办单 DB-2026-0001-R2") == ["12-22 17:55"]
    assert not when("DB-2026-0001-R3", "")  # closed on 12-24: nothing after
    assert when("延期已批准 DB-2026-0002", "陈志强") == ["12-01 11:00"]
    assert when("临期提醒 DB-2026-0002", "陈志强") == ["12-17 09:00"]  # the clock restarted from 12-18
    assert not when("DB-2026-0002-B", "")
    assert re.search(r"县住建局\*\* -13分（🔵1 🟡1 🔴2）", out)
    assert "无一重复" in out
    # every notice appears once per recipient
    notices = [(to, title) for _, _, to, title in titles if "督办单 DB-" in title or "提醒 DB-" in title]
    assert len(notices) == len(set(notices))
