"""Chinese deadline expressions: 「12月10日前」「下周五」「3个工作日内」「明天下午5点」→ an aware datetime.

Why our own grammar: jionlp is GPL-3 and ~245 MB, duckling needs a JVM, and dateparser does not
understand Chinese deadlines (工作日, 月底, 下下周一 …). The forms a 督办 message uses are few.

Rules (times are Asia/Shanghai; "due time" is `Rules.due_time`, 17:30 by default):

1. A date without a time falls due at the due time, the end of that working day. 「X前」「X之前」
   「X下班前」 mean the same as X (end of day X, not the day before). A written time (17时, 18:00,
   下午5点) is used as is. 上午/中午 without an hour mean 12:00, 下午 without an hour the due time.
   An hour 1–6 written with 点/时 and no 上午/凌晨/… is read as afternoon (明天5点 = 17:00): nobody sets
   a deadline before dawn. 「HH:MM」 is always 24-hour.
2. 「N天内」「N日内」 = N calendar days: today + N at the due time. 「N个工作日(内)」 = the N-th working day
   after today by the calendar (holidays and 调休 count, never Monday–Friday arithmetic).
   「N小时内」 = now + N hours exactly (半小时 = 30 minutes). 「一周内」 = 7 days, 「两周内」 = 14,
   「半个月内」 = 15 days, 「N个月内」 = the same day N months later (clamped to the month's end).
   Spans other than 工作日 need 内/之内/以内: 「3天」 alone is not a deadline.
3. A deadline without a written time that lands on a non-working day moves forward to the next working
   day — nobody can deliver on a holiday. A written time is kept as written; 「N小时内」 never moves.
   Exception: 月底/年底/本周内 move *backwards* to the previous working day, because "by the end of
   the month" must stay inside the month.
4. A month-day without a year is its next occurrence: this year if still ahead, else next year —
   unless it passed within the last 30 days, which is a mistake, not a wish for next year: "past".
   A bare day (「10号」) means this month ("past" once over: write 「下个月10号」).
5. 「周五」「星期五」「礼拜五」 = the next Friday on or after today (today only if its time has not
   passed). 「本周五」「这周五」 = the Friday of this Monday–Sunday week, "past" if gone. 「下周五」 = next
   week's Friday; 「下下周一」 = Monday of the week after next.
6. 「本月底」「月底前」 = the month's last day, 「年底前」 = 31 December, 「下月底」 next month's, 「本周内」
   this week's Sunday — each with rule 3's backwards move.
7. 「今天」 = today at the due time, 「明天下午5点」 = tomorrow 17:00, 「后天」「大后天」 = +2, +3 days.
8. A deadline that is not after now raises DeadlineError("past"); so does one whose written date
   (before rule 3's move) is already over. Anything else unreadable is DeadlineError("unparsable").
9. `urgent` does not change parsing (hours are always accepted); it is there for the caller's checks.

Finding a deadline inside free text (`extract_deadline`) must not eat ordinary content. An expression
counts when it carries a marker (截止/截至/限/于/在 before it, 前/内/之前/以前/下班前/截止 after it, or a
final 完成/办结), or when it ends at a word boundary and is unmistakably a date (月…日, a year, 下周五,
明天, 月底, N个工作日). Ambiguous shapes (12.10, 10号, 周五, 下午3点) need a marker or to stand alone
between spaces, so 「3.5公里」「10号楼」「每周五例会」 are not deadlines. With several candidates the one
after 截止 wins, else the last.
"""

from __future__ import annotations

import calendar as monthcal
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from message_templates.render import WEEKDAYS, md_date
from reminders.calendar import WorkCalendar
from reminders.rules import Rules
from storage.tz import SHANGHAI, to_shanghai


@dataclass(frozen=True)
class Deadline:
    at: datetime  # aware, Asia/Shanghai
    estimate: bool  # the date's year has no official holiday data (WorkCalendar.is_estimate)
    source: str  # the matched expression as written, e.g. "下周五前"
    moved_from: date | None = None  # the day as written, when it was a rest day and the deadline moved


class DeadlineError(ValueError):
    def __init__(self, kind: str, expression: str) -> None:
        super().__init__(f"{'截止时间已过' if kind == 'past' else '无法识别的截止时间'}：{expression}")
        self.kind = kind  # "unparsable" or "past"
        self.expression = expression


class _Past(Exception):
    """The expression is understood but already over (kept apart from ValueError = unreadable)."""


# ---- the grammar --------------------------------------------------------------------------------

