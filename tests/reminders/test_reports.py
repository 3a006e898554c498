"""Bulletins and reports over a simulated 2026 (reminders/reports.py, chart.py, ledger_export.py).

One deterministic year (fixed random seed) is played through the real bot: 交办 / 签收 / 进展 / 延期 /
同意延期 / 办结 / 退回 / 销号 / 撤销 / 签发 / 暂缓 through Bot.handle_sync, Bot.tick() at every moment a
task falls due, and reminders.reports.issue_due at 09:00 every day, as the scheduler calls it. The
database is built once per test session; tests that change it work on a copy.

Golden files: tests/reminders/golden/*.md hold the expected text. A mismatch fails with a unified diff and
writes the actual text next to the test's tmp dir; after checking the change by eye, copy it over.
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import random
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from matplotlib import font_manager
from openpyxl import load_workbook
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bot.app import Bot
from bot.clock import FakeClock
from bot.roster import load_roster
from bot.settings import Settings
from handlers.incoming import Incoming
from message_templates.reply import Reply
from reminders import reports, reviews
from reminders.calendar import WorkCalendar
from reminders.chart import cjk_family
from reminders.ledger_export import COLOUR_FILLS, export_ledger
from reminders.rules import Rules
from storage.db import create_schema, make_engine, transaction
from storage.models import (
    COLOURS,
    AuditEvent,
    Notice,
    NoticeKind,
    NoticeStatus,
    Outbox,
    OutboxStatus,
    Person,
    ProgressReport,
    ScoreEvent,
    Task,
    TaskStatus,
    Unit,
)
from storage.tz import SHANGHAI, shanghai

HERE = Path(__file__).parent
ROSTER = HERE / "fixtures" / "roster12.yaml"
GOLDEN = HERE / "golden"
TEMPLATES = HERE.parents[1] / "message_templates"
ERROR_TITLES = frozenset(re.search(r'set title = "([^"]+)"', p.read_text(encoding="utf-8"))[1]
                         for p in TEMPLATES.glob("error_*.md.j2"))
CODE = re.compile(r"DB-\d{4}-\d{4}")

SEED = 2026
START = shanghai(2026, 1, 1, 8)
END = shanghai(2026, 12, 31, 18)
LAST_ASSIGNMENT = date(2026, 12, 11)
GROUPS = {"leaders": "cid_leaders", "all_units": "cid_all_units"}
# `year` (tests/conftest.py) is played once a session: its readers here and in tests/bot/
# test_dashboard_browser.py run on one pytest-xdist worker, so no other worker plays it again
pytestmark = pytest.mark.xdist_group("simulated_year")
ASSIGNERS = (("u_ducha1", "cid_all_units"), ("u_ducha2", ""), ("u_xianzhang", "cid_leaders"),
             ("u_changwu", "cid_leaders"), ("u_fuxianzhang", "cid_leaders"), ("u_zhuren", "cid_all_units"))
TITLES = ("燃气管道隐患排查并报送整改清单", "城区背街小巷路灯修复", "农村危房改造进度核查", "校园周边交通安全整治",
          "秋冬季森林防火隐患排查", "农贸市场食品安全抽检", "重点项目征地拆迁协调", "老旧小区加装电梯摸底",
          "汛期地质灾害点巡查", "乡村振兴示范点建设", "12345热线积压工单清理", "县长批示件〔2026〕办理",
          "安全生产**大检查**[第二轮]", "城乡环境卫生整治回头看")


@dataclass(frozen=True)
class Profile:
    weight: float  # share of the year's tasks
    p_late: float
    late: tuple[int, int]  # calendar days past the deadline, when late
    p_stall: float  # a late task reports no progress at all until it is done


PROFILES = {
    "县住建局": Profile(9, 0.08, (1, 3), 0.0),  # ≥20 tasks, blues only: every 第九条 bonus
    "县应急局": Profile(6, 0.3, (1, 9), 0.2),  # ≥20 tasks, yellows, never red
    "县交通运输局": Profile(4, 0.35, (2, 25), 0.5),
    "县教育局": Profile(4, 0.15, (1, 8), 0.1),  # reds only from its two scripted tasks below
    "县卫健局": Profile(4, 0.15, (1, 9), 0.1),
    "县自然资源局": Profile(4, 0.2, (1, 20), 0.2),
    "县农业农村局": Profile(3, 0.15, (1, 9), 0.1),
    "县市场监管局": Profile(3, 0.1, (1, 6), 0.0),
    "县文旅局": Profile(1.6, 0.1, (1, 4), 0.0),  # between 5 and 20 tasks
    "城关镇": Profile(5, 0.2, (1, 16), 0.2),
    "文星街道": Profile(3, 0.2, (1, 12), 0.1),
    "河西乡": Profile(0.6, 0.3, (1, 4), 0.0),  # fewer than 5 tasks
}
AWAY = ("u_changwu", date(2026, 9, 14), date(2026, 9, 25))  # the 常务副县长 signs nothing for two weeks
# On top of the random tasks, so that the year surely holds what 第十条 and 措施10 speak of:
# (assigned on, unit, deadline, days late, stalled)
STORIES = ((date(2026, 2, 24), "县交通运输局", "10个工作日内", 30, True),
           (date(2026, 3, 10), "县教育局", "10个工作日内", 18, True),
           (date(2026, 4, 14), "县交通运输局", "15个工作日内", 22, True),
           (date(2026, 6, 16), "县教育局", "10个工作日内", 18, False),
           (date(2026, 9, 1), "县应急局", "截止9月10日", 12, False))  # its yellow waits for the away signer


@dataclass
class Job:
    """One task as its unit, its assigner and the 督查室 will handle it."""

    code: str
    unit: str
    assigner: str
    late: int
    stalled: bool
    extension: bool
    send_back: bool
    cancel: bool
    version: int = 0  # a re-plan (after an extension) makes the earlier steps stale


@dataclass
class SimulatedYear:
    engine: Engine
    settings: Settings
    calendar: WorkCalendar
    path: Path


class YearSim:
    def __init__(self, path: Path, reports_dir: Path) -> None:
        self.engine = make_engine(f"sqlite:///{path}")
        # durability is not under test here, and a year of commits each waiting for the disk is slow
        event.listen(self.engine, "connect", lambda conn, _: conn.execute("PRAGMA synchronous=OFF"))
        create_schema(self.engine)
        self.settings = Settings(database_url=f"sqlite:///{path}", reports_dir=reports_dir)
        self.calendar = WorkCalendar()
        self.clock = FakeClock(START)
        self.bot = Bot(self.engine, self.settings, self.clock, self.calendar)
        self.bot.load_roster(ROSTER)
        roster = load_roster(ROSTER)
        self.staff = {u.name: [u.head.id, *(li.id for li in u.liaisons)] for u in roster.units}
        self.rng = random.Random(SEED)
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.msg_ids = itertools.count(1)
        self.held: dict[str, date] = {}

    # -- plumbing ------------------------------------------------------------------------------------
    def at(self, when: datetime, step: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (when, next(self.order), step))

    def say(self, user: str, text: str, conversation: str = "") -> list[Reply]:
        replies = self.bot.handle_sync(Incoming(msg_id=f"m{next(self.msg_ids)}", sender_id=user, text=text,
                                                conversation_id=conversation, is_group=bool(conversation)))
        for reply in replies:
            assert reply.title not in ERROR_TITLES, f"{self.clock.now():%m-%d %H:%M} {user}「{text}」→ {reply.text}"
        return replies

    def workday(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(self.calendar.workday_on_or_after(day), time(hour, minute), tzinfo=SHANGHAI)

    def catch_up(self, until: datetime) -> None:
        """Tick at every moment a task fell due before `until`, as the scheduler wakes the reconciler."""
        while True:
            with Session(self.engine) as session:
                due = session.exec(select(func.min(Task.next_check_at))).one()
            if due is None or due > until:
                return
            self.clock.set(max(due, self.clock.now()))
            self.bot.tick()

    def deadline(self, code: str) -> datetime:
        with Session(self.engine) as session:
            return session.exec(select(Task.deadline).where(Task.code == code)).one()

    def speaker(self, job: Job) -> str:
        return self.rng.choice(self.staff[job.unit])

    # -- the year ------------------------------------------------------------------------------------
    def run(self) -> None:
        units, weights = zip(*((name, p.weight) for name, p in PROFILES.items()), strict=True)
        day = START.date()
        while day <= END.date():
            if self.calendar.is_workday(day):
                if day <= LAST_ASSIGNMENT and day >= date(2026, 1, 5):
                    for _ in range(self.rng.choice((1, 1, 2))):
                        when = datetime.combine(day, time(9, 30), tzinfo=SHANGHAI)
                        self.at(when + timedelta(minutes=self.rng.randrange(0, 360)),
                                self.assigner(self.rng.choices(units, weights)[0]))
                for hour in (11, 16):
                    self.at(datetime.combine(day, time(hour), tzinfo=SHANGHAI), self.sign_drafts)
            self.at(datetime.combine(day, time(9), tzinfo=SHANGHAI), self.bulletins)
            self.at(datetime.combine(day, time(18), tzinfo=SHANGHAI), self.deliver)
            day += timedelta(days=1)
        for day, unit, phrase, late, stalled in STORIES:
            self.at(datetime.combine(day, time(10, 5), tzinfo=SHANGHAI), self.assigner(unit, phrase, late, stalled))
        while self.queue:
            when, _, step = heapq.heappop(self.queue)
            if when > END:
                break
            self.catch_up(when)
            self.clock.set(when)
            self.bot.tick()
            step()
        self.catch_up(END)

    def assigner(self, unit: str, phrase: str | None = None, late: int | None = None,
                 stalled: bool = False) -> Callable[[], None]:
        def step() -> None:
            profile, rng = PROFILES[unit], self.rng
            scripted = late is not None
            days_late = late if scripted else (rng.randint(*profile.late) if rng.random() < profile.p_late else 0)
            user, conversation = rng.choice(ASSIGNERS)
            deadline = phrase if scripted else rng.choice(("", "5个工作日内", "10个工作日内", "15个工作日内", "截止{}"))
            if "{}" in deadline:
                due = self.clock.now().date() + timedelta(days=rng.randint(7, 25))
                deadline = deadline.format(f"{due.month}月{due.day}日")
            replies = self.say(user, f"交办 {unit} {rng.choice(TITLES)} {deadline}".strip(), conversation)
            job = Job(code=CODE.search(replies[0].title)[0], unit=unit, assigner=user, late=days_late,
                      stalled=stalled if scripted else days_late > 0 and rng.random() < profile.p_stall,
                      extension=not scripted and days_late == 0 and rng.random() < 0.05,
                      send_back=not scripted and rng.random() < 0.05,
                      cancel=not scripted and rng.random() < 0.02)
            now = self.clock.now()
            ack = rng.choice((now + timedelta(hours=1), now + timedelta(hours=3),
                              self.workday(now.date() + timedelta(days=1), 9, 40),
                              datetime.combine(self.calendar.add_workdays(now.date(), 2), time(10),
                                               tzinfo=SHANGHAI)))
            self.at(ack, lambda: self.acknowledge(job))

        return step

    def acknowledge(self, job: Job) -> None:
        self.say(self.speaker(job), f"签收 {job.code}")
        if job.cancel:
            later = self.workday(self.clock.now().date() + timedelta(days=1), 11)
            self.at(later, lambda: self.say(job.assigner, f"撤销 {job.code} 已并入专项整治统一推进"))
        else:
            self.plan(job)

    def plan(self, job: Job) -> None:
        """Schedule the unit's next steps against the task's current deadline."""
        rng, now, deadline = self.rng, self.clock.now(), self.deadline(job.code)
        version = job.version
        if job.extension:
            ask = datetime.combine(self.calendar.previous_workday(deadline.date()), time(10), tzinfo=SHANGHAI)
            if ask > now:
                self.at(ask, lambda: self.extend(job, version))
                return
        if job.late:
            done = self.workday(deadline.date() + timedelta(days=job.late), rng.randint(10, 15))
        else:
            day = deadline.date()
            for _ in range(rng.randint(1, 3)):
                day = self.calendar.previous_workday(day)
            done = max(datetime.combine(day, time(rng.randint(10, 14)), tzinfo=SHANGHAI), now + timedelta(hours=1))
        if not job.stalled:
            middle = self.workday((now + (done - now) / 2).date(), 15)
            if now < middle < done:
                self.at(middle, lambda: self.progress(job, version, 50))
            after_blue = self.workday(deadline.date() + timedelta(days=1), 10)
            if job.late and after_blue < done:
                self.at(after_blue, lambda: self.progress(job, version, 80))
        self.at(done, lambda: self.report_done(job, version))

    def progress(self, job: Job, version: int, percent: int) -> None:
        if version == job.version:
            self.say(self.speaker(job), f"进展 {job.code} 已完成主体工作，正在收尾 {percent}%")

    def extend(self, job: Job, version: int) -> None:
        if version != job.version:
            return
        new = self.deadline(job.code).date() + timedelta(days=10)
        self.say(self.speaker(job), f"延期 {job.code} {new.month}月{new.day}日 需协调相关部门联合验收")
        self.at(self.clock.now() + timedelta(hours=1), lambda: self.approve(job))

    def approve(self, job: Job) -> None:
        self.say("u_zhuren", f"同意延期 {job.code}")
        job.extension, job.version = False, job.version + 1
        self.plan(job)

    def report_done(self, job: Job, version: int) -> None:
        if version != job.version:
            return
        self.say(self.speaker(job), f"办结 {job.code} 已按要求办结，佐证材料已报督查室")
        now = self.clock.now()
        check = now + timedelta(hours=2) if now.hour < 15 else self.workday(now.date() + timedelta(days=1), 10)
        self.at(check, lambda: self.review(job))

    def review(self, job: Job) -> None:
        if job.send_back:
            job.send_back = False
            self.say("u_ducha1", f"退回 {job.code} 佐证材料不全，请补充")
            self.at(self.workday(self.clock.now().date() + timedelta(days=2), 10, 30),
                    lambda: self.report_done(job, job.version))
        else:
            self.say("u_ducha1", f"销号 {job.code}")

    def sign_drafts(self) -> None:
        """Signers go through their drafts twice a working day; now and then one is busy, holds a
        draft until the next working day, or is away for a while."""
        today = self.clock.now().date()
        with Session(self.engine) as session:
            waiting = list(session.exec(select(Notice.code, Notice.status, Notice.signer_id).where(
                Notice.status.in_((NoticeStatus.DRAFT, NoticeStatus.HELD))).order_by(Notice.id)))
        for code, status, signer in waiting:
            chance = self.rng.random()
            if signer == AWAY[0] and AWAY[1] <= today <= AWAY[2]:
                continue
            if status is NoticeStatus.HELD and self.held[code] < today or status is NoticeStatus.DRAFT and chance > 0.2:
                self.say(signer, f"签发 {code}")
            elif status is NoticeStatus.DRAFT and chance < 0.1:
                self.say(signer, f"暂缓 {code} 已当面督促，下次再看")
                self.held[code] = today

    def bulletins(self) -> None:
        with transaction(self.engine) as session:
            reports.issue_due(session, self.clock.now(), self.settings, self.calendar)
            reviews.issue_reviews(session, self.clock.now(), self.settings, self.calendar)

    def deliver(self) -> None:
        """Stands in for the DingTalk transport: everything due goes out, except to the liaison who
        left (DingTalk answers "no such user", so those rows are dead)."""
        now = self.clock.now()
        due = (Outbox.status == OutboxStatus.PENDING) & (Outbox.deliver_after <= now)
        with transaction(self.engine) as session:
            session.exec(update(Outbox).where(due, Outbox.recipient == "u_hexi_ll")
                         .values(status=OutboxStatus.DEAD, attempts=1, last_error="no such user"))
            session.exec(update(Outbox).where(due).values(status=OutboxStatus.SENT, attempts=1, sent_at=now))


@pytest.fixture
def copy(year: SimulatedYear, tmp_path: Path) -> tuple[Bot, FakeClock]:
    """A bot on a private copy of the year, its clock at the year's end."""
    target = tmp_path / "copy.db"
    with sqlite3.connect(year.path) as source, sqlite3.connect(target) as dest:
        source.backup(dest)
    engine = make_engine(f"sqlite:///{target}")
    clock = FakeClock(END)
    settings = year.settings.model_copy(update={"reports_dir": tmp_path / "reports"})
    return Bot(engine, settings, clock, year.calendar), clock


