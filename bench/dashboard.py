"""How fast the dashboard answers for a county of 60 units and 3,000 tasks (issue 14: < 200 ms).

    python bench/dashboard.py [--units 60] [--tasks 3000] [--rounds 3] [--postgresql]

Fills a SQLite file in a temporary directory through the real bot (交办, 签收, the schedule's colour
notices, 签发 of the drafts, 办结 and 销号) on a simulated year (see `fill`), then times each page over HTTP on a real aiohttp
server, signed in, next to an anchor measured in the same run on the same server: a handler that
returns a constant. Every page counts afresh in SQL (bot/dashboard/data.py over
storage/report_queries.py); the "after a change" rows write an audit event a second before each request, so
they show the first look after any command; the other rows are repeat views (the 总览 is reused
within the minute while the data is unchanged: bot/dashboard/data.Overviews). Prints min / median / max of `--rounds` repetitions and the ratio to the anchor's
median, so a figure from a busy shared machine can be read against its own baseline, and the 1-minute
load average. With --postgresql the filled county is also copied row for row into a fresh PostgreSQL
database (bench/common.postgres) and the same pages are timed there, at the same moment.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from common import load, postgres
from sqlalchemy import Integer, event, text
from sqlmodel import Session, SQLModel, select

from bot.dashboard.app import dashboard_app
from bot.simulation import Simulation
from handlers.incoming import Incoming
from reminders.reports import month_before
from storage import audit
from storage.dashboard import issue_link
from storage.db import create_schema, make_engine, transaction
from storage.models import AuditEvent, Notice, NoticeStatus, Task, Unit
from storage.tz import shanghai

START = shanghai(2026, 1, 5, 9, 30)
PAGES = ("/board/", "/board/?period={month}", "/board/drafts", "/board/unit/{unit}", "/board/task/{code}")
COLD = ("/board/ (after a change)", "/board/drafts (after a change)")


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


CATEGORIES = ("重大决策部署", "政府工作报告目标任务", "县长批示件", "会议交办", "其他")


def fill(folder: Path, units: int, tasks: int, rng: random.Random) -> Simulation:
    """A busy year so far: about 13 tasks a working day; 70% are closed before their deadline, 25% late
    by 1–20 days (so they collect blue, yellow and sometimes red notices), 5% stall and stay open."""
    sim = Simulation(f"sqlite:///{folder}/bench.db", START, roster=roster(units, folder))
    event.listen(sim.engine, "connect", lambda conn, _: conn.execute("PRAGMA synchronous=OFF"))
    ids = iter(range(10**9))
    closing: dict[date, list[tuple[int, str]]] = defaultdict(list)

    def say(user: str, text: str) -> None:
        sim.bot.handle_sync(Incoming(msg_id=f"b{next(ids)}", sender_id=user, text=text))

    per_day = max(1, tasks // 230)
    day, made = START, 0
    while made < tasks:
        for _ in range(min(per_day, tasks - made)):
            unit, made = rng.randrange(units), made + 1
            code, due = f"DB-2026-{made:04d}", day.date() + timedelta(days=rng.randint(7, 25))
            say("u_ducha1", f"交办 单位{unit:02d} 类别 {rng.choice(CATEGORIES)} 第{made}项重点工作 截止{due.month}月{due.day}日")
            say(f"u_h{unit}", f"签收 {code}")
            fate = rng.random()
            if fate < 0.7:
                closing[max(due - timedelta(days=rng.randint(0, 3)), day.date() + timedelta(days=1))].append((unit, code))
            elif fate < 0.95:
                closing[due + timedelta(days=rng.randint(1, 20))].append((unit, code))
        day += timedelta(days=1)
        sim.clock.set(day)
        sim.bot.tick()
        for unit, code in closing.pop(day.date(), []):
            say(f"u_h{unit}", f"办结 {code} 已完成")
            say("u_ducha1", f"销号 {code}")
        with Session(sim.engine) as session:
            drafts = session.exec(select(Notice.code, Notice.signer_id).where(Notice.status == NoticeStatus.DRAFT)).all()
        for code, signer in drafts:
            if rng.random() < 0.7:
                say(signer, f"签发 {code}")
    return sim


def reopen(folder: Path, units: int) -> Simulation:
    """A county filled by an earlier run with --keep: its clock at its last task's assignment day, or
    past the changes the earlier runs' "after a change" rows wrote, if later."""
    sim = Simulation(f"sqlite:///{folder}/bench.db", START, roster=roster(units, folder))
    with Session(sim.engine) as session:
        last = session.exec(select(Task.assigned_at).order_by(Task.assigned_at.desc())).first()
        changed = session.exec(select(AuditEvent.at).order_by(AuditEvent.at.desc())).first()
    sim.clock.set(max(last + timedelta(days=1), changed - timedelta(minutes=59)))  # where fill() left it
    return sim


