"""`duban demo --serve`: the demo's county on the dashboard, until Ctrl-C.

The demo plays on a temporary database; here it is kept, a sign-in link is issued for the demo's
督查室 (孙敏) at the demo's last moment, and the pages answer as of that moment (a fixed clock).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from aiohttp import web

from bot.clock import FakeClock
from bot.dashboard.app import dashboard_app
from handlers.dashboard import SIGNIN_PATH
from storage.dashboard import issue_link
from storage.db import transaction

DEMO_VIEWER = "u_ducha1"


def serve_demo(host: str, port: int, write: Callable[[str], None] = print) -> None:
    from bot.demo import play

    with tempfile.TemporaryDirectory(prefix="duban-demo-") as tmp:
        demo = play(write=write, db_url=f"sqlite:///{tmp}/demo.db", dispose=False)
        clock = FakeClock(demo.clock.now())
        with transaction(demo.engine) as session:
            token = issue_link(session, DEMO_VIEWER, clock.now())
        app = dashboard_app(demo.engine, demo.bot.settings, clock, demo.bot.calendar)
        write(f"看板已启动：在浏览器打开 http://{host}:{port}{SIGNIN_PATH}?t={token} （按 Ctrl-C 结束）")
        try:
            web.run_app(app, host=host, port=port, print=None)
        finally:
            demo.engine.dispose()
