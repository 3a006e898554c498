"""The deadline grammar against the real 2026 calendar (国庆 10月1–7日, 中秋 9月25–27日, 调休 9月20日 and 10月10日)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.deadlines import DeadlineError, describe, extract_deadline, parse_deadline
from reminders.calendar import WorkCalendar
from reminders.rules import Rules
from storage.tz import SHANGHAI, shanghai

CAL = WorkCalendar()
RULES = Rules()
WED = shanghai(2026, 11, 25, 10)  # Wednesday; this week is 11月23日–29日
FRI = shanghai(2026, 11, 27, 16)
BEFORE_HOLIDAYS = shanghai(2026, 9, 1, 10)  # Tuesday


def test_calendar_facts_the_cases_rely_on() -> None:
    holidays = [date(2026, 9, 25), date(2026, 10, 1), date(2026, 10, 7), date(2026, 5, 31), date(2026, 10, 31)]
    make_up_days = [date(2026, 9, 20), date(2026, 10, 10), date(2026, 2, 28)]  # Sunday, Saturday, Saturday
    assert not any(CAL.is_workday(d) for d in holidays)
    assert all(CAL.is_workday(d) for d in make_up_days)
    assert CAL.is_estimate(date(2027, 1, 8)) and not CAL.is_estimate(date(2026, 12, 31))


CASES = [
    # SPEC §6
    ("12月10日", WED, shanghai(2026, 12, 10, 17, 30)),
    ("12月10日前", WED, shanghai(2026, 12, 10, 17, 30)),
    ("2026年12月10日17时", WED, shanghai(2026, 12, 10, 17)),
    ("12-10", WED, shanghai(2026, 12, 10, 17, 30)),
    ("下周五", WED, shanghai(2026, 12, 4, 17, 30)),
    ("明天下午5点", WED, shanghai(2026, 11, 26, 17)),
    ("3天内", WED, shanghai(2026, 11, 30, 17, 30)),  # 11月28日 is a Saturday → Monday
    ("三天内", WED, shanghai(2026, 11, 30, 17, 30)),
    ("7个工作日内", WED, shanghai(2026, 12, 4, 17, 30)),
    ("本月底", WED, shanghai(2026, 11, 30, 17, 30)),
    ("今天18:00", WED, shanghai(2026, 11, 25, 18)),
    # dates and times
    ("12月10日17:00", WED, shanghai(2026, 12, 10, 17)),
    ("12月10日 17：00", WED, shanghai(2026, 12, 10, 17)),
    ("12/10", WED, shanghai(2026, 12, 10, 17, 30)),
    ("12.10", WED, shanghai(2026, 12, 10, 17, 30)),
    ("１２月１０日", WED, shanghai(2026, 12, 10, 17, 30)),
    ("十二月十日", WED, shanghai(2026, 12, 10, 17, 30)),
    ("12月10号", WED, shanghai(2026, 12, 10, 17, 30)),
    ("2026-12-10", WED, shanghai(2026, 12, 10, 17, 30)),
    ("2026/12/10", WED, shanghai(2026, 12, 10, 17, 30)),
    ("截止12月10日", WED, shanghai(2026, 12, 10, 17, 30)),
    ("于12月10日前办结", WED, shanghai(2026, 12, 10, 17, 30)),
    ("12月10日下午", WED, shanghai(2026, 12, 10, 17, 30)),
    ("下个月10号", WED, shanghai(2026, 12, 10, 17, 30)),
    ("10号", shanghai(2026, 11, 5, 10), shanghai(2026, 11, 10, 17, 30)),
    ("上午10点", shanghai(2026, 11, 25, 8), shanghai(2026, 11, 25, 10)),
    ("下午3点半", WED, shanghai(2026, 11, 25, 15, 30)),
    ("晚上8点", WED, shanghai(2026, 11, 25, 20)),
    ("中午12点", WED, shanghai(2026, 11, 25, 12)),
    ("明天5点", WED, shanghai(2026, 11, 26, 17)),  # no dawn deadlines
    ("明早9点", WED, shanghai(2026, 11, 26, 9)),
    ("今天", WED, shanghai(2026, 11, 25, 17, 30)),
    ("后天", WED, shanghai(2026, 11, 27, 17, 30)),
    ("大后天", WED, shanghai(2026, 11, 30, 17, 30)),  # Saturday → Monday
    # weeks
    ("下下周一", WED, shanghai(2026, 12, 7, 17, 30)),
    ("周五前", WED, shanghai(2026, 11, 27, 17, 30)),
    ("这周五", WED, shanghai(2026, 11, 27, 17, 30)),
    ("本周五下班前", WED, shanghai(2026, 11, 27, 17, 30)),
    ("星期五", WED, shanghai(2026, 11, 27, 17, 30)),
    ("礼拜五", WED, shanghai(2026, 11, 27, 17, 30)),
    ("下个礼拜三", WED, shanghai(2026, 12, 2, 17, 30)),
    ("周五", FRI, shanghai(2026, 11, 27, 17, 30)),  # today, still before 17:30
    ("周五", shanghai(2026, 11, 27, 18), shanghai(2026, 12, 4, 17, 30)),
    ("周五下午3点", FRI, shanghai(2026, 12, 4, 15)),
    ("本周内", WED, shanghai(2026, 11, 27, 17, 30)),  # Sunday → back to Friday
    # periods
    ("月底前", WED, shanghai(2026, 11, 30, 17, 30)),
    ("年底前", WED, shanghai(2026, 12, 31, 17, 30)),
    ("下月底", WED, shanghai(2026, 12, 31, 17, 30)),
    ("2小时内", WED, shanghai(2026, 11, 25, 12)),
    ("半小时内", WED, shanghai(2026, 11, 25, 10, 30)),
    ("15个工作日", WED, shanghai(2026, 12, 16, 17, 30)),
    ("十个工作日内", WED, shanghai(2026, 12, 9, 17, 30)),
    ("半个月内", WED, shanghai(2026, 12, 10, 17, 30)),
    ("一周内", WED, shanghai(2026, 12, 2, 17, 30)),
    ("两周内", WED, shanghai(2026, 12, 9, 17, 30)),
    ("1个月内", WED, shanghai(2026, 12, 25, 17, 30)),
    ("1个月内", shanghai(2026, 1, 31, 10), shanghai(2026, 2, 28, 17, 30)),  # clamped; 2月28日 is 调休 Saturday
    # the 2026 calendar
    ("7个工作日内", shanghai(2026, 9, 29, 10), shanghai(2026, 10, 14, 17, 30)),  # across 国庆, 10月10日 counts
    ("3个工作日内", shanghai(2026, 9, 18, 10), shanghai(2026, 9, 22, 17, 30)),  # Friday; Sunday 9月20日 counts
    ("3个工作日内", FRI, shanghai(2026, 12, 2, 17, 30)),
    ("3天内", shanghai(2026, 9, 29, 10), shanghai(2026, 10, 8, 17, 30)),  # 10月2日 holiday → first working day
    ("10月10日", BEFORE_HOLIDAYS, shanghai(2026, 10, 10, 17, 30)),  # 调休 Saturday: a working day, stays
    ("2026年10月1日", BEFORE_HOLIDAYS, shanghai(2026, 10, 8, 17, 30)),
    ("10月1日上午10点", BEFORE_HOLIDAYS, shanghai(2026, 10, 1, 10)),  # a written time is kept
    ("9月25日", BEFORE_HOLIDAYS, shanghai(2026, 9, 28, 17, 30)),  # 中秋
    ("星期日", shanghai(2026, 9, 15, 10), shanghai(2026, 9, 20, 17, 30)),  # 调休 Sunday stays
    ("星期天前", BEFORE_HOLIDAYS, shanghai(2026, 9, 7, 17, 30)),
    ("12月20日", WED, shanghai(2026, 12, 21, 17, 30)),  # Sunday → Monday
    ("月底前", shanghai(2026, 5, 10, 10), shanghai(2026, 5, 29, 17, 30)),  # 5月31日 Sunday → back to Friday
    ("月底前", shanghai(2026, 10, 10, 10), shanghai(2026, 10, 30, 17, 30)),
    ("本月底", shanghai(2026, 2, 10, 10), shanghai(2026, 2, 28, 17, 30)),  # 调休 Saturday stays
    ("2027年1月8日", WED, shanghai(2027, 1, 8, 17, 30)),
    ("1月5日", shanghai(2026, 12, 20, 10), shanghai(2027, 1, 5, 17, 30)),
    ("11月10日", shanghai(2026, 12, 15, 10), shanghai(2027, 11, 10, 17, 30)),  # more than 30 days ago
    ("2月29日", shanghai(2027, 12, 1, 10), shanghai(2028, 2, 29, 17, 30)),
]


@pytest.mark.parametrize(("expr", "now", "expected"), CASES)
def test_parse(expr: str, now: datetime, expected: datetime) -> None:
    deadline = parse_deadline(expr, now, CAL, RULES)
    assert deadline.at == expected
    assert deadline.at.tzinfo is not None and deadline.at.utcoffset() == timedelta(hours=8)
    assert deadline.estimate == CAL.is_estimate(expected.date())
    assert deadline.source == expr.strip()


def test_estimate_and_source() -> None:
    assert parse_deadline("2027年1月8日", WED, CAL, RULES).estimate
    assert not parse_deadline("12月10日", WED, CAL, RULES).estimate
    assert parse_deadline("  截止下周五前 ", WED, CAL, RULES).source == "截止下周五前"


def test_urgent_does_not_change_parsing() -> None:
    assert parse_deadline("2小时内", WED, CAL, RULES, urgent=True) == parse_deadline("2小时内", WED, CAL, RULES)


EXTRACT = [
    ("完成全县燃气管道隐患排查并报送整改清单 截止12月10日", shanghai(2026, 12, 10, 17, 30), "完成全县燃气管道隐患排查并报送整改清单"),
    ("燃气隐患排查 3个工作日内", shanghai(2026, 11, 30, 17, 30), "燃气隐患排查"),
    ("特急 燃气隐患排查 2小时内", shanghai(2026, 11, 25, 12), "特急 燃气隐患排查"),
    ("燃气排查12月10日前完成", shanghai(2026, 12, 10, 17, 30), "燃气排查"),
    ("12月10日前完成燃气排查", shanghai(2026, 12, 10, 17, 30), "完成燃气排查"),
    ("请于12月10日前报送材料", shanghai(2026, 12, 10, 17, 30), "请报送材料"),
    ("在12月10日前完成排查", shanghai(2026, 12, 10, 17, 30), "完成排查"),
    ("完成排查（截止12月10日）", shanghai(2026, 12, 10, 17, 30), "完成排查"),
    ("完成排查，截止12月10日，并报送", shanghai(2026, 12, 10, 17, 30), "完成排查，并报送"),
    ("完成排查 下周五前 并报送", shanghai(2026, 12, 4, 17, 30), "完成排查 并报送"),
    ("12月20日 乡镇管网图纸未移交，需补测", shanghai(2026, 12, 21, 17, 30), "乡镇管网图纸未移交，需补测"),
    ("报送第3季度报表 截止12月10日", shanghai(2026, 12, 10, 17, 30), "报送第3季度报表"),
    ("燃气排查 周五", shanghai(2026, 11, 27, 17, 30), "燃气排查"),
    ("完成排查 12-10", shanghai(2026, 12, 10, 17, 30), "完成排查"),
    ("下午3点前报送", shanghai(2026, 11, 25, 15), "报送"),
    ("燃气排查 １２月１０日前", shanghai(2026, 12, 10, 17, 30), "燃气排查"),
    ("12月10日前完成初查 12月20日前完成整改", shanghai(2026, 12, 21, 17, 30), "12月10日前完成初查 完成整改"),  # the last
    ("截止12月10日 完成排查 12-20", shanghai(2026, 12, 10, 17, 30), "完成排查 12-20"),  # after 截止 wins
    # ordinary content is not a deadline
    ("排查20处隐患", None, "排查20处隐患"),
    ("完成3个乡镇排查", None, "完成3个乡镇排查"),
    ("关于12月10日会议精神的落实", None, "关于12月10日会议精神的落实"),
    ("12月10日起施行新规", None, "12月10日起施行新规"),
    ("存在12月10日的问题", None, "存在12月10日的问题"),
    ("排查3.5公里管道", None, "排查3.5公里管道"),
    ("预算 12.50 万元", None, "预算 12.50 万元"),
    ("10号楼燃气排查", None, "10号楼燃气排查"),
    ("每周五例会制度落实", None, "每周五例会制度落实"),
    ("截止目前已完成城区排查", None, "截止目前已完成城区排查"),
    ("一时难以完成", None, "一时难以完成"),
    ("DB-2026-0042 完成", None, "DB-2026-0042 完成"),
]


@pytest.mark.parametrize(("text", "expected", "title"), EXTRACT)
def test_extract(text: str, expected: datetime | None, title: str) -> None:
    deadline, rest = extract_deadline(text, WED, CAL, RULES)
    assert (deadline.at if deadline else None) == expected
    assert rest == title


def test_extract_source_is_the_expression_as_written() -> None:
    deadline, _ = extract_deadline("燃气排查 下周五前 并报送", WED, CAL, RULES)
    assert deadline is not None and deadline.source == "下周五前"


ERRORS = [
    ("13月40日", WED, "unparsable"),
    ("2月30日", WED, "unparsable"),
    ("31号", shanghai(2026, 11, 5, 10), "unparsable"),  # November has 30 days
    ("下个月31号", shanghai(2026, 10, 5, 10), "unparsable"),
    ("下午12点", WED, "unparsable"),
    ("0天内", WED, "unparsable"),
    ("半天内", WED, "unparsable"),
    ("3天", WED, "unparsable"),  # a span needs 内
    ("上周五", WED, "unparsable"),
    ("明年某天", WED, "unparsable"),
    ("", WED, "unparsable"),
    ("12月10日", shanghai(2026, 12, 15, 10), "past"),  # 5 days ago: a mistake, not next year
    ("12-14", shanghai(2026, 12, 15, 10), "past"),
    ("本周一", WED, "past"),
    ("这周五", shanghai(2026, 11, 28, 10), "past"),
    ("今天", shanghai(2026, 11, 25, 18), "past"),
    ("上午10点", WED, "past"),  # exactly now is not ahead of now
    ("10号", WED, "past"),
    ("2025年12月10日", WED, "past"),
    ("月底前", shanghai(2026, 5, 29, 18), "past"),  # 5月31日 moves back to Friday 29th, already over
]


@pytest.mark.parametrize(("expr", "now", "kind"), ERRORS)
def test_parse_errors(expr: str, now: datetime, kind: str) -> None:
    with pytest.raises(DeadlineError) as caught:
        parse_deadline(expr, now, CAL, RULES)
    assert caught.value.kind == kind
    assert caught.value.expression == expr.strip()


@pytest.mark.parametrize(
    ("text", "now", "kind", "expression"),
    [
        ("完成排查 截止13月40日", WED, "unparsable", "截止13月40日"),
        ("完成排查 截止下周八", WED, "unparsable", "截止下周八"),
        ("完成排查 截止12月10日", shanghai(2026, 12, 15, 10), "past", "截止12月10日"),
        ("燃气排查 12-10", shanghai(2026, 12, 15, 10), "past", "12-10"),
    ],
)
def test_extract_errors(text: str, now: datetime, kind: str, expression: str) -> None:
    with pytest.raises(DeadlineError) as caught:
        extract_deadline(text, now, CAL, RULES)
    assert (caught.value.kind, caught.value.expression) == (kind, expression)


def test_describe() -> None:
    assert describe(shanghai(2026, 12, 10, 17, 30), WED) == "12月10日（周四）17:30"
    assert describe(shanghai(2027, 1, 8, 17, 30), WED) == "2027年1月8日（周五）17:30"
    assert describe(datetime(2026, 12, 10, 9, 30, tzinfo=SHANGHAI).astimezone(), WED) == "12月10日（周四）09:30"


# The same answers as CAL for 2026–2027, read from sets: chinese_calendar takes ~30 µs a day, too slow for
# thousands of examples each counting up to 90 days.
_DAYS = [date(2026, 1, 1) + timedelta(days=i) for i in range(730)]
FAST_CAL = WorkCalendar(
    holidays={d for d in _DAYS if not CAL.is_workday(d)}, workdays={d for d in _DAYS if CAL.is_workday(d)}
)

GRAMMAR_BITS = st.sampled_from(
    list("0123456789一二两三十百年月日号周天个前内底末点时分半上下午晚本这今明后截止于至:-./ ，完成")
    + ["星期", "工作日", "小时", "下午", "截止", "礼拜", "１２", "："]
)
TEXTS = st.one_of(st.text(max_size=40), st.lists(GRAMMAR_BITS, max_size=20).map("".join))


@settings(max_examples=2000, deadline=None)
@given(TEXTS)
def test_any_text_either_parses_or_says_why(text: str) -> None:
    try:
        deadline, rest = extract_deadline(text, WED, FAST_CAL, RULES)
    except DeadlineError as exc:
        assert exc.kind in ("unparsable", "past")
    else:
        assert deadline is None or deadline.at > WED
        assert (deadline is None and rest == text) or len(rest) < len(text)


@settings(max_examples=2000, deadline=None)
@given(st.integers(1, 60), st.integers(0, 545), st.integers(0, 24 * 60 - 1))
def test_working_days_are_counted_on_the_calendar(n: int, day: int, minute: int) -> None:
    now = shanghai(2026, 1, 1) + timedelta(days=day, minutes=minute)
    due = parse_deadline(f"{n}个工作日内", now, FAST_CAL, RULES).at
    assert FAST_CAL.is_workday(due.date()) and due.time() == RULES.due_time
    between = (now.date() + timedelta(days=i) for i in range(1, (due.date() - now.date()).days + 1))
    assert sum(FAST_CAL.is_workday(d) for d in between) == n