_CN_DIGITS = "零〇一二两三四五六七八九十百"
_NUM = rf"(?:[0-9]{{1,4}}|[{_CN_DIGITS}]{{1,5}})"
_PERIOD = "上午|早上|早晨|凌晨|中午|下午|傍晚|晚上|夜里|夜间|早|晚"

_DURATION = rf"""
    (?P<dur_n>{_NUM}|半)\s*
    (?: (?P<dur_workdays>个?工作日)
      | (?P<dur_unit>天|日|个?小时|个?钟头|周|个?星期|个?礼拜|个月|(?<=半)月)(?=\s*[之以]?内) )
"""
_DATE = rf"""
      (?P<ymd>(?P<y>[0-9]{{4}})\s*年\s*(?P<y_m>{_NUM})\s*月\s*(?P<y_d>{_NUM})\s*[日号]?)
    | (?P<ymd_num>(?P<yn>[0-9]{{4}})(?P<ysep>[-/.])(?P<yn_m>[0-9]{{1,2}})(?P=ysep)(?P<yn_d>[0-9]{{1,2}})(?![0-9]))
    | (?P<year_end_of>(?P<ye_y>[0-9]{{4}})\s*年\s*[底末])
    | (?P<month_end>(?<![上下去前每])(?:本|这个?)?月[底末]|(?:本|这个?)月内)
    | (?P<next_month_end>下个?月[底末])
    | (?P<year_end>(?<![去前明上每{_CN_DIGITS}0-9])(?:今|本)?年(?:底|末|内))
    | (?P<week_end>(?P<we_rel>下|本|这)个?周内)
    | (?P<rel_month>(?P<rm>下个?月|次月|本月|这个?月)\s*(?P<rm_d>{_NUM})\s*[日号])
    | (?P<md>(?P<m>{_NUM})\s*月\s*(?P<d>{_NUM})\s*[日号]?)
    | (?P<md_num>(?<![0-9])(?<![0-9][-/.])(?P<n_m>[0-9]{{1,2}})[-/.](?P<n_d>[0-9]{{1,2}})(?![0-9])(?![-/.][0-9]))
    | (?P<week>(?<![每上隔])(?P<wrel>下下个?|下个?|本|这个?)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7]))
    | (?P<dayword>大后天|后天|明天|明日|今天|今日|今(?=晚)|明(?=[早晚]))
    | (?P<bare_day>(?<!月)(?P<bd>{_NUM})\s*[日号])
"""
_CLOCK = rf"""
    (?P<period>{_PERIOD})?\s*
    (?: (?P<hh>[0-9]{{1,2}})\s*:\s*(?P<mm>[0-9]{{2}})(?![0-9])
      | (?P<h>{_NUM})\s*[点时](?:(?P<half>半)|(?P<mi>{_NUM})分?)?整? )
"""
# The date is optional so a bare time (下午3点) matches; a match with neither is discarded.
_CORE = re.compile(
    rf"(?:{_DURATION})|(?P<date>{_DATE})?(?:\s*(?:{_CLOCK}|(?P<period_only>上午|中午|下午)))?",
    re.VERBOSE,
)
_PREFIX_WORDS = r"(?:截止到|截止至|截止于|截止|截至到|截至于|截至|最迟于|最迟|最晚于|最晚|限期|限于|限|于|在)"
_PREFIX = re.compile(rf"{_PREFIX_WORDS}\s*$")
_LEADING = re.compile(rf"{_PREFIX_WORDS}?\s*")
_SINGLE_CHAR_PREFIX = frozenset("于在限")  # only a marker when not the tail of a word (关于, 存在, 无限)
_AFTER_WORD = frozenset("请要须应需必并争")  # 请于, 要在, 务必于…: words that may stand before 于/在/限
_PARTICLE = re.compile(r"\s*(?:下班之?前|之前|以前|前(?![往后夕])|之内|以内|内|截止|为止)")
_FINISH = re.compile(r"\s*(?:完成|办结)(?=[\s\W]*$)")  # only when it ends the text: 「…前完成排查」 keeps it
_CUTOFF = re.compile(r"截[止至][到至于]?\s*")
_DEADLINE_START = frozenset("0123456789" + _CN_DIGITS + "本这下今明后大周星礼月年半")
_WEEKDAYS = {c: i for i, c in enumerate(WEEKDAYS)} | {"天": 6} | {str(i + 1): i for i in range(7)}
_DAYWORDS = {"今天": 0, "今日": 0, "今": 0, "明天": 1, "明日": 1, "明": 1, "后天": 2, "大后天": 3}
_MORNING = frozenset({"上午", "早上", "早晨", "凌晨", "早"})
_EVENING = frozenset({"下午", "傍晚", "晚上", "夜里", "夜间", "晚"})
_RECENT = timedelta(days=30)  # rule 4: a month-day this recently past is a typo, not next year
_MAX_COUNT = 999  # 「N天内」 and friends; larger is a typo (and would overflow the calendar)
# Full-width ASCII (１２／１０, １７：００) and the ideographic space, one character for one so spans stay valid.
_HALF_WIDTH = {0xFF01 + i: 0x21 + i for i in range(0x5E)} | {0x3000: 0x20}