def assert_golden(name: str, actual: str, tmp_path: Path) -> None:
    path = GOLDEN / name
    expected = path.read_text(encoding="utf-8") if path.exists() else ""
    if actual + "\n" == expected:
        return
    (tmp_path / name).write_text(actual + "\n", encoding="utf-8")
    diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), (actual + "\n").splitlines(keepends=True),
                                        f"tests/reminders/golden/{name}", "actual"))
    pytest.fail(f"{name} differs from its golden file (actual text written to {tmp_path / name}):\n{diff}",
                pytrace=False)


def sent(engine: Engine, title: str) -> list[Outbox]:
    with Session(engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.title == title).order_by(Outbox.id)))


def issued_colours(session: Session) -> list[tuple[Notice, Task]]:
    """Every colour notice issued, with its task: the raw material the hand checks start from."""
    return list(session.exec(select(Notice, Task).join(Task, Task.id == Notice.task_id).where(
        Notice.status == NoticeStatus.ISSUED, Notice.kind.in_(COLOURS)).order_by(Notice.issued_at, Notice.id)))


# ---- the simulated year is what the tests need it to be ------------------------------------------------
def test_the_year_has_the_cases_the_reports_speak_of(year: SimulatedYear) -> None:
    with Session(year.engine) as session:
        tasks = list(session.exec(select(Task)))
        units = list(session.exec(select(Unit)))
        held = session.exec(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "notice_held")).one()
        signed = session.exec(select(func.count()).select_from(Notice).where(Notice.signed_by.is_not(None))).one()
        dead = session.exec(select(func.count()).select_from(Outbox).where(Outbox.status == OutboxStatus.DEAD)).one()
    assert len(tasks) >= 300 and len(units) == 12
    assert {t.status for t in tasks} >= {TaskStatus.CLOSED, TaskStatus.CANCELLED, TaskStatus.IN_PROGRESS}
    assert sum(t.cycle > 0 for t in tasks) >= 3  # extensions approved
    assert signed > 30 and held > 3 and dead > 0


