"""Working days of mainland China: statutory holidays and 调休 make-up days.

Order of authority for a date: the operator's overrides file, then chinese-calendar (official
State Council notices), then Monday–Friday as an *estimate* for a year nobody has published yet.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import chinese_calendar
import yaml
from chinese_calendar import constants

LIBRARY_YEARS = frozenset(d.year for d in constants.holidays) | frozenset(d.year for d in constants.workdays)


class CalendarError(ValueError):
    pass


class WorkCalendar:
    def __init__(
        self,
        holidays: set[date] | None = None,
        workdays: set[date] | None = None,
        covered_years: set[int] | None = None,
    ) -> None:
        self._holidays = frozenset(holidays or ())
        self._workdays = frozenset(workdays or ())
        if self._holidays & self._workdays:
            raise CalendarError(f"同一天既是休息日又是工作日：{sorted(self._holidays & self._workdays)[0]}")
        self._covered = frozenset(covered_years or ())
        self._known: dict[date, bool] = {}  # chinese_calendar scans its whole table on each call

    @classmethod
    def from_file(cls, path: Path | None) -> WorkCalendar:
        """Overrides file (YAML): `years: [2027]`, `holidays: [2027-01-01, …]`, `workdays: [2027-02-07]`."""
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CalendarError(f"无法读取节假日调整文件 {path}：{exc}") from exc

        def dates(key: str) -> set[date]:
            values = data.get(key) or []
            if not all(isinstance(v, date) for v in values):
                raise CalendarError(f"{path} 的 {key} 必须是日期列表，例如 2027-01-01")
            return set(values)

        return cls(dates("holidays"), dates("workdays"), set(data.get("years") or []))

    def is_workday(self, day: date) -> bool:
        known = self._known.get(day)
        if known is None:
            known = self._known[day] = self._look_up(day)
        return known

    def _look_up(self, day: date) -> bool:
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        if day.year in LIBRARY_YEARS:
            return chinese_calendar.is_workday(day)
        return day.weekday() < 5

    def is_estimate(self, day: date) -> bool:
        """True when no official schedule covers the date's year: the date is Monday–Friday guesswork."""
        return day.year not in LIBRARY_YEARS and day.year not in self._covered

    def add_workdays(self, day: date, n: int) -> date:
        """The n-th working day after `day` (n ≥ 1), or the same day for n = 0.

        Written over is_workday because chinese_calendar.find_workday counts a non-working start
        day as step zero and lands one day early.
        """
        if n < 0:
            raise ValueError("n must be ≥ 0")
        current = day
        while n > 0:
            current += timedelta(days=1)
            if self.is_workday(current):
                n -= 1
        return current

    def previous_workday(self, day: date) -> date:
        current = day - timedelta(days=1)
        while not self.is_workday(current):
            current -= timedelta(days=1)
        return current

    def workday_on_or_after(self, day: date) -> date:
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    def working_moment(self, moment: datetime, start: time, end: time) -> datetime:
        """`moment` if it falls in working hours, else the start of the next working period."""
        day = moment.date()
        if self.is_workday(day) and start <= moment.time() < end:
            return moment
        if self.is_workday(day) and moment.time() < start:
            return moment.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
        nxt = self.add_workdays(day, 1)
        return datetime.combine(nxt, start, tzinfo=moment.tzinfo)