@dataclass(frozen=True)
class _Candidate:
    start: int  # the whole expression, 截止… to …前
    end: int
    core: re.Match[str]
    marked: bool  # has a 截止/前/内 particle
    after_cutoff: bool  # preceded by 截止/截至

    @property
    def weak(self) -> bool:
        """Shapes that are also ordinary text: 12.10, 10号, 周五, 下午3点."""
        g = self.core
        return g["dur_n"] is None and (
            g["date"] is None or g["md_num"] is not None or g["bare_day"] is not None
            or (g["week"] is not None and g["wrel"] is None)
        )


def _is_boundary(s: str, i: int) -> bool:
    """Position i is outside the text or not part of a word."""
    return not 0 <= i < len(s) or not s[i].isalnum()


def _continues_number(prev: str, ch: str) -> bool:
    """A match may not start in the middle of a number (the 2 of 12月)."""
    return (prev.isascii() and prev.isdigit() and ch.isascii() and ch.isdigit()) or (
        prev in _CN_DIGITS and ch in _CN_DIGITS
    )


def _core_at(s: str, i: int) -> re.Match[str] | None:
    m = _CORE.match(s, i)
    if m is None or not (m["dur_n"] or m["date"] or m["hh"] or m["h"]):
        return None
    return m


def _prefix(s: str, start: int) -> re.Match[str] | None:
    """截止/于/限… right before `start`; 于 of 关于 or 在 of 存在 is part of another word, not a marker."""
    prefix = _PREFIX.search(s, 0, start)
    if prefix and prefix.group().strip() in _SINGLE_CHAR_PREFIX and prefix.start() > 0:
        before = s[prefix.start() - 1]
        if before.isalnum() and before not in _AFTER_WORD:
            return None
    return prefix


def _extend(s: str, core: re.Match[str]) -> _Candidate:
    """The core with its 截止 before and its 前/内 (and a final 完成/办结) after."""
    start, end = core.start(), core.end()
    prefix = _prefix(s, start)
    marked = prefix is not None
    if prefix:
        start = prefix.start()
    if particle := _PARTICLE.match(s, end):
        end, marked = particle.end(), True
    if finish := _FINISH.match(s, end):
        end, marked = finish.end(), True
    after_cutoff = prefix is not None and prefix.group().startswith(("截止", "截至"))
    return _Candidate(start, end, core, marked, after_cutoff)


def _candidates(s: str) -> list[_Candidate]:
    """Every expression in `s`, keeping only the longest where they overlap (下下周一, not 下周一)."""
    cores: list[re.Match[str]] = []
    for i, ch in enumerate(s):
        if ch.isspace() or (i > 0 and _continues_number(s[i - 1], ch)):
            continue
        if (m := _core_at(s, i)) is not None:
            cores.append(m)
    longest = [
        m for m in cores
        if not any(o is not m and o.start() <= m.start() and m.end() <= o.end() for o in cores)
    ]
    return [_extend(s, m) for m in longest]


def _accepted(s: str, c: _Candidate) -> bool:
    if c.marked:
        return True
    ends_word = _is_boundary(s, c.core.end())
    if c.weak:
        return ends_word and _is_boundary(s, c.core.start() - 1)
    return ends_word


# ---- meaning ------------------------------------------------------------------------------------

def _number(text: str) -> int:
    if text.isascii():
        return int(text)
    import cn2an  # here, not at import: it pulls in a tenth of a second of start-up

    return int(cn2an.cn2an(text, "normal"))  # ValueError on nonsense such as 十十


def _count(text: str) -> int:
    n = _number(text)
    if not 1 <= n <= _MAX_COUNT:
        raise ValueError(f"count out of range: {n}")
    return n


