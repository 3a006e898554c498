"""The 督查室 dashboard: read-only pages on `duban run`'s aiohttp server, under /board/.

Access: a single-use link from the 看板 command opens a 12-hour session (cookie: HttpOnly,
SameSite=Strict, Secure behind https); every request re-checks the session and that its person is
still on the roster. Unit staff see their own unit only; leaders and the 督查室 see the county.

Safe by construction: pages are Jinja2 with autoescape on; there is no endpoint that changes
anything (the sign-in POST only spends its own link), so CSRF has nothing to forge — the sign-in is
still refused from another site (Sec-Fetch-Site). Every response carries a CSP with no inline script
or style, frame-ancestors 'none', X-Frame-Options DENY, nosniff, no-referrer (the link's token never
leaks to another site) and no-store.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlencode

import pylopdf_fonts_zh_cn
from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.clock import Clock
from bot.dashboard import PREFIX, data, svg
from bot.settings import Settings
from handlers.queries import COLOUR_WORDS
from message_templates import render as words
from reminders.calendar import WorkCalendar
from reminders.ledger_export import write_ledger
from reminders.reports import build_bulletin, monthly_chart
from storage import queries
from storage.dashboard import SESSION_LIFETIME, redeem_link, session_person
from storage.db import transaction
from storage.models import Person, Task, Unit

COOKIE = "duban_board"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                                "font-src 'self'; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
STATIC = {"board.css": "text/css", "board.js": "text/javascript"}
FONT = "NotoSansSC.otf"
COLOURS_BY_NAME = {"blue": "蓝色", "yellow": "黄色", "red": "红色"}
# the chat's names without their emoji: a page shows colour with colour, and a desk PC may lack an emoji font
PLAIN_COLOUR_NAMES = {**COLOURS_BY_NAME, None: "未督办"}
RULES = {  # the article of the 三色 rules (or SPEC clause) behind each kind of notice
    "ack_reminder": "签收提醒（交办后1个工作日未签收）", "courtesy": "临期提醒（期限前1个工作日）",
    "report_reminder": "定期进展提醒", "blue": "第四条：到期未办结，蓝色督办单",
    "yellow": "第五条：到期第5天仍未办结，黄色督办单（第七条：常务副县长签发）",
    "red": "第六条：黄色督办单发出10天后仍未办结，红色督办单（第七条：县长签发）",
    "sign_reminder": "第七条：督办单待签发超过1个工作日，提醒签发人",
}


@cache
def _env() -> Environment:
    env = Environment(loader=PackageLoader("message_templates", ""), undefined=StrictUndefined,
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(u=words.user_text, d=words.md_date, dd=lambda v: words.md_date(v, with_time=False),
                       full=words.md_datetime_full)
    env.globals.update(ROLE_NAMES=words.ROLE_NAMES, STATUS_NAMES=words.STATUS_NAMES,
                       COLOUR_NAMES=PLAIN_COLOUR_NAMES, COLOURS_BY_NAME=COLOURS_BY_NAME, RULES=RULES,
                       PREFIX=PREFIX)
    return env


def page(name: str, status: int = 200, **context: object) -> web.Response:
    html = _env().get_template(f"dashboard/{name}.html.j2").render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def refusal(status: int, reason: str) -> web.Response:
    return page("message", status=status, reason=reason, person=None)


@web.middleware
async def security_headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a 404 / 405 from the router gets the headers too
        if request.path.startswith(PREFIX):
            exc.headers.update(SECURITY_HEADERS)
        raise
    if request.path.startswith(PREFIX):
        response.headers.update(SECURITY_HEADERS)
    return response


class Dashboard:
    def __init__(self, engine: Engine, settings: Settings, clock: Clock, calendar: WorkCalendar) -> None:
        self.engine, self.settings, self.clock, self.calendar = engine, settings, clock, calendar
        self.secure = settings.dashboard_url.startswith("https://")
        self.overviews = data.Overviews()

    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"{PREFIX}/", self.overview), web.get(PREFIX, self.to_overview),
                web.get(f"{PREFIX}/drafts", self.drafts), web.get(f"{PREFIX}/unit/{{unit_id:\\d+}}", self.unit),
                web.get(f"{PREFIX}/task/{{code}}", self.task),
                web.get(f"{PREFIX}/signin", self.signin_page), web.post(f"{PREFIX}/signin", self.signin),
                web.get(f"{PREFIX}/export/ledger.xlsx", self.export_ledger),
                web.get(f"{PREFIX}/export/chart.png", self.export_chart),
                web.get(f"{PREFIX}/static/{{name}}", self.static)]

    # -- sign-in --------------------------------------------------------------------------------
    async def signin_page(self, request: web.Request) -> web.Response:
        """The link opens a page with one button: a link preview fetching the URL does not spend it."""
        token = request.query.get("t", "")
        if not token:
            return refusal(400, "链接不完整，请在钉钉里重新发送「看板」获取登录链接。")
        return page("signin", token=token, person=None)

    async def signin(self, request: web.Request) -> web.Response:
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return refusal(403, "请直接打开钉钉私信中的链接登录。")
        token = str((await request.post()).get("t", ""))

        def redeem() -> str | None:
            with transaction(self.engine) as session:
                return redeem_link(session, token, self.clock.now())

        cookie = await asyncio.to_thread(redeem) if token else None
        if cookie is None:
            return refusal(403, "链接已失效（超过15分钟或已使用过），请在钉钉里重新发送「看板」获取新链接。")
        response = web.Response(status=303, headers={"Location": f"{PREFIX}/"})
        response.set_cookie(COOKIE, cookie, max_age=int(SESSION_LIFETIME.total_seconds()), path=PREFIX,
                            httponly=True, samesite="Strict", secure=self.secure)
        return response

    def _person(self, session: Session, request: web.Request) -> Person | None:
        cookie = request.cookies.get(COOKIE)
        return session_person(session, cookie, self.clock.now()) if cookie else None

    async def _view(self, request: web.Request, build: Callable[[Session, data.Scope], web.Response]
                    ) -> web.Response:
        """Run `build` for a signed-in person, off the event loop (database work is synchronous)."""

        def run() -> web.Response:
            with Session(self.engine) as session:
                person = self._person(session, request)
                if person is None:
                    return refusal(401, "请先登录：在钉钉里向督办助手发送「看板」，点私信中的链接进入。")
                return build(session, data.Scope(person))

        return await asyncio.to_thread(run)

    # -- pages ------------------------------------------------------------------------------------
    async def to_overview(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{PREFIX}/")

    def _filters(self, request: web.Request) -> data.Filters:
        query = request.query
        unit_id = int(query["unit"]) if query.get("unit", "").isdigit() else None
        colour = next((k for k in COLOUR_WORDS.values() if k.value == query.get("colour")), None)
        period = query.get("period", "")
        if period not in data.recent_periods(self.clock.now()):
            period = ""
        return data.Filters(unit_id=unit_id, colour=colour, category=query.get("category") or None, period=period)

    async def overview(self, request: web.Request) -> web.Response:
        def build(session: Session, scope: data.Scope) -> web.Response:
            filters = self._filters(request)
            now, view = self.overviews.get(session, self.clock.now(), self.settings, self.calendar, scope, filters)
            points = {"blue": self.settings.rules.score_blue, "yellow": self.settings.rules.score_yellow,
                      "red": self.settings.rules.score_red}
            units = [] if scope.unit_id else queries.active_units(session)
            return page("overview", person=scope.person, scope=scope, view=view, filters=filters, now=now,
                        units=units, score_chart=svg.score_bars(view.rows, points), trend_chart=svg.week_bars(view.trend),
                        export_query=urlencode({"period": filters.period}) if filters.period else "")

        return await self._view(request, build)

    async def drafts(self, request: web.Request) -> web.Response:
        def build(session: Session, scope: data.Scope) -> web.Response:
            now = self.clock.now()
            return page("drafts", person=scope.person, scope=scope, now=now,
                        signers=data.drafts(session, now, self.settings, self.calendar, scope))

        return await self._view(request, build)

    async def unit(self, request: web.Request) -> web.Response:
        def build(session: Session, scope: data.Scope) -> web.Response:
            unit = session.get(Unit, int(request.match_info["unit_id"]))
            if unit is None or not scope.sees_unit(unit.id):
                return refusal(404, "没有这个单位，或您只能查看本单位。")
            now = self.clock.now()
            filters = self._filters(request)
            show_closed = request.query.get("closed") == "1"
            return page("unit", person=scope.person, scope=scope, now=now, unit=unit, filters=filters,
                        show_closed=show_closed, rows=data.unit_tasks(session, now, unit, filters, show_closed),
                        names=data.names(session),
                        categories=sorted(session.exec(select(Task.category).distinct())))

        return await self._view(request, build)

    async def task(self, request: web.Request) -> web.Response:
        def build(session: Session, scope: data.Scope) -> web.Response:
            task = queries.task_by_code(session, request.match_info["code"][:40])
            if task is None or not scope.sees_unit(task.lead_unit_id):
                return refusal(404, "没有这个事项，或您只能查看本单位的事项。")
            return page("task", person=scope.person, scope=scope, now=self.clock.now(),
                        names=data.names(session), **data.task_detail(session, self.clock.now(), task))

        return await self._view(request, build)

    # -- exports (the county's files: leaders and the 督查室) -------------------------------------------
    async def export_ledger(self, request: web.Request) -> web.StreamResponse:
        def build(session: Session, scope: data.Scope) -> web.Response:
            if scope.unit_id is not None:
                return refusal(403, "全县台账仅供县领导和督查室导出。")
            now = self.clock.now()
            with tempfile.TemporaryDirectory(prefix="duban-board-") as tmp:
                path = write_ledger(session, now, Path(tmp) / "ledger.xlsx")
                body = path.read_bytes()
            return _download(body, f"督办台账-{now:%Y%m%d-%H%M}.xlsx",
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

        return await self._view(request, build)

    async def export_chart(self, request: web.Request) -> web.StreamResponse:
        def build(session: Session, scope: data.Scope) -> web.Response:
            if scope.unit_id is not None:
                return refusal(403, "积分图仅供县领导和督查室导出。")
            now = self.clock.now()
            filters = self._filters(request)
            bulletin = build_bulletin(session, data.period_of(filters, now), self.settings.rules)
            with tempfile.TemporaryDirectory(prefix="duban-board-") as tmp:
                body = monthly_chart(bulletin, Path(tmp)).read_bytes()
            return _download(body, f"督办积分图-{bulletin.period.key}.png", "image/png")

        return await self._view(request, build)

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == FONT:  # the charts' bundled Noto Sans SC: only fetched where no Chinese system font fits
            return web.FileResponse(pylopdf_fonts_zh_cn.sans_path(), headers={"Content-Type": "font/otf"})
        if name not in STATIC:
            raise web.HTTPNotFound()
        body = (resources.files("bot.dashboard") / "static" / name).read_bytes()
        return web.Response(body=body, content_type=STATIC[name])


def _download(body: bytes, filename: str, content_type: str) -> web.Response:
    return web.Response(body=body, content_type=content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


def add_dashboard(app: web.Application, engine: Engine, settings: Settings, clock: Clock,
                  calendar: WorkCalendar) -> Dashboard:
    """Mount the dashboard on `app` (duban run's server, or `duban demo --serve`)."""
    board = Dashboard(engine, settings, clock, calendar)
    app.middlewares.append(security_headers)
    app.add_routes(board.routes())
    return board


def dashboard_app(engine: Engine, settings: Settings, clock: Clock, calendar: WorkCalendar) -> web.Application:
    app = web.Application()
    add_dashboard(app, engine, settings, clock, calendar)
    return app

