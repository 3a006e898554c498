"""Start-up time and memory of the bot on a 100,000-task database, against one APScheduler job per reminder.

    python bench/startup_memory.py [--tasks 100000] [--jobs-per-task 4] [--rounds 3]

Start-up is `duban run` itself, process start → stream connected: the CLI in a fresh process with
its settings in the environment, against the DingTalk emulator, timed from the spawn until the
emulator sees the websocket (a bare `python -c pass` is timed beside it, and the ratio printed).
Each round starts the bot twice on one database: the first start creates it, the second (a restart,
what a deployed bot does) finds it at the head revision. Beside "stream connected", "all up" is when
the bot logs `duban running` (HTTP server listening: /healthz, /metrics, the dashboard). Idle memory
growth is the bot's resident set after start and first wake-up on a 100,000-task database minus the
same on an empty one. Last lines: `startup_seconds min=… median=… max=…` (first start) and
`idle_rss_growth_mb …`; before them `startup_ratio_to_bare`, `restart_seconds` and `startup_all_up_seconds`.

Builds a SQLite database like bench/reconcile.py does (open tasks, the policy's `next_check_at`),
then measures each side in a fresh process, so neither sees the other's memory:

- the bot: create_schema (an upgrade check), the roster, the scheduler started, and its first
  wake-up (reconcile with nothing due, then the date job planned at the earliest next_check_at);
- the design we chose against: the same tasks held as APScheduler date jobs in a MemoryJobStore,
  one per reminder (临期提醒, 蓝, 黄, 红: 4 a task), as a job-per-reminder bot would keep them.

Memory is the resident set (VmRSS in /proc/self/status, so Linux only) before and after, and its
peak (VmHWM). A benchmark that prints figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
sys.path.append(str(CHECKOUT))  # the checkout: tests.emulator, run as a script

from common import fmt, load, machine_line, spread  # noqa: E402
from reconcile import NOW, fill  # noqa: E402  (bench/reconcile.py: this folder is sys.path[0] as a script)

from bot.simulation import ROSTER  # noqa: E402
from storage.db import make_engine  # noqa: E402

REMINDERS = ("courtesy", "blue", "yellow", "red")


def status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mib() -> float:
    return status_mib("VmRSS")


def peak_mib() -> float:
    # not getrusage's ru_maxrss: Linux carries it over exec, so a child would report its parent's peak
    return status_mib("VmHWM")


def remind(task_id: int, kind: str) -> None:
    """What a job-per-reminder design would run; never runs here (the scheduler stays paused)."""


def child_bot(url: str) -> dict[str, float]:
    from bot.app import Bot
    from bot.clock import FakeClock
    from bot.settings import Settings
    from bot.simulation import ROSTER
    from reminders.calendar import WorkCalendar
    from reminders.scheduler import Waker
    from storage.db import create_schema

    before = rss_mib()

    async def start() -> tuple[float, float]:
        begin = time.perf_counter()
        engine = make_engine(url)
        create_schema(engine)
        bot = Bot(engine, Settings(database_url=url), FakeClock(NOW), WorkCalendar())
        bot.load_roster(ROSTER)
        waker = Waker(engine, bot.tick)
        waker.start()
        started = time.perf_counter()
        await waker.wake()
        woken = time.perf_counter()
        waker.shutdown()
        return started - begin, woken - started

    startup, wake = asyncio.run(start())
    return {"startup_s": startup, "wake_s": wake, "rss_before": before, "rss_after": rss_mib(),
            "peak": peak_mib()}


def child_jobs(tasks: int, per_task: int) -> dict[str, float]:
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from storage.tz import SHANGHAI

    first = datetime.now(SHANGHAI) + timedelta(days=1)
    count = tasks * per_task
    step = timedelta(weeks=6) / count  # spread over six weeks, created in run-date order: MemoryJobStore
    # keeps a sorted list, and appending keeps the build linear; the memory held is the same in any order
    before = rss_mib()
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone=SHANGHAI)
    scheduler.start(paused=True)
    begin = time.perf_counter()
    for i in range(count):
        task_id, kind = divmod(i, per_task)
        scheduler.add_job(remind, "date", run_date=first + i * step, args=(task_id, REMINDERS[kind % len(REMINDERS)]),
                          id=f"{task_id}:{kind}", misfire_grace_time=None)
    built = time.perf_counter() - begin
    after = rss_mib()
    jobs = len(scheduler.get_jobs())
    scheduler.shutdown(wait=False)
    return {"jobs": jobs, "build_s": built, "rss_before": before, "rss_after": after, "peak": peak_mib()}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used: what a loaded machine does not inflate
    the way it inflates wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_once(emulator, env: dict[str, str], folder: Path) -> tuple[float, float, float]:
    """One `duban run`: seconds from spawn to stream connected, CPU seconds it used by then, and
    seconds to `duban running` logged."""
    begin = time.perf_counter()
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "run", env=env, cwd=folder,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    running = asyncio.get_running_loop().create_future()

    async def read_log() -> None:  # read to the end: a full pipe would stall the child
        async for line in child.stderr:
            if b"duban running" in line and not running.done():
                running.set_result(time.perf_counter() - begin)
        if not running.done():
            running.set_exception(RuntimeError("`duban run` ended without logging `duban running`"))

    reader = asyncio.create_task(read_log())
    try:
        await emulator.wait_for(lambda: emulator.live_connections > 0, 60)
        connected = time.perf_counter() - begin
        cpu = cpu_seconds(child.pid)
        up = await asyncio.wait_for(running, 60)
    finally:
        child.send_signal(signal.SIGTERM)
        await child.wait()
        await reader
        await emulator.wait_for(lambda: emulator.live_connections == 0, 60)
    return connected, cpu, up


async def startup_seconds(folder: Path) -> tuple[tuple[float, float, float], float, float]:
    """(first start: stream connected, its CPU seconds, all up; restart: stream connected; a bare
    interpreter's start)."""
    from tests.emulator import Emulator

    emulator = Emulator()
    await emulator.start()
    env = os.environ | {
        "DINGTALK_OPENAPI_ENDPOINT": emulator.url, "DUBAN_DATABASE_URL": f"sqlite:///{folder / 'run.db'}",
        "DUBAN_ROSTER_FILE": str(ROSTER), "DUBAN_REPORTS_DIR": str(folder), "DUBAN_HTTP_PORT": "0",
        "DUBAN_DINGTALK_CLIENT_ID": emulator.client_id, "DUBAN_DINGTALK_CLIENT_SECRET": emulator.client_secret,
        "DUBAN_DINGTALK_OPENAPI_ENDPOINT": emulator.url, "DUBAN_DINGTALK_OAPI_ENDPOINT": emulator.url,
        # this checkout's code: the child runs in a temporary folder, where a relative PYTHONPATH (the
        # usual `PYTHONPATH=.`) finds nothing and the editable install's checkout would be timed instead
        "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])),
    }
    try:
        first = await start_once(emulator, env, folder)
        again, _, _ = await start_once(emulator, env, folder)
    finally:
        await emulator.stop()
    begin = time.perf_counter()
    bare = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await bare.wait()
    return first, again, time.perf_counter() - begin


def spread_line(name: str, values: list[float], digits: int = 2) -> str:
    return machine_line(name, **dict(zip(("min", "median", "max"), (f"{v:.{digits}f}" for v in spread(values)),
                                         strict=True)))


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--jobs-per-task", type=int, default=len(REMINDERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--startup-only", action="store_true", help="time the start-up alone (no memory part)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_bot(rest[0]) if kind == "bot" else child_jobs(int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return

    starts, cpus, ups, restarts, bares, loads = [], [], [], [], [], [load()]
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="duban-bench-") as folder:
            (connected, cpu, up), again, bare = asyncio.run(startup_seconds(Path(folder)))
        starts.append(connected)
        cpus.append(cpu)
        ups.append(up)
        restarts.append(again)
        bares.append(bare)
    loads.append(load())
    ratio = statistics.median(starts) / statistics.median(bares)
    print(f"`duban run`, spawn → stream connected: {fmt(starts, 2)} s, {ratio:.1f}× a bare interpreter "
          f"({fmt(bares, 3)} s); load average {' → '.join(loads)}")
    print(f"  CPU used by then: {fmt(cpus, 2)} s; all up (HTTP listening): {fmt(ups, 2)} s; "
          f"restart on the same database: {fmt(restarts, 2)} s")
    print(machine_line("startup_ratio_to_bare", median=f"{ratio:.1f}", bare_median=f"{statistics.median(bares):.3f}",
                       load=loads[-1]))
    print(spread_line("startup_cpu_seconds", cpus))
    print(spread_line("restart_seconds", restarts))
    print(spread_line("startup_all_up_seconds", ups))
    if args.startup_only:
        print(spread_line("startup_seconds", starts))
        return

    with tempfile.TemporaryDirectory(prefix="duban-bench-") as folder:
        empty_url = f"sqlite:///{Path(folder) / 'empty.db'}"
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = make_engine(empty_url)
        fill(engine, 0, NOW, random.Random(42))
        engine.dispose()
        engine = make_engine(url)
        fill(engine, args.tasks, NOW, random.Random(42))
        engine.dispose()
        size = sum(f.stat().st_size for f in Path(folder).glob("bench.db*")) / 2**20
        empties = [run_child("bot", empty_url) for _ in range(args.rounds)]
        fulls = [run_child("bot", url) for _ in range(args.rounds)]
        bot = fulls[len(fulls) // 2]
    growth = [f["rss_after"] - e["rss_after"] for e, f in zip(empties, fulls, strict=True)]
    jobs = run_child("jobs", str(args.tasks), str(args.jobs_per_task))

    rows = [
        ("the bot (database holds the schedule)", f"{args.tasks:,} tasks, {size:.0f} MiB SQLite",
         f"start {bot['startup_s']:.2f} s + first wake {bot['wake_s'] * 1000:.0f} ms",
         f"{bot['rss_before']:.0f} → {bot['rss_after']:.0f}", f"{bot['rss_after'] - bot['rss_before']:+.1f}",
         f"{bot['peak']:.0f}"),
        ("APScheduler job per reminder", f"{jobs['jobs']:,.0f} jobs in a MemoryJobStore",
         f"build {jobs['build_s']:.1f} s",
         f"{jobs['rss_before']:.0f} → {jobs['rss_after']:.0f}", f"{jobs['rss_after'] - jobs['rss_before']:+.1f}",
         f"{jobs['peak']:.0f}"),
    ]
    header = ("design", "what is held", "time", "RSS MiB", "Δ RSS MiB", "peak MiB")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"idle RSS after start, {args.tasks:,} tasks minus an empty database: {fmt(growth, 1)} MiB")
    print(spread_line("startup_seconds", starts))
    print(spread_line(f"idle_rss_growth_mb tasks={args.tasks}", growth, 1))


if __name__ == "__main__":
    main()
