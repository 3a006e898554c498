"""Memory and CPU of building the weekly summary and the monthly bulletin on a 100,000-task database.

    python bench/bulletins.py [--tasks 100000] [--due 3000] [--rounds 3]

Builds a SQLite database as bench/reconcile.py does, with `--due` of the tasks taken through a
blue (notice, score event, outbox rows) so the bulletins have history to count, then in a fresh
process per round builds `build_weekly` and `build_monthly` as the bot does at 09:00 and reports
the resident-set growth (VmHWM, the peak, minus VmRSS before) and the CPU seconds spent. Last line:
`bulletin_rss_mb min=… median=… max=… cpu_seconds=…`.
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

from common import fmt, machine_line, spread
from reconcile import NOW, fill, make_due
from startup_memory import peak_mib, rss_mib

from storage.db import make_engine


def child(url: str) -> dict[str, float]:
    from sqlmodel import Session

    from reminders.calendar import WorkCalendar
    from reminders.reports import build_monthly, build_weekly
    from reminders.rules import Rules

    engine = make_engine(url)
    rules, calendar = Rules(), WorkCalendar()
    with Session(engine) as session:  # warm: the connection, compiled statements
        build_weekly(session, NOW - timedelta(days=60), rules, calendar)
    before = rss_mib()
    cpu = time.process_time()
    with Session(engine) as session:
        build_weekly(session, NOW + timedelta(days=7), rules, calendar)
        build_monthly(session, NOW + timedelta(days=40), rules)
    return {"rss_growth": peak_mib() - before, "cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    from reminders.calendar import WorkCalendar
    from reminders.engine import Escalation
    from reminders.rules import Rules

    with tempfile.TemporaryDirectory(prefix="duban-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = make_engine(url)
        rng = random.Random(42)
        fill(engine, args.tasks, NOW, rng)
        make_due(engine, args.due, NOW, rng, set())
        Escalation(WorkCalendar(), Rules()).reconcile(engine, NOW)
        engine.dispose()
        runs = []
        for _ in range(args.rounds):
            out = subprocess.run([sys.executable, __file__, "--child", url], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    growth, cpu = [r["rss_growth"] for r in runs], [r["cpu"] for r in runs]
    print(f"weekly summary + monthly bulletin, {args.tasks:,} tasks ({args.due:,} with a blue): "
          f"RSS growth {fmt(growth, 1)} MiB, CPU {fmt(cpu, 2)} s")
    print(machine_line(f"bulletin_rss_mb tasks={args.tasks}", **dict(zip(("min", "median", "max"),
                       (f"{v:.1f}" for v in spread(growth)), strict=True)), cpu_seconds=f"{spread(cpu)[1]:.2f}"))


if __name__ == "__main__":
    main()