# ---- golden texts: what went out during the year, and what print_report says afterwards --------------
@pytest.mark.parametrize(("kind", "title", "at", "group"), [
    ("weekly", "一周督办汇总 9月14日—9月21日", shanghai(2026, 9, 21, 9), "cid_leaders"),
    ("monthly", "2026年3月督办通报", shanghai(2026, 4, 1, 9), "cid_all_units"),
    ("annual", "2026年度督办考评", shanghai(2026, 12, 31, 9), "cid_all_units"),
])
def test_bulletin_matches_golden_and_can_be_reprinted(year: SimulatedYear, tmp_path: Path, kind: str, title: str,
                                                     at: datetime, group: str) -> None:
    rows = [r for r in sent(year.engine, title) if r.recipient == group and r.image_path is None]
    assert len(rows) == 1, f"{title}: expected one message to {group}, got {len(rows)}"
    assert rows[0].created_at == at
    assert_golden(f"report_{kind}.md", rows[0].text, tmp_path)
    # asked for later, on the whole year's database, the report says what was sent at the time
    assert reports.print_report(kind, at, year.engine, year.settings, year.calendar) == rows[0].text


def test_every_bulletin_goes_out_once_where_it_belongs(year: SimulatedYear) -> None:
    with Session(year.engine) as session:
        events = list(session.exec(select(AuditEvent).where(AuditEvent.action.startswith("bulletin_"))))
        rows = list(session.exec(select(Outbox).where(Outbox.target == "group", Outbox.task_id.is_(None))))
    keys = [(e.action, e.detail["period"]) for e in events]
    assert len(keys) == len(set(keys))
    monthly = sorted(k for a, k in keys if a == "bulletin_monthly")
    assert monthly == [f"2026-{m:02d}" for m in range(1, 12)]  # December's goes out in January
    assert len([k for a, k in keys if a == "bulletin_weekly"]) == 51  # the first Monday had nothing yet
    assert [k for a, k in keys if a == "bulletin_annual"] == ["2026"]
    weekly = [r for r in rows if r.title.startswith("一周督办汇总")]
    assert {r.recipient for r in weekly} == {"cid_leaders"} and len(weekly) == 51
    charts = [r for r in rows if r.image_path]
    assert len(charts) == 11 and {r.recipient for r in charts} == {"cid_all_units"}
    assert all(Path(r.image_path).is_file() for r in charts)


