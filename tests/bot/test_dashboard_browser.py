"""The dashboard in a real browser: Debian's Chromium, driven by Playwright's Python package.

The county is tests/reminders/test_reports.py's simulated year (12 units, a year of tasks, notices, signatures
and bulletins). The person signs in through the link the bot DMs after 看板 (read from the outbox
row the sender would deliver), and what the page shows is compared with `build_monthly`, the
function `duban report monthly` prints. Chromium missing (or Playwright not installed) skips these
tests with the reason; under CI=true that is a failure. Playwright never downloads a browser here:
it drives /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlmodel import Session, select

from bot.app import Bot
from bot.clock import FakeClock
from bot.dashboard.app import dashboard_app
from handlers.incoming import Incoming
from reminders.reports import build_bulletin, build_monthly, month_before
from storage.db import make_engine
from storage.models import Notice, Outbox, Task, Unit
from tests.reminders.test_reports import END

CHROMIUM = Path(os.environ.get("DUBAN_CHROMIUM", "/usr/bin/chromium"))
MSG_IDS = itertools.count(1)
pytestmark = pytest.mark.xdist_group("simulated_year")  # on the worker that played the year
RGB = {"red": "rgb(207, 19, 34)", "yellow": "rgb(250, 173, 20)", "blue": "rgb(22, 119, 255)",
       "none": "rgb(217, 217, 217)"}


def _need_browser() -> None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        reason = "Playwright's Python package is not installed (pip install -e '.[test]')"
    else:
        if CHROMIUM.is_file():
            return
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


@dataclass
class County:
    bot: Bot
    clock: FakeClock
    path: Path


@pytest.fixture(scope="module")
def year_db(request: pytest.FixtureRequest) -> Path:
    _need_browser()
    return request.getfixturevalue("year").path  # the session's simulated year (tests/conftest.py); copied, never written


@pytest.fixture
def county(year_db: Path, tmp_path: Path) -> Iterator[County]:
    target = tmp_path / "county.db"
    with sqlite3.connect(year_db) as source, sqlite3.connect(target) as dest:
        source.backup(dest)
    engine = make_engine(f"sqlite:///{target}")
    from bot.settings import Settings
    from reminders.calendar import WorkCalendar

    clock = FakeClock(END)
    settings = Settings(database_url=f"sqlite:///{target}", reports_dir=tmp_path / "reports")
    yield County(Bot(engine, settings, clock, WorkCalendar()), clock, target)
    engine.dispose()


@pytest.fixture
async def server(county: County) -> AsyncIterator[TestServer]:
    app = dashboard_app(county.bot.engine, county.bot.settings, county.clock, county.bot.calendar)
    async with TestServer(app, host="127.0.0.1") as srv:
        yield srv


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        await chromium.close()


async def link_from_bot(county: County, server: TestServer, sender: str, text: str = "看板",
                        to: str | None = None) -> str:
    """`sender` types `text`; the sign-in URL in the DM the bot queued for `to` (default: the sender)."""
    replies = await asyncio.to_thread(county.bot.handle_sync, Incoming(msg_id=f"b-{next(MSG_IDS)}", sender_id=sender,
                                                                        text=text))
    assert replies[0].title == "看板链接已私信发送", replies[0].text
    with Session(county.bot.engine) as session:
        dm = session.exec(select(Outbox).where(Outbox.recipient == (to or sender), Outbox.target == "user")
                          .order_by(Outbox.id.desc())).first()
    url = re.search(r"\((http[^)]+/board/signin\?t=[\w-]+)\)", dm.text)[1]
    # the link names settings.dashboard_url; the test server listens on a port of its own
    return str(server.make_url(url[url.index("/board/"):]))


async def sign_in(page, url: str) -> None:
    await page.goto(url)
    await page.click("#enter")
    await page.wait_for_url("**/board/")


async def unit_rows(page) -> list[dict[str, str]]:
    return await page.eval_on_selector_all("tr.unit-row", """rows => rows.map(r => ({
        unit: r.dataset.unit, rank: r.querySelector('td').textContent.trim(),
        score: r.querySelector('td.score').textContent.trim(), colour: r.dataset.colour,
        tally: r.querySelector('td.tally').textContent.trim(),
        dot: getComputedStyle(r.querySelector('.dot')).backgroundColor}))""")


def expected_rows(county: County, period=None) -> list[dict[str, str]]:
    """The rows as `duban report monthly` ranks them now, or as the same builder does over `period`."""
    with Session(county.bot.engine) as session:
        rules = county.bot.settings.rules
        bulletin = (build_bulletin(session, period, rules) if period else
                    build_monthly(session, county.clock.now(), rules))
    out = []
    for row in bulletin.units:
        count = row.year.count
        colour = "red" if count["red"] else "yellow" if count["yellow"] else "blue" if count["blue"] else "none"
        out.append({"unit": row.unit.name, "rank": str(row.rank), "score": str(row.year.total), "colour": colour,
                    "tally": f"蓝{count['blue']} 黄{count['yellow']} 红{count['red']}", "dot": RGB[colour]})
    return out


async def test_sign_in_from_the_bot_shows_the_bulletins_numbers_and_drills_down(county, server, browser, tmp_path):
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await sign_in(page, await link_from_bot(county, server, "u_ducha1"))

    # the last month's bulletin, exactly as `duban report monthly` builds it at this moment
    last = month_before(county.clock.now()).key
    await page.select_option("select[name=period]", last)
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(f"**period={last}**")
    expected = expected_rows(county)
    assert len(expected) == 12 and len({r["score"] for r in expected}) > 3  # a year with real differences
    assert await unit_rows(page) == expected

    # this month to date: the same builder, its period ending now
    await page.goto(str(server.make_url("/board/")))
    assert await unit_rows(page) == expected_rows(county, _live(county))
    shots = Path(os.environ.get("DUBAN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    await page.evaluate("document.fonts.ready")
    await page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)

    # drill into the worst unit, then into one of its tasks
    worst = expected[-1]["unit"]
    await page.click(f"tr.unit-row[data-unit='{worst}'] a")
    assert await page.text_content("#unit-name") == worst
    await page.check("input[name=closed]")
    await page.click("form.filters button[type=submit]")
    code = await page.get_attribute("details.task-item", "data-code")
    await page.click(f"details.task-item[data-code='{code}'] summary a")
    assert (await page.text_content("#task-title")).startswith(code)
    with Session(county.bot.engine) as session:
        task = session.exec(select(Task).where(Task.code == code)).one()
        assert session.get(Unit, task.lead_unit_id).name == worst
        kinds = [n.kind.value for n in session.exec(select(Notice).where(Notice.task_id == task.id)
                                                   .order_by(Notice.created_at, Notice.id))]
    assert await page.eval_on_selector_all("#notices tr[data-kind]", "rs => rs.map(r => r.dataset.kind)") == kinds
    assert "交办给" in await page.text_content(".trail")
    await page.screenshot(path=str(shots / "dashboard-task.png"), full_page=True)

    mobile = await browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    await sign_in(mobile, await link_from_bot(county, server, "u_xianzhang"))
    await mobile.evaluate("document.fonts.ready")
    await mobile.screenshot(path=str(shots / "dashboard-phone.png"), full_page=False)
    assert await mobile.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways page


async def test_a_reused_or_expired_link_is_refused(county, server, browser):
    url = await link_from_bot(county, server, "u_ducha1")
    first = await browser.new_page()
    await sign_in(first, url)
    second = await (await browser.new_context()).new_page()
    await second.goto(url)
    await second.click("#enter")
    assert "链接已失效" in await second.text_content("#reason")
    assert "请先登录" in await (await second.goto(str(server.make_url("/board/")))).text()

    late = await link_from_bot(county, server, "u_ducha1")
    county.clock.advance(minutes=16)
    third = await (await browser.new_context()).new_page()
    await third.goto(late)
    await third.click("#enter")
    assert "链接已失效" in await third.text_content("#reason")


async def test_a_unit_head_sees_only_their_unit(county, server, browser):
    url = await link_from_bot(county, server, "u_ducha1", "看板 县住建局", to="u_zhujian")
    page = await browser.new_page()
    await sign_in(page, url)
    rows = await unit_rows(page)
    assert [r["unit"] for r in rows] == ["县住建局"]
    assert rows == [r for r in expected_rows(county, _live(county)) if r["unit"] == "县住建局"]
    assert await page.locator("select[name=unit]").count() == 0
    with Session(county.bot.engine) as session:
        other = session.exec(select(Unit).where(Unit.name == "县应急局")).one()
        foreign = session.exec(select(Task.code).where(Task.lead_unit_id == other.id)).first()
    answer = await page.goto(str(server.make_url(f"/board/unit/{other.id}")))
    assert answer.status == 404
    answer = await page.goto(str(server.make_url(f"/board/task/{foreign}")))
    assert answer.status == 404
    drafts = await (await page.goto(str(server.make_url("/board/drafts")))).text()
    assert "县应急局" not in drafts


def _live(county: County):
    from bot.dashboard.data import Filters, period_of

    return period_of(Filters(), county.clock.now())


def test_the_chromium_is_the_systems_not_a_download():
    _need_browser()
    assert CHROMIUM.resolve().is_file() and shutil.which(str(CHROMIUM))