def _clock(g: re.Match[str], rules: Rules) -> time | None:
    if g["period_only"]:
        return time(12, 0) if g["period_only"] in ("上午", "中午") else rules.due_time
    period = g["period"]
    if g["hh"] is not None:
        hour, minute = int(g["hh"]), int(g["mm"])
    elif g["h"] is not None:
        hour = _number(g["h"])
        minute = 30 if g["half"] else _number(g["mi"]) if g["mi"] else 0
        if period is None and 1 <= hour <= 6:  # rule 1: 明天5点 is 17:00
            hour += 12
    else:
        return None
    if period in _MORNING and hour > 12:
        raise ValueError(f"{period}{hour}点")
    if period == "中午" and hour < 11:
        hour += 12
    if period in _EVENING:
        if 1 <= hour <= 11:
            hour += 12
        elif not 12 < hour < 24:  # 晚上12点 / 下午0点: ambiguous
            raise ValueError(f"{period}{hour}点")
    return time(hour, minute)


def _add_months(day: date, months: int) -> date:
    years, month0 = divmod(day.month - 1 + months, 12)
    year = day.year + years
    return date(year, month0 + 1, min(day.day, monthcal.monthrange(year, month0 + 1)[1]))


def _month_end(year: int, month: int) -> date:
    return date(year, month, monthcal.monthrange(year, month)[1])


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, tzinfo=SHANGHAI)