def test_monthly_bulletins_wait_for_the_first_working_day(year: SimulatedYear) -> None:
    with Session(year.engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "bulletin_monthly")).all()
    at = {e.detail["period"]: e.at for e in events}
    for period, when in at.items():
        first = year.calendar.workday_on_or_after(date(when.year, when.month, 1))
        assert when == datetime.combine(first, time(9), tzinfo=SHANGHAI), period
    assert at["2026-04"] == shanghai(2026, 5, 6, 9)  # after the 五一 holiday, 1–5 May
    assert at["2026-09"].date() > date(2026, 10, 7)  # after the National Day holiday


# ---- 半年一讲评 and 季讲评 -----------------------------------------------------------------------------
def test_the_half_year_review_goes_to_the_leaders_once_on_the_first_working_day(year: SimulatedYear,
                                                                               tmp_path: Path) -> None:
    """湘阴 实施方案 18 半年一讲评: the default profile sends it; 季讲评 is 华容's, not sent here."""
    with Session(year.engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action.in_(
            ("bulletin_half_year", "bulletin_quarterly")))).all()
    assert [(e.action, e.detail["period"], e.at) for e in events] == [
        ("bulletin_half_year", "2026-H1", shanghai(2026, 7, 1, 9))]
    rows = sent(year.engine, "2026年上半年督办讲评")
    assert [(r.recipient, r.created_at) for r in rows] == [("cid_leaders", shanghai(2026, 7, 1, 9))]
    assert_golden("report_half_year.md", rows[0].text, tmp_path)
    # asked for later, on the whole year's database, it says what was sent at the time
    assert reviews.print_review("half-year", shanghai(2026, 7, 1, 9), year.engine, year.settings) == rows[0].text


