"""`duban run` starts in under a second (bench/startup_memory.py): what the stream and the first
message do not need is loaded where it is used, not with `bot.run`. This keeps it that way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# loaded later: Alembic when a database is not at head, APScheduler when the waker starts and
# aiohttp.web and the dashboard when the HTTP server does (both once the stream has had its first
# attempt), prometheus_client at the first /metrics scrape, jinja2 at the first message rendered,
# matplotlib and openpyxl with a chart or a ledger export; PostgreSQL's dialect by its engine only
LATER = ("alembic", "apscheduler", "aiohttp.web", "bot.dashboard.app", "prometheus_client", "jinja2", "matplotlib",
         "openpyxl", "sqlalchemy.dialects.postgresql")


def test_duban_run_loads_no_module_that_can_wait():
    check = f"import sys, bot.cli, bot.run; print(sorted(m for m in {LATER!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.stdout.strip() == "[]"
