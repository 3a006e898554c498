"""Memory and CPU of building the weekly summary, the monthly bulletin and the year-end report on a
100,000-task database, on SQLite and on PostgreSQL.

    python bench/bulletins.py [--tasks 100000] [--due 3000] [--rounds 3] [--sqlite-only]

Builds a database as bench/reconcile.py does, with `--due` of the tasks taken through a blue (notice,
score event, outbox rows) so the reports have history to count, then in a fresh process per round
builds `build_weekly` + `build_monthly` as the bot does at 09:00, and in another `build_annual`, and
reports for each the resident-set growth (VmHWM, the peak, minus VmRSS before) and the CPU seconds spent in this
process (the database server's own work is not in it). Anchor: the same child process building the
weekly summary of a week before any task (nothing to count), CPU seconds. Last line:
`bulletin_rss_mb tasks=… min=… median=… max=… cpu_seconds=… annual_rss_mb=… annual_cpu_seconds=…
pg_rss_mb=… pg_cpu_seconds=… pg_annual_rss_mb=… pg_annual_cpu_seconds=…` (SQLite unless prefixed pg_).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import fmt, load, machine_line, postgres, spread
from reconcile import NOW, fill, make_due
from startup_memory import peak_mib, rss_mib

from storage.db import make_engine


def child(url: str, which: str) -> dict[str, float]:
    """In a fresh process: the weekly summary + monthly bulletin ("periodic"), or the year-end report."""
    from sqlmodel import Session

    from reminders.calendar import WorkCalendar
    from reminders.reports import build_annual, build_monthly, build_weekly
    from reminders.rules import Rules

    engine = make_engine(url)
    rules, calendar = Rules(), WorkCalendar()
    with Session(engine) as session:  # warm: the connection, compiled statements
        build_weekly(session, NOW - timedelta(days=400), rules, calendar)
    cpu = time.process_time()
    with Session(engine) as session:
        build_weekly(session, NOW - timedelta(days=400), rules, calendar)
    anchor = time.process_time() - cpu
    before = rss_mib()
    cpu = time.process_time()
    with Session(engine) as session:
        if which == "periodic":
            build_weekly(session, NOW + timedelta(days=7), rules, calendar)
            build_monthly(session, NOW + timedelta(days=40), rules)
        else:
            build_annual(session, NOW.year, NOW + timedelta(days=40), rules)
    return {"rss_growth": peak_mib() - before, "cpu": time.process_time() - cpu, "anchor": anchor}


def measure(url: str, args: argparse.Namespace) -> list[dict[str, float]]:
    from reminders.calendar import WorkCalendar
    from reminders.engine import Escalation
    from reminders.rules import Rules

    engine = make_engine(url)
    rng = random.Random(42)
    fill(engine, args.tasks, NOW, rng)
    make_due(engine, args.due, NOW, rng, set())
    Escalation(WorkCalendar(), Rules()).reconcile(engine, NOW)
    engine.dispose()
    runs = []
    for _ in range(args.rounds):
        run = {}
        for which in ("periodic", "annual"):
            out = subprocess.run([sys.executable, __file__, "--child", url, "--which", which],
                                 capture_output=True, text=True, check=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            run.update(got if which == "periodic" else {"annual_rss_growth": got["rss_growth"],
                                                        "annual_cpu": got["cpu"]})
        runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--which", default="periodic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.which)))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="duban-bench-") as folder:
        results["sqlite"] = measure(f"sqlite:///{Path(folder) / 'bench.db'}", args)
    if not args.sqlite_only:
        with postgres() as url:
            if url is not None:
                results["postgresql"] = measure(url, args)
    fields: dict[str, str] = {}
    for backend, runs in results.items():
        pick = {key: [r[key] for r in runs] for key in runs[0]}
        print(f"[{backend}] {args.tasks:,} tasks ({args.due:,} with a blue), load {load()}:")
        print(f"  weekly + monthly: RSS growth {fmt(pick['rss_growth'], 1)} MiB, CPU {fmt(pick['cpu'], 2)} s "
              f"(anchor, an empty weekly: {fmt(pick['anchor'], 3)} s)")
        print(f"  annual:           RSS growth {fmt(pick['annual_rss_growth'], 1)} MiB, "
              f"CPU {fmt(pick['annual_cpu'], 2)} s")
        prefix = "" if backend == "sqlite" else "pg_"
        if backend == "sqlite":
            fields.update(zip(("min", "median", "max"), (f"{v:.1f}" for v in spread(pick["rss_growth"])), strict=True))
        else:
            fields["pg_rss_mb"] = f"{spread(pick['rss_growth'])[1]:.1f}"
        fields[f"{prefix}cpu_seconds"] = f"{spread(pick['cpu'])[1]:.2f}"
        fields[f"{prefix}annual_rss_mb"] = f"{spread(pick['annual_rss_growth'])[1]:.1f}"
        fields[f"{prefix}annual_cpu_seconds"] = f"{spread(pick['annual_cpu'])[1]:.2f}"
    print(machine_line(f"bulletin_rss_mb tasks={args.tasks}", **fields))


if __name__ == "__main__":
    main()
