"""The dashboard's aiohttp handlers, without a browser: sign-in through the link the bot DMs after
看板, single use and expiry, sessions ending with the roster, unit scope, escaping, security headers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import Session, select

from bot.dashboard.app import dashboard_app
from bot.simulation import Simulation
from storage.models import Unit
from storage.tz import shanghai as sh
from tests.bot.test_roster_reload import roster_file

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'
OFFICE, HEAD, OTHER_HEAD, LEADER = "u_ducha1", "u_zhujian", "u_yingji", "u_xianzhang"


def link_for(sim: Simulation, user: str, text: str = "看板", to: str | None = None) -> str:
    """Ask the bot for a link as `user`; the token in the DM the bot sent (to `to`, default `user`)."""
    before = len(sim.transport.sent)
    sim.say(user, text)
    dms = [m for _, m in sim.transport.sent[before:] if (to or user) in m.recipients and "督查看板" in m.text]
    assert len(dms) == 1, [m.title for _, m in sim.transport.sent[before:]]
    return re.search(r"/board/signin\?t=([\w-]+)\)", dms[0].text)[1]


async def link(sim: Simulation, user: str, text: str = "看板", to: str | None = None) -> str:
    return await asyncio.to_thread(link_for, sim, user, text, to)  # the simulation runs its own event loop


@pytest.fixture
def county(sim: Simulation) -> Simulation:
    sim.say(LEADER, f"交办 县住建局 {HOSTILE}排查 截止11月25日", group="cid_leaders")
    sim.say(LEADER, "交办 县应急局 类别 会议交办 森林防火排查 截止12月18日", group="cid_leaders")
    sim.say(HEAD, "签收 DB-2026-0001")
    sim.run_until(sh(2026, 12, 1, 10))  # DB-2026-0001 is blue by now
    return sim


@pytest.fixture
async def client(county: Simulation) -> AsyncIterator[TestClient]:
    app = dashboard_app(county.engine, county.bot.settings, county.clock, county.bot.calendar)
    async with TestClient(TestServer(app)) as c:
        yield c


async def sign_in(client: TestClient, token: str) -> int:
    page = await client.get(f"/board/signin?t={token}")
    assert page.status == 200 and token in await page.text()  # the page only offers a button
    answer = await client.post("/board/signin", data={"t": token}, allow_redirects=False)
    return answer.status


async def test_nothing_is_shown_without_signing_in(client):
    for path in ("/board/", "/board/drafts", "/board/unit/1", "/board/task/DB-2026-0001",
                 "/board/export/ledger.xlsx", "/board/export/chart.png"):
        answer = await client.get(path)
        assert answer.status == 401, path
        assert "发送「看板」" in await answer.text()
    client.session.cookie_jar.update_cookies({"duban_board": "forged"})
    assert (await client.get("/board/")).status == 401


async def test_a_link_signs_in_once_with_a_strict_http_only_cookie(county, client):
    token = await link(county, OFFICE)
    answer = await client.post("/board/signin", data={"t": token}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/board/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=43200" in cookie
    assert "Path=/board" in cookie
    overview = await client.get("/board/")
    assert overview.status == 200 and "县住建局" in await overview.text()
    client.session.cookie_jar.clear()
    assert await sign_in(client, token) == 403  # reused
    assert (await client.get("/board/")).status == 401


async def test_an_expired_link_is_refused_and_a_session_ends_after_12_hours(county, client):
    token = await link(county, OFFICE)
    county.clock.advance(minutes=16)
    assert await sign_in(client, token) == 403
    assert await sign_in(client, await link(county, OFFICE)) == 303
    county.clock.advance(hours=11, minutes=59)
    assert (await client.get("/board/")).status == 200
    county.clock.advance(minutes=2)
    assert (await client.get("/board/")).status == 401


async def test_a_session_ends_when_its_person_leaves_the_roster(county, client, tmp_path):
    assert await sign_in(client, await link(county, OFFICE)) == 303
    assert (await client.get("/board/")).status == 200
    line = "  - {id: u_ducha1, name: 孙敏, title: 督查室主任, role: supervisor}\n"
    county.bot.load_roster(roster_file(tmp_path, (line, "")))
    assert (await client.get("/board/")).status == 401
    county.bot.load_roster(roster_file(tmp_path))  # back on the roster: a new link is needed
    assert (await client.get("/board/")).status == 401


async def test_a_link_of_someone_who_left_before_using_it_is_refused(county, client, tmp_path):
    token = await link(county, OFFICE)
    line = "  - {id: u_ducha1, name: 孙敏, title: 督查室主任, role: supervisor}\n"
    county.bot.load_roster(roster_file(tmp_path, (line, "")))
    assert await sign_in(client, token) == 403


async def test_a_unit_head_sees_only_their_unit(county, client):
    token = await link(county, OFFICE, "看板 住建局", to=HEAD)
    assert await sign_in(client, token) == 303
    overview = await (await client.get("/board/")).text()
    assert re.findall(r'data-unit="([^"]+)"', overview) == ["县住建局"]
    assert "县应急局" not in overview
    assert (await client.get("/board/task/DB-2026-0002")).status == 404  # 县应急局's
    assert (await client.get("/board/task/DB-2026-0001")).status == 200
    units = {row.split('"')[0] for row in re.findall(r'/board/unit/(\d+")', overview)}
    assert len(units) == 1
    other = 2 if units == {"1"} else 1
    assert (await client.get(f"/board/unit/{other}")).status == 404
    for export in ("/board/export/ledger.xlsx", "/board/export/chart.png"):
        assert (await client.get(export)).status == 403


def test_only_the_office_sends_links_to_others_and_unit_staff_cannot_ask(county):
    assert county.say(LEADER, "看板 县住建局")[0].title == "无权使用"
    assert county.say(HEAD, "看板")[0].title == "无权使用"
    assert county.say(OFFICE, "看板 不存在局")[0].title == "没有这个单位"


async def test_a_hostile_title_is_text_everywhere(county, client):
    assert await sign_in(client, await link(county, OFFICE)) == 303
    for path in ("/board/task/DB-2026-0001", "/board/unit/1?closed=1", "/board/"):
        html = await (await client.get(path)).text()
        assert "<script>alert" not in html and "<img src=x" not in html, path
    task = await (await client.get("/board/task/DB-2026-0001")).text()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;amp;排查" in task


async def test_every_page_carries_the_security_headers(county, client):
    assert await sign_in(client, await link(county, OFFICE)) == 303
    for path in ("/board/", "/board/drafts", "/board/unit/1", "/board/task/DB-2026-0001", "/board/task/NOPE",
                 "/board/signin", "/board/static/board.css", "/board/static/nope.js", "/board/export/chart.png"):
        answer = await client.get(path)
        assert answer.headers.get("X-Frame-Options") == "DENY", path
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", path
        assert answer.headers.get("Referrer-Policy") == "no-referrer", path
        assert answer.headers.get("Cache-Control") == "no-store", path
        csp = answer.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path


async def test_no_inline_script_or_style_in_any_page(county, client):
    """The CSP forbids them: a page that used one would break in the browser."""
    assert await sign_in(client, await link(county, OFFICE)) == 303
    for path in ("/board/", "/board/drafts", "/board/unit/1", "/board/task/DB-2026-0001"):
        html = await (await client.get(path)).text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html and " style=" not in html and " on" + "click=" not in html, path


async def test_a_sign_in_posted_from_another_site_is_refused(county, client):
    token = await link(county, OFFICE)
    answer = await client.post("/board/signin", data={"t": token}, headers={"Sec-Fetch-Site": "cross-site"},
                               allow_redirects=False)
    assert answer.status == 403
    assert await sign_in(client, token) == 303  # the refused attempt did not spend the link


async def test_there_is_no_write_endpoint(client):
    for path in ("/board/", "/board/task/DB-2026-0001", "/board/unit/1"):
        assert (await client.post(path)).status == 405


async def test_exports_are_the_ledger_and_the_chart(county, client):
    assert await sign_in(client, await link(county, OFFICE)) == 303
    ledger = await client.get("/board/export/ledger.xlsx")
    assert ledger.status == 200 and (await ledger.read())[:2] == b"PK"
    assert "attachment" in ledger.headers["Content-Disposition"]
    chart = await client.get("/board/export/chart.png?period=2026-11")
    assert chart.status == 200 and (await chart.read())[:8] == b"\x89PNG\r\n\x1a\n"



async def test_a_finished_tasks_overdue_days_stop_at_its_close(county, client):
    def close() -> None:
        county.say(HEAD, "办结 DB-2026-0001 已完成排查")
        county.say(LEADER, "销号 DB-2026-0001")

    await asyncio.to_thread(close)  # 12月1日: six days after its deadline of 11月25日
    county.clock.advance(days=20)
    assert await sign_in(client, await link(county, OFFICE)) == 303
    for path in ("/board/task/DB-2026-0001", "/board/unit/1?closed=1"):
        html = await (await client.get(path)).text()
        assert "逾期6天后销号" in html and "逾期26天" not in html, path


async def test_filters_by_unit_colour_category_and_period(county, client):
    assert await sign_in(client, await link(county, OFFICE)) == 303

    async def rows(query: str) -> dict[str, str]:
        html = await (await client.get(f"/board/?{query}")).text()
        return dict(re.findall(r'data-unit="([^"]+)"[^>]*data-open="(\d+)"', html))

    everyone = await rows("")
    assert everyone["县住建局"] == "1" and everyone["县应急局"] == "1" and len(everyone) == 6
    assert await rows("colour=blue") == {"县住建局": "1"}  # the only unit with an open blue task
    assert await rows("colour=red") == {}
    with Session(county.engine) as session:
        unit_id = session.exec(select(Unit.id).where(Unit.name == "县应急局")).one()
    assert await rows(f"unit={unit_id}") == {"县应急局": "1"}
    by_category = await rows("category=会议交办")
    assert by_category["县应急局"] == "1" and by_category["县住建局"] == "0"
    november = await (await client.get("/board/?period=2026-11")).text()
    assert "2026年11月督办通报" in november and "未来14天预警" not in november
    assert "未来14天预警" in await (await client.get("/board/?period=1999-01")).text()  # not offered: this month


async def test_the_same_on_sqlite_and_postgresql(sim_any: Simulation):
    """Sign-in (the single-use UPDATE), the pages and their numbers on both databases."""
    def prepare() -> str:
        sim_any.say(LEADER, "交办 县住建局 燃气管道排查 截止11月25日", group="cid_leaders")
        sim_any.run_until(sh(2026, 11, 26, 10))
        return link_for(sim_any, OFFICE)

    token = await asyncio.to_thread(prepare)
    app = dashboard_app(sim_any.engine, sim_any.bot.settings, sim_any.clock, sim_any.bot.calendar)
    async with TestClient(TestServer(app)) as c:
        assert await sign_in(c, token) == 303
        html = await (await c.get("/board/")).text()
        assert re.search(r'data-unit="县住建局" data-rank="6" data-score="-1"', html)  # the blue of 11月25日
        assert (await c.get("/board/task/DB-2026-0001")).status == 200
        c.session.cookie_jar.clear()
        assert await sign_in(c, token) == 403


async def test_two_clicks_at_once_sign_in_once(sim_any: Simulation):
    """The link is spent by one UPDATE … WHERE used_at IS NULL: of two sign-ins racing (each in its own
    thread and transaction), exactly one gets a session, on SQLite and on PostgreSQL."""
    app = dashboard_app(sim_any.engine, sim_any.bot.settings, sim_any.clock, sim_any.bot.calendar)
    async with TestClient(TestServer(app)) as c:
        for _ in range(10):
            token = await link(sim_any, OFFICE)
            answers = await asyncio.gather(*(c.post("/board/signin", data={"t": token}, allow_redirects=False)
                                             for _ in range(2)))
            assert sorted(a.status for a in answers) == [303, 403]


async def test_the_page_follows_every_change_and_the_clock(county, client):
    """Every page counts afresh at its cut-off: a command shows at once, and time passing alone moves
    what depends on it (overdue)."""
    assert await sign_in(client, await link(county, OFFICE)) == 303
    await asyncio.to_thread(county.say, LEADER, "交办 县教育局 校园安全排查 截止12月1日", group="cid_leaders")
    await (await client.get("/board/")).text()  # a snapshot at 10:00, the very instant of that 交办 …
    county.clock.advance(minutes=1)  # … must not be reused a minute later, when the task counts

    async def row(unit: str) -> tuple[str, str]:
        html = await (await client.get("/board/")).text()
        return re.search(rf'data-unit="{unit}"[^>]*data-open="(\d+)" data-overdue="(\d+)"', html).groups()

    assert await row("县应急局") == ("1", "0")
    assert await row("县教育局") == ("1", "0")
    await asyncio.to_thread(county.say, OTHER_HEAD, "签收 DB-2026-0002")
    await asyncio.to_thread(county.say, OTHER_HEAD, "办结 DB-2026-0002 已完成")
    await asyncio.to_thread(county.say, LEADER, "销号 DB-2026-0002")
    county.clock.advance(minutes=1)  # (a snapshot shows what happened before its moment)
    assert await row("县应急局") == ("0", "0")
    county.clock.advance(hours=8)  # 18:02: past 县教育局's deadline of 17:30, and nothing written since
    assert await row("县教育局") == ("1", "1")