def copy_to(sim: Simulation, url: str, folder: Path, units: int) -> Simulation:
    """The filled county copied row for row into the empty database at `url`, its id sequences moved
    past the copied rows, with a bot on it whose clock reads what `sim`'s does."""
    engine = make_engine(url)
    create_schema(engine)
    with sim.engine.connect() as source, engine.begin() as target:
        for table in SQLModel.metadata.sorted_tables:
            rows = [dict(row._mapping) for row in source.execute(table.select())]
            if rows:
                target.execute(table.insert(), rows)
            if "id" in table.c and isinstance(table.c.id.type, Integer):
                target.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                    f"COALESCE(MAX(id), 0) + 1, false) FROM {table.name}"))
    engine.dispose()
    copy = Simulation(url, START, roster=roster(units, folder))  # the roster is already there: nothing changes
    copy.clock.set(sim.clock.now())
    return copy


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
        for path in ("/anchor", *PAGES, *COLD):
            url = base + path.split()[0].format(unit=unit, code=code, month=month_before(sim.clock.now()).key)
            await (await client.get(url)).read()  # warm: templates compiled, connections open
            times = []
            for _ in range(rounds):
                if path in COLD:  # a command a second ago changed something: the county is read afresh
                    with transaction(sim.engine) as session:
                        audit.record(session, at=sim.clock.now(), actor=audit.SYSTEM, action="bench_change")
                    sim.clock.advance(seconds=1)
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
    parser.add_argument("--postgresql", action="store_true", help="also time the pages on a copy in PostgreSQL")
    parser.add_argument("--keep", type=Path, help="a folder to keep the filled county in, and reuse it from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duban-bench-") as tmp:
        started = time.perf_counter()
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        sim = reopen(folder, args.units) if (folder / "bench.db").exists() else fill(
            folder, args.units, args.tasks, random.Random(14))
        with Session(sim.engine) as session:
            notices = len(session.exec(select(Notice.id)).all())
        print(f"county: {args.units} units, {args.tasks} tasks, {notices} notices "
              f"(filled through the bot in {time.perf_counter() - started:.0f} s), SQLite, at {sim.clock.now():%Y-%m-%d}")
        sim.clock.advance(hours=1)  # someone looks an hour after the last command
        with postgres() if args.postgresql else nullcontext() as url:
            copy = copy_to(sim, url, folder, args.units) if url else None  # before any look writes to the county
            show("SQLite", asyncio.run(time_pages(sim, args.rounds)))
            sim.engine.dispose()
            if copy is not None:
                show("PostgreSQL", asyncio.run(time_pages(copy, args.rounds)))
                copy.engine.dispose()


def show(database: str, figures: dict[str, list[float]]) -> None:
    anchor = statistics.median(figures["/anchor"])
    print(f"{database}, load average {load()}")
    print(f"{'page':<34}{'min ms':>9}{'median ms':>11}{'max ms':>9}{'× anchor':>10}")
    for path, times in figures.items():
        print(f"{path:<34}{min(times):>9.1f}{statistics.median(times):>11.1f}{max(times):>9.1f}"
              f"{statistics.median(times) / anchor:>10.0f}")


if __name__ == "__main__":
    main()