def test_the_quarterly_review_waits_for_the_working_day_after_the_holiday_and_goes_once(
        copy: tuple[Bot, FakeClock], tmp_path: Path) -> None:
    """华容 措施九 季讲评, on the same year played under the 华容 profile: Q3 ends 30 September, 1–7
    October is the National Day holiday, so it goes out on Thursday 8 October at 09:00."""
    bot, _ = copy
    settings = bot.settings.model_copy(update={"rules": Rules(profile="huarong")})
    with transaction(bot.engine) as session:
        assert reviews.issue_reviews(session, shanghai(2026, 10, 7, 9), settings, bot.calendar) == []
    with transaction(bot.engine) as session:
        first = reviews.issue_reviews(session, shanghai(2026, 10, 8, 9), settings, bot.calendar)
    with transaction(bot.engine) as session:
        again = reviews.issue_reviews(session, shanghai(2026, 10, 8, 11), settings, bot.calendar)
    assert [r.title for r in first] == ["2026年第三季度督办讲评"] and again == []
    rows = sent(bot.engine, "2026年第三季度督办讲评")
    assert [(r.recipient, r.created_at) for r in rows] == [("cid_leaders", shanghai(2026, 10, 8, 9))]
    assert_golden("report_quarterly.md", rows[0].text, tmp_path)
    assert reviews.print_review("quarterly", shanghai(2026, 10, 8, 9), bot.engine, settings) == rows[0].text
    # the 湘阴 profile has no 季讲评: nothing is sent for the quarter
    with transaction(bot.engine) as session:
        assert reviews.issue_reviews(session, shanghai(2027, 1, 4, 9), bot.settings.model_copy(
            update={"rules": Rules(half_year_review=False)}), bot.calendar) == []


def test_a_review_counts_its_period_by_hand(year: SimulatedYear) -> None:
    """Q2 (April–June) from the raw rows: tasks due in the quarter, those closed by their deadline,
    and the colour notices issued in it; praised are the units that closed every one on time."""
    start, end = shanghai(2026, 4, 1, 0), shanghai(2026, 7, 1, 0)
    with Session(year.engine) as session:
        due, on_time = defaultdict(int), defaultdict(int)
        for task in session.exec(select(Task).where(Task.deadline >= start, Task.deadline < end)):
            if task.status is TaskStatus.CANCELLED and task.closed_at < end:
                continue
            due[task.lead_unit_id] += 1
            on_time[task.lead_unit_id] += (task.status is TaskStatus.CLOSED and task.closed_at < end
                                           and task.closed_at <= task.deadline)
        issued = defaultdict(int)
        for notice, _ in issued_colours(session):
            issued[notice.kind] += start <= notice.issued_at < end
        report = reports.build_bulletin(session, reviews.period_before("quarterly", end), year.settings.rules)
    assert report.period.key == "2026-Q2"
    assert {r.unit.id: (r.due, r.on_time) for r in report.units if r.due} == {
        u: (due[u], on_time[u]) for u in due}
    assert (report.issued.count["blue"], report.issued.count["yellow"], report.issued.count["red"]) == (
        issued[NoticeKind.BLUE], issued[NoticeKind.YELLOW], issued[NoticeKind.RED])
    assert [r.unit.id for r in report.praised] == sorted(
        (u for u in due if on_time[u] == due[u]), key=lambda u: (-due[u], u))
    assert report.praised, "the quarter has units to praise"


def test_review_periods() -> None:
    keys = {(kind, at): reviews.period_before(kind, at) for kind in reviews.KINDS for at in (
        shanghai(2026, 1, 5, 9), shanghai(2026, 4, 1, 9), shanghai(2026, 7, 1, 9), shanghai(2026, 12, 31, 9))}
    assert keys["quarterly", shanghai(2026, 1, 5, 9)].key == "2025-Q4"
    assert keys["quarterly", shanghai(2026, 4, 1, 9)] == reports.Period(
        shanghai(2026, 1, 1, 0), shanghai(2026, 4, 1, 0), "2026-Q1")
    assert keys["quarterly", shanghai(2026, 12, 31, 9)].key == "2026-Q3"
    assert keys["half-year", shanghai(2026, 1, 5, 9)] == reports.Period(
        shanghai(2025, 7, 1, 0), shanghai(2026, 1, 1, 0), "2025-H2")
    assert keys["half-year", shanghai(2026, 7, 1, 9)].key == "2026-H1"
    assert keys["half-year", shanghai(2026, 4, 1, 9)].key == "2025-H2"


