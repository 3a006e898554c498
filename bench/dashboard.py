"""How fast the dashboard answers for a county of 60 units and 3,000 tasks (issue 14: < 200 ms).

    python bench/dashboard.py [--units 60] [--tasks 3000] [--rounds 3]

Fills a SQLite file in a temporary directory through the real bot (交办, 签收, the schedule's colour
notices, 签发 of the drafts) on a simulated year, then times each page over HTTP on a real aiohttp
server, signed in, next to an anchor measured in the same run on the same server: a handler that
returns a constant. Prints min / median / max of `--rounds` repetitions and the ratio to the anchor's
median, so a figure from a busy shared machine can be read against its own baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import event
from sqlmodel import Session, select

from bot.channel import Incoming
from bot.clock import shanghai
from bot.dashboard.app import dashboard_app
from bot.simulation import Simulation
from reminders.reports import month_before
from storage.dashboard import issue_link
from storage.db import transaction
from storage.models import Notice, NoticeStatus, Unit

START = shanghai(2026, 1, 5, 9, 30)
PAGES = ("/board/", "/board/?period={month}", "/board/drafts", "/board/unit/{unit}", "/board/task/{code}")


def roster(units: int, folder: Path) -> Path:
    lines = ["county: 基准县", "officials:",
             "  - {id: u_xianzhang, name: 县长甲, title: 县长, role: county_head}",
             "  - {id: u_changwu, name: 常务乙, title: 常务副县长, role: executive_deputy}",
             "  - {id: u_zhuren, name: 主任丙, title: 县政府办主任, role: office_director}",
             "  - {id: u_ducha1, name: 督查丁, title: 督查室主任, role: supervisor}", "units:"]
    for i in range(units):
        lines += [f"  - name: 单位{i:02d}", f"    head: {{id: u_h{i}, name: 负责人{i}, title: 局长}}"]
    lines += ["groups:", "  - {key: leaders, name: 领导群, conversation_id: cid_leaders}",
              "  - {key: all_units, name: 单位群, conversation_id: cid_all}"]
    path = folder / "roster.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fill(folder: Path, units: int, tasks: int, rng: random.Random) -> Simulation:
    sim = Simulation(f"sqlite:///{folder}/bench.db", START, roster=roster(units, folder))
    event.listen(sim.engine, "connect", lambda conn, _: conn.execute("PRAGMA synchronous=OFF"))
    ids = iter(range(10**9))

    def say(user: str, text: str) -> None:
        sim.bot.handle_sync(Incoming(msg_id=f"b{next(ids)}", sender_id=user, text=text))

    per_day = max(1, tasks // 230)
    day, made = START, 0
    while made < tasks:
        for _ in range(min(per_day, tasks - made)):
            unit = rng.randrange(units)
            made += 1
            say("u_ducha1", f"交办 单位{unit:02d} 第{made}项重点工作 {rng.choice(('5个工作日内', '10个工作日内', ''))}")
            say(f"u_h{unit}", f"签收 DB-2026-{made:04d}")
            if rng.random() < 0.6:
                say(f"u_h{unit}", f"办结 DB-2026-{made:04d} 已完成")
                say("u_ducha1", f"销号 DB-2026-{made:04d}")
        day += timedelta(days=1)
        sim.clock.set(day)
        sim.bot.tick()
        with Session(sim.engine) as session:
            drafts = session.exec(select(Notice.code, Notice.signer_id).where(Notice.status == NoticeStatus.DRAFT)).all()
        for code, signer in drafts:
            if rng.random() < 0.7:
                say(signer, f"签发 {code}")
    return sim


async def time_pages(sim: Simulation, rounds: int) -> dict[str, list[float]]:
    app = dashboard_app(sim.engine, sim.bot.settings, sim.clock, sim.bot.calendar)

    async def anchor(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/anchor", anchor)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    with transaction(sim.engine) as session:
        token = issue_link(session, "u_ducha1", sim.clock.now())
        unit = session.exec(select(Unit.id)).first()
    out: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:  # cookies for 127.0.0.1
        await client.post(f"{base}/board/signin", data={"t": token})
        task_page = await (await client.get(f"{base}/board/unit/{unit}?closed=1")).text()
        code = re.search(r"DB-2026-\d{4}", task_page)[0]
        for path in ("/anchor", *PAGES):
            url = base + path.format(unit=unit, code=code, month=month_before(sim.clock.now()).key)
            await (await client.get(url)).read()  # warm: templates compiled, connections open
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                answer = await client.get(url)
                await answer.read()
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status == 200, (path, answer.status)
            out[path] = times
    await runner.cleanup()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=60)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duban-bench-") as tmp:
        started = time.perf_counter()
        sim = fill(Path(tmp), args.units, args.tasks, random.Random(14))
        with Session(sim.engine) as session:
            notices = len(session.exec(select(Notice.id)).all())
        print(f"county: {args.units} units, {args.tasks} tasks, {notices} notices "
              f"(filled through the bot in {time.perf_counter() - started:.0f} s), SQLite, at {sim.clock.now():%Y-%m-%d}")
        figures = asyncio.run(time_pages(sim, args.rounds))
        sim.engine.dispose()
    anchor = statistics.median(figures["/anchor"])
    print(f"{'page':<28}{'min ms':>9}{'median ms':>11}{'max ms':>9}{'× anchor':>10}")
    for path, times in figures.items():
        print(f"{path:<28}{min(times):>9.1f}{statistics.median(times):>11.1f}{max(times):>9.1f}"
              f"{statistics.median(times) / anchor:>10.0f}")


if __name__ == "__main__":
    main()