def _next_occurrence(month: int, day: int, moment: time, now: datetime) -> date:
    """Rule 4. 2月29日 skips to a leap year's next occurrence only if that is the coming one."""
    for year in (now.year, now.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if _at(candidate, moment) > now:
            return candidate
        if now - _at(candidate, moment) <= _RECENT:
            raise _Past
    raise ValueError(f"no such date {month}月{day}日")


def _date(g: re.Match[str], now: datetime, moment: time) -> tuple[date, bool]:
    """The written date and whether rule 3 moves it backwards (月底) rather than forwards."""
    today = now.date()
    if g["ymd"]:
        return date(int(g["y"]), _number(g["y_m"]), _number(g["y_d"])), False
    if g["ymd_num"]:
        return date(int(g["yn"]), int(g["yn_m"]), int(g["yn_d"])), False
    if g["year_end_of"]:
        return date(int(g["ye_y"]), 12, 31), True
    if g["month_end"]:
        return _month_end(today.year, today.month), True
    if g["next_month_end"]:
        nxt = _add_months(today.replace(day=1), 1)
        return _month_end(nxt.year, nxt.month), True
    if g["year_end"]:
        return date(today.year, 12, 31), True
    monday = today - timedelta(days=today.weekday())
    if g["week_end"]:
        return monday + timedelta(days=13 if g["we_rel"] == "下" else 6), True
    if g["rel_month"]:
        first = _add_months(today.replace(day=1), 0 if g["rm"].startswith(("本", "这")) else 1)
        return first.replace(day=_number(g["rm_d"])), False
    if g["md"]:
        return _next_occurrence(_number(g["m"]), _number(g["d"]), moment, now), False
    if g["md_num"]:
        return _next_occurrence(int(g["n_m"]), int(g["n_d"]), moment, now), False
    if g["week"]:
        weekday, rel = _WEEKDAYS[g["wd"]], (g["wrel"] or "").rstrip("个")
        if rel:
            return monday + timedelta(days={"下下": 14, "下": 7}.get(rel, 0) + weekday), False
        day = today + timedelta(days=(weekday - today.weekday()) % 7)
        return (day + timedelta(days=7) if _at(day, moment) <= now else day), False
    if g["dayword"]:
        return today + timedelta(days=_DAYWORDS[g["dayword"]]), False
    return today.replace(day=_number(g["bd"])), False


def _duration(g: re.Match[str], now: datetime, cal: WorkCalendar) -> datetime | date:
    """Rule 2: a moment for hours, else a date (due at the due time, moved by rule 3)."""
    today, unit, half = now.date(), (g["dur_unit"] or "").lstrip("个"), g["dur_n"] == "半"
    if half:
        if unit in ("小时", "钟头"):
            return now + timedelta(minutes=30)
        if unit == "月":
            return today + timedelta(days=15)
        raise ValueError(f"半{unit}")
    n = _count(g["dur_n"])
    if g["dur_workdays"]:
        return cal.add_workdays(today, n)
    if unit in ("小时", "钟头"):
        return now + timedelta(hours=n)
    if unit in ("天", "日"):
        return today + timedelta(days=n)
    if unit == "月":
        return _add_months(today, n)
    return today + timedelta(weeks=n)  # 周 / 星期 / 礼拜


def _resolve(core: re.Match[str], now: datetime, cal: WorkCalendar, rules: Rules) -> tuple[datetime, date | None]:
    """The deadline, and the day as written when it fell on a rest day and was moved."""
    if core["dur_n"] is not None:
        result = _duration(core, now, cal)
        if isinstance(result, datetime):
            return result, None
        return _at(cal.workday_on_or_after(result), rules.due_time), None
    moment = _clock(core, rules)
    if core["date"] is None:
        day, backwards = now.date(), False
    else:
        day, backwards = _date(core, now, moment or rules.due_time)
    if _at(day, moment or rules.due_time) <= now:
        raise _Past
    if moment is not None:
        return _at(day, moment), None
    if not cal.is_workday(day):
        written = day
        day = cal.previous_workday(day) if backwards else cal.workday_on_or_after(day)
        return _at(day, rules.due_time), written
    return _at(day, rules.due_time), None


def _deadline(c: _Candidate, source: str, now: datetime, cal: WorkCalendar, rules: Rules) -> Deadline:
    try:
        at, moved_from = _resolve(c.core, now, cal, rules)
    except _Past:
        raise DeadlineError("past", source) from None
    except (ValueError, OverflowError) as exc:  # 13月40日, 2月30日, 十十天, year 0 or 9999 overflow
        raise DeadlineError("unparsable", source) from exc
    if at <= now:  # 月底 moved back before now
        raise DeadlineError("past", source)
    return Deadline(at=at, estimate=cal.is_estimate(at.date()), source=source, moved_from=moved_from)


# ---- public -------------------------------------------------------------------------------------

def parse_deadline(expr: str, now: datetime, cal: WorkCalendar, rules: Rules, *, urgent: bool = False) -> Deadline:
    """The whole of `expr` is one deadline (截止/限/于 before and 前/内/办结/完成 after are allowed).

    `urgent` is accepted for the caller's checks and does not change parsing (rule 9).
    """
    source = expr.strip()
    s = source.translate(_HALF_WIDTH)
    core = _core_at(s, _LEADING.match(s).end())
    candidate = _extend(s, core) if core else None
    if candidate is None or candidate.start != 0 or candidate.end != len(s):
        raise DeadlineError("unparsable", source)
    return _deadline(candidate, source, to_shanghai(now), cal, rules)


def extract_deadline(
    text: str, now: datetime, cal: WorkCalendar, rules: Rules, *, urgent: bool = False
) -> tuple[Deadline | None, str]:
    """One deadline inside free text, and the text without it (and its 截止/前/内) tidied.

    (None, text) when there is none; DeadlineError when one was clearly meant but is invalid or over.
    `urgent` does not change parsing (rule 9).
    """
    s = text.translate(_HALF_WIDTH)
    now = to_shanghai(now)
    found = [c for c in _candidates(s) if _accepted(s, c)]
    ordered = [c for c in reversed(found) if c.after_cutoff] + [c for c in reversed(found) if not c.after_cutoff]
    for c in ordered:
        source = text[c.start:c.end].strip()
        try:
            deadline = _deadline(c, source, now, cal, rules)
        except DeadlineError as exc:
            if exc.kind == "unparsable" and c.weak and not c.marked:
                continue  # 「预算 12.50 万元」: an ambiguous shape that is no date is just text
            raise
        return deadline, _remove(text, c.start, c.end)
    for cut in _CUTOFF.finditer(s):  # 「截止下周八」: a deadline was meant but none could be read
        if s[cut.end():cut.end() + 1] in _DEADLINE_START:
            raise DeadlineError("unparsable", text[cut.start():].split()[0])
    return None, text


_PUNCT = "，,。；;、：:！!？?"
_EMPTY_BRACKETS = re.compile(r"[（(【\[]\s*[）)】\]]")


def _remove(text: str, start: int, end: int) -> str:
    """Cut [start, end) and mend the seam: no doubled punctuation, no empty （）, single spaces."""
    left, right = text[:start], text[end:]
    spaced = left[-1:].isspace() or right[:1].isspace()
    left, right = left.rstrip(), right.lstrip()
    if left and right and left[-1] in _PUNCT and right[0] in _PUNCT:  # 「排查，截止12月10日，并报送」
        right = right[1:]
    joined = _EMPTY_BRACKETS.sub("", left + (" " if spaced else "") + right)
    return " ".join(joined.split()).strip(_PUNCT + " ")


def describe(deadline: datetime, now: datetime) -> str:
    """「12月10日（周四）17:30」, with the year when it is not now's year."""
    at, now = to_shanghai(deadline), to_shanghai(now)
    year = f"{at.year}年" if at.year != now.year else ""
    return f"{year}{md_date(at)}"