# ---- 第九条: final scores, computed by hand from the notices ---------------------------------------------
@pytest.mark.parametrize("name", ["县住建局", "县应急局", "县文旅局", "河西乡", "县交通运输局"])
def test_year_end_scores_follow_article_nine(year: SimulatedYear, name: str) -> None:
    cutoff = shanghai(2026, 12, 31, 9)
    with Session(year.engine) as session:
        unit = session.exec(select(Unit).where(Unit.name == name)).one()
        received = [n.kind for n, t in issued_colours(session)
                    if t.lead_unit_id == unit.id and n.issued_at.year == 2026 and n.issued_at < cutoff]
        tasks = [t for t in session.exec(select(Task).where(Task.lead_unit_id == unit.id))
                 if t.assigned_at.year == 2026 and t.assigned_at < cutoff
                 and not (t.status is TaskStatus.CANCELLED and t.closed_at < cutoff)]
        report = reports.build_annual(session, 2026, cutoff, year.settings.rules)
    blue, yellow, red = (received.count(k) for k in (NoticeKind.BLUE, NoticeKind.YELLOW, NoticeKind.RED))
    n = len(tasks)
    bonus, quota = 0, 0
    if n >= 5:  # 承办5项及以上: 全年未收到黄色 +10, 未收到红色 +5
        bonus += (10 if yellow == 0 else 0) + (5 if red == 0 else 0)
    if n >= 20:  # 承办20项及以上: 另加 20 / 10, 优岗比例 3% / 2%
        bonus += (20 if yellow == 0 else 0) + (10 if red == 0 else 0)
        quota = (3 if yellow == 0 else 0) + (2 if red == 0 else 0)
    final = -1 * blue - 2 * yellow - 5 * red + bonus
    # the case each unit stands for really happened in the simulated year
    assert {"县住建局": n >= 20 and yellow == red == 0, "县应急局": n >= 20 and yellow > 0 and red == 0,
            "县文旅局": 5 <= n < 20, "河西乡": n < 5, "县交通运输局": red >= 3}[name]

    row = next(r for r in report.units if r.unit.name == name)
    assert (row.tasks, row.tally.count["blue"], row.tally.count["yellow"], row.tally.count["red"]) == (
        n, blue, yellow, red)
    assert row.final == final
    text = reports.print_report("annual", cutoff, year.engine, year.settings, year.calendar)
    line = next(li for li in text.splitlines() if f"**{name}** **" in li)
    assert f"**{final}分**｜承办{n}项｜督办🔵{blue} 🟡{yellow} 🔴{red}" in line
    assert (f"优岗比例+{quota}%" in line) if quota else ("优岗比例" not in line)


def test_stars_are_heads_of_units_in_good_standing_by_hand(year: SimulatedYear) -> None:
    """十大效能之星 from the raw notice list: people (unit heads), never a unit with a red, a 第十条
    consequence or a score of zero or less; by final score, then on-time rate."""
    rules = year.settings.rules
    points = {NoticeKind.BLUE: -1, NoticeKind.YELLOW: -2, NoticeKind.RED: -5}
    with Session(year.engine) as session:
        units = {u.id: u for u in session.exec(select(Unit))}
        score, reds, yellows = defaultdict(int), defaultdict(int), defaultdict(int)
        reds_on_task: dict[int, int] = defaultdict(int)
        for notice, task in issued_colours(session):
            unit = task.lead_unit_id
            score[unit] += points[notice.kind]
            reds[unit] += notice.kind is NoticeKind.RED
            yellows[unit] += notice.kind is NoticeKind.YELLOW
            reds_on_task[task.id] += notice.kind is NoticeKind.RED
        tasks, on_time = defaultdict(int), defaultdict(int)
        for task in session.exec(select(Task).where(Task.status != TaskStatus.CANCELLED)):
            tasks[task.lead_unit_id] += 1
            on_time[task.lead_unit_id] += task.closed_at is not None and task.closed_at <= task.deadline
        criticised = {task.lead_unit_id for task in session.exec(select(Task)) if reds_on_task[task.id] >= 2}
        criticised |= {unit for unit, n in reds.items() if n >= 2}
        heads = {u.id: session.get(Person, u.head_user_id).name for u in units.values()}
        report = reports.build_annual(session, 2026, END, rules)

    def final(unit: int) -> int:
        bonus = 0
        if tasks[unit] >= 5:
            bonus += (10 if not yellows[unit] else 0) + (5 if not reds[unit] else 0)
        if tasks[unit] >= 20:
            bonus += (20 if not yellows[unit] else 0) + (10 if not reds[unit] else 0)
        return score[unit] + bonus

    good = [u for u in units if tasks[u] and final(u) > 0 and not reds[u] and u not in criticised]
    good.sort(key=lambda u: (-final(u), -on_time[u] / tasks[u], u))
    expected = [(heads[u], units[u].name, final(u)) for u in good][:10]
    assert [(s.head.name, s.unit.name, s.row.final) for s in report.stars] == expected
    # the cases by name: the year holds each of them
    by_name = {u.name: u.id for u in units.values()}
    starred = {s.unit.name for s in report.stars}
    assert by_name["县教育局"] in criticised and "县教育局" not in starred  # 2 reds, criticised, -20
    assert reds[by_name["县自然资源局"]] == 1 and "县自然资源局" not in starred  # one red is enough to be out
    assert final(by_name["河西乡"]) < 0 and "河西乡" not in starred
    assert report.stars[0].unit.name == "县住建局" and report.stars[0].head.name == heads[by_name["县住建局"]]
    assert 0 < len(report.stars) < 10  # fewer than ten qualify: no filling up with units in bad standing
    # equal scores: the better on-time rate first
    tied = [s for s in report.stars if s.row.final == 13]
    assert len(tied) == 2 and tied[0].rate > tied[1].rate


