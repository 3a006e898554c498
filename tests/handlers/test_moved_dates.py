"""A deadline written on a rest day moves to a working day, and the reply says so (issue 11 point 5)."""

from __future__ import annotations

from tests.helpers import HEAD, assign, task


def test_an_extension_to_a_sunday_says_it_moved_to_monday(sim) -> None:
    code = assign(sim)
    [reply] = sim.say(HEAD, f"延期 {code} 12月20日 乡镇管网图纸未移交，需补测")
    assert reply.text.startswith("12月20日（周日）为休息日，已顺延至12月21日（周一）。")
    assert task(sim, code).deadline.day == 10  # asked for, not granted: the deadline stands


def test_an_extension_to_a_working_day_says_nothing_about_moving(sim) -> None:
    code = assign(sim)
    [reply] = sim.say(HEAD, f"延期 {code} 12月18日 乡镇管网图纸未移交，需补测")
    assert "休息日" not in reply.text and "延期申请" in reply.text
