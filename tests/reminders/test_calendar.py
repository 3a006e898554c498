"""Working days: the library's holidays and 调休, the operator's overrides, and the 2027 estimate."""

from __future__ import annotations

from datetime import date

import pytest

from reminders.calendar import CalendarError, WorkCalendar

CAL = WorkCalendar()


@pytest.mark.parametrize(("start", "n", "expected"), [
    (date(2026, 9, 30), 1, date(2026, 10, 8)),  # over National Day
    (date(2026, 9, 26), 1, date(2026, 9, 28)),  # from a holiday Saturday: the next working day, not two
    (date(2026, 10, 9), 1, date(2026, 10, 10)),  # 调休 Saturday counts
    (date(2026, 9, 18), 1, date(2026, 9, 20)),  # 调休 Sunday counts
    (date(2026, 11, 23), 7, date(2026, 12, 2)),
    (date(2026, 11, 23), 0, date(2026, 11, 23)),
])
def test_add_workdays(start, n, expected):
    assert CAL.add_workdays(start, n) == expected


def test_overrides_win_over_the_library_and_cover_a_new_year(tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text("years: [2027]\nholidays: [2027-02-08, 2026-12-31]\nworkdays: [2027-02-06]\n", encoding="utf-8")
    cal = WorkCalendar.from_file(path)
    assert not cal.is_workday(date(2026, 12, 31))  # overrides the library
    assert cal.is_workday(date(2027, 2, 6))  # a Saturday made a working day
    assert not cal.is_workday(date(2027, 2, 8))
    assert not cal.is_estimate(date(2027, 3, 1))  # the operator vouched for 2027
    assert CAL.is_estimate(date(2027, 3, 1)) and not CAL.is_estimate(date(2026, 3, 1))


def test_a_bad_overrides_file_is_a_clear_error(tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text("holidays: [tomorrow]\n", encoding="utf-8")
    with pytest.raises(CalendarError, match="日期列表"):
        WorkCalendar.from_file(path)
    with pytest.raises(CalendarError, match="既是休息日又是工作日"):
        WorkCalendar({date(2027, 1, 1)}, {date(2027, 1, 1)})