# ---- 第十条 and 措施10, by hand --------------------------------------------------------------------------
def test_second_and_third_reds_bring_criticism_and_an_admonition_talk(year: SimulatedYear, tmp_path: Path) -> None:
    with Session(year.engine) as session:
        reds: dict[str, list[datetime]] = defaultdict(list)  # unit → when each of its reds was issued
        for notice, task in issued_colours(session):
            if notice.kind is NoticeKind.RED:
                reds[session.get(Unit, task.lead_unit_id).name].append(notice.issued_at)
        heads = {u.name: u.head_user_id for u in session.exec(select(Unit))}
    assert len(reds["县教育局"]) == 2 and len(reds["县交通运输局"]) >= 3 and len(reds["城关镇"]) == 1

    cases = (("县教育局", 2, heads["县教育局"], "通报批评：请作书面检讨", "书面检讨", "report_self_review_dm.md"),
             ("县交通运输局", 2, heads["县交通运输局"], "通报批评：请作书面检讨", "书面检讨", None),
             ("县交通运输局", 3, "u_xianzhang", "诫勉谈话提示：县交通运输局", "诫勉谈话", "report_admonition_dm.md"))
    for name, nth, recipient, dm_title, words, golden in cases:
        reached = reds[name][nth - 1]
        title = f"{reached.year}年{reached.month}月督办通报"
        bulletin = next(r for r in sent(year.engine, title) if r.image_path is None)
        month_end = (reached.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0)
        so_far = sum(1 for at in reds[name] if at < month_end)
        assert any(f"**{name}** 本年度已收到🔴红色督办单{so_far}次" in li and words in li
                   for li in bulletin.text.splitlines()), f"{name} not named in {title}"
        dms = [r for r in sent(year.engine, dm_title) if r.recipient == recipient]
        assert len(dms) == 1 and dms[0].created_at == bulletin.created_at
        if golden:
            assert_golden(golden, dms[0].text, tmp_path)

    # named once per threshold, only in the month the threshold was reached, and nobody else is
    lines = [li for r in sent_bulletins(year.engine) for li in r.text.splitlines() if "本年度已收到🔴" in li]
    named = sorted((li.split("**")[1], "诫勉谈话" in li) for li in lines)
    assert named == [("县交通运输局", False), ("县交通运输局", True), ("县教育局", False)]
    annual = reports.print_report("annual", END, year.engine, year.settings, year.calendar)
    assert annual.split("书面检讨：")[1].splitlines()[0] == (
        f"县交通运输局（🔴{len(reds['县交通运输局'])}次）、县教育局（🔴2次）")
    assert annual.split("诫勉谈话：")[1].splitlines()[0] == f"县交通运输局（🔴{len(reds['县交通运输局'])}次）"


def sent_bulletins(engine: Engine) -> list[Outbox]:
    with Session(engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.recipient == "cid_all_units", Outbox.image_path.is_(None),
                                                      Outbox.title.endswith("月督办通报")).order_by(Outbox.id)))


def test_tasks_urged_twice_without_progress_are_named(year: SimulatedYear) -> None:
    named = 0
    for month in range(1, 12):
        month_end = datetime(2026, month + 1, 1, tzinfo=SHANGHAI)
        with Session(year.engine) as session:
            urges: dict[int, list[datetime]] = defaultdict(list)
            for notice, _ in issued_colours(session):
                if notice.issued_at < month_end:
                    urges[notice.task_id].append(notice.issued_at)
            expected = set()
            for task in session.exec(select(Task).where(Task.assigned_at < month_end)):
                still_open = task.closed_at is None or task.closed_at >= month_end
                if not still_open or len(urges[task.id]) < 2:
                    continue
                progress = session.exec(select(ProgressReport).where(
                    ProgressReport.task_id == task.id, ProgressReport.at >= urges[task.id][0],
                    ProgressReport.at < month_end)).first()
                if progress is None:
                    expected.add(task.code)
            bulletin = reports.build_monthly(session, month_end, year.settings.rules)
        assert {s.task.code for s in bulletin.stalled} == expected, f"2026-{month:02d}"
        named += len(expected)
    assert named >= 2  # the scripted stalled tasks


# ---- sending: once, on time, and on request ------------------------------------------------------------
def test_periods() -> None:
    rules = Settings().rules
    monday = shanghai(2026, 6, 15, 9)
    assert reports.week_ending(monday, rules).start == shanghai(2026, 6, 8, 9)
    assert reports.week_ending(monday - timedelta(minutes=1), rules).end == shanghai(2026, 6, 8, 9)
    assert reports.week_ending(shanghai(2026, 6, 21, 23), rules).key == "2026-W25"
    assert reports.month_before(shanghai(2027, 1, 4, 9)).key == "2026-12"
    settings = Settings()
    assert reports.annual_year(shanghai(2026, 12, 31, 8, 59), settings) is None
    assert reports.annual_year(shanghai(2026, 12, 31, 9), settings) == 2026
    assert reports.annual_year(shanghai(2027, 1, 20), settings) == 2026  # caught up after downtime
    assert reports.annual_year(shanghai(2027, 2, 5), settings) is None
    early = settings.model_copy(update={"year_end_report": "12-20"})
    assert reports.annual_year(shanghai(2026, 12, 21), early) == 2026
    with pytest.raises(ValueError, match="12-31"):
        reports.annual_slot(2026, settings.model_copy(update={"year_end_report": "年底"}))


def test_a_fresh_installation_sends_no_bulletin(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    create_schema(engine)
    settings = Settings(reports_dir=tmp_path)
    Bot(engine, settings, FakeClock(START), WorkCalendar()).load_roster(ROSTER)
    with transaction(engine) as session:
        assert reports.issue_due(session, shanghai(2026, 12, 31, 9), settings, WorkCalendar()) == []
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Outbox)).one() == 0


def say(bot: Bot, user: str, text: str) -> list[Reply]:
    return bot.handle_sync(Incoming(msg_id=f"t-{user}-{text}", sender_id=user, text=text))


def test_bulletin_command_sends_at_once_and_the_schedule_then_does_not(copy: tuple[Bot, FakeClock]) -> None:
    bot, clock = copy
    clock.set(shanghai(2027, 1, 1, 8, 30))  # before December's bulletin falls due
    [reply] = say(bot, "u_ducha1", "通报")
    assert reply.title == "2026年12月督办通报"
    rows = sent(bot.engine, reply.title)
    assert [r.recipient for r in rows] == ["cid_all_units", "cid_all_units"]
    assert rows[0].text == reply.text and Path(rows[1].image_path).is_file()
    clock.set(shanghai(2027, 1, 1, 9))
    with transaction(bot.engine) as session:
        assert reports.issue_due(session, clock.now(), bot.settings, bot.calendar) == []
    # asked again: the bulletin goes out again, the 第十条 messages do not
    before = len(sent(bot.engine, "通报批评：请作书面检讨"))
    say(bot, "u_ducha2", "通报")
    assert len(sent(bot.engine, reply.title)) == 4
    assert len(sent(bot.engine, "通报批评：请作书面检讨")) == before
    with Session(bot.engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "bulletin_monthly",
                                                       AuditEvent.at >= shanghai(2027, 1, 1))).all()
    assert [(e.actor_id, e.detail["period"]) for e in events] == [("u_ducha1", "2026-12"), ("u_ducha2", "2026-12")]


def test_only_the_supervision_office_may_issue_a_bulletin(copy: tuple[Bot, FakeClock]) -> None:
    bot, _ = copy
    for user in ("u_zhujian", "u_xianzhang"):
        [reply] = say(bot, user, "通报")
        assert reply.title == "无权使用" and "县政府督查室" in reply.text
    assert sent(bot.engine, "2026年12月督办通报") == []


# ---- the Excel 台账 ---------------------------------------------------------------------------------------
def test_ledger_export_command_replies_and_sends_the_file(copy: tuple[Bot, FakeClock]) -> None:
    bot, _ = copy
    say(bot, "u_ducha1", "交办 县住建局 =1+1 燃气排查 5个工作日内")  # user text, never an Excel formula
    [reply] = say(bot, "u_ducha1", "台账 导出")
    assert reply.title == "督办台账" and reply.file_path is None  # the file goes once, as a direct message
    with Session(bot.engine) as session:
        [row] = session.exec(select(Outbox).where(Outbox.recipient == "u_ducha1", Outbox.file_path.is_not(None)))
    assert row.target == "user" and Path(row.file_path).suffix == ".xlsx" and Path(row.file_path).is_file()
    book = load_workbook(row.file_path)
    assert book.sheetnames == ["督办台账", "2026年单位积分"]
    [title] = [r[1] for r in book["督办台账"].iter_rows(min_row=2) if r[1].value.startswith("=")]
    assert title.value == "=1+1 燃气排查" and title.data_type == "s"


def test_ledger_workbook_reads_back(year: SimulatedYear, tmp_path: Path) -> None:
    out = export_ledger(year.engine, END, tmp_path / "台账.xlsx")
    book = load_workbook(out)
    tasks_sheet, units_sheet = book["督办台账"], book["2026年单位积分"]
    assert tasks_sheet.freeze_panes == "A2" and units_sheet.freeze_panes == "A2"
    assert [c.value for c in tasks_sheet[1]] == ["编号", "事项", "责任单位", "状态", "督办颜色", "期限", "逾期天数",
                                                 "最新进展", "已发督办单", "扣分", "最近督办单阅读"]
    assert tasks_sheet.column_dimensions["B"].width >= 30
    with Session(year.engine) as session:
        tasks = {t.code: t for t in session.exec(select(Task))}
        colours: dict[str, set[NoticeKind]] = defaultdict(set)
        points: dict[str, int] = defaultdict(int)
        for notice, task in issued_colours(session):
            colours[task.code].add(notice.kind)
            points[task.code] += {"blue": -1, "yellow": -2, "red": -5}[notice.kind]
        units = {u.id: u.name for u in session.exec(select(Unit))}
        unit_points: dict[str, int] = defaultdict(int)
        for event in session.exec(select(ScoreEvent).where(ScoreEvent.year == 2026)):
            unit_points[units[event.unit_id]] += event.points
    rows = list(tasks_sheet.iter_rows(min_row=2, values_only=False))
    assert len(rows) == len(tasks)
    for code_cell, _, unit_cell, _, colour_cell, deadline_cell, late_cell, _, _, score_cell, _ in rows:
        task = tasks[code_cell.value]
        worst = next((k for k in (NoticeKind.RED, NoticeKind.YELLOW, NoticeKind.BLUE) if k in colours[task.code]), None)
        assert colour_cell.value == {None: "未督办", "blue": "蓝色", "yellow": "黄色", "red": "红色"}[worst]
        assert colour_cell.fill.fgColor.rgb == (COLOUR_FILLS[worst] if worst else "00000000")
        assert score_cell.value == points[task.code]
        assert unit_cell.value == units[task.lead_unit_id]
        assert deadline_cell.value == task.deadline.replace(tzinfo=None)
        assert isinstance(late_cell.value, int) and late_cell.value >= 0
    assert any(r[6].value > 0 for r in rows)
    scores = {r[1]: r[5] for r in units_sheet.iter_rows(min_row=2, values_only=True)}
    assert scores == {name: unit_points[name] for name in units.values()}


# ---- the chart -----------------------------------------------------------------------------------------
def test_chart_is_a_png_with_chinese_labels_in_the_bundled_font(year: SimulatedYear) -> None:
    import pylopdf_fonts_zh_cn
    from matplotlib.ft2font import FT2Font
    from PIL import Image

    [row] = [r for r in sent(year.engine, "2026年11月督办通报") if r.image_path]
    path = Path(row.image_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    width, height = Image.open(path).size
    assert 1000 <= width <= 2000 and 12 * 50 <= height <= 2000
    family = cjk_family()
    found = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    assert Path(found) == pylopdf_fonts_zh_cn.sans_path()
    charmap = FT2Font(found).get_charmap()
    with Session(year.engine) as session:
        labels = "".join(u.name for u in session.exec(select(Unit))) + "年各单位督办积分截至月日蓝黄红色单扣分"
    assert all(ord(ch) in charmap for ch in labels)  # no tofu: every character has a glyph
