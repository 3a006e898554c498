"""What every bench shares: repetitions with min/median/max, the machine-readable last line, and a
PostgreSQL database of its own (created on the server tests/conftest.py uses, dropped afterwards).

The machine the figures come from is small and shared (2 cores, other work running): a ratio
against an anchor measured in the same run absorbs some of that noise; absolute times do not.
"""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg

PG_ADMIN = os.environ.get("DUBAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ROUNDS = 3


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def fmt(values: Sequence[float], digits: int = 3) -> str:
    low, mid, high = spread(values)
    return f"min={low:.{digits}f} median={mid:.{digits}f} max={high:.{digits}f}"


def machine_line(name: str, **fields: object) -> str:
    """The last line a bench prints, e.g. `reconcile_due_1000_seconds sqlite=0.31 postgresql=0.45`."""
    return " ".join([name, *(f"{k}={v}" for k, v in fields.items())])


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, " | ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextmanager
def postgres() -> Iterator[str | None]:
    """A fresh PostgreSQL database's URL, or None (said why) when the server is not reachable."""
    name = f"duban_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
        yield None
        return
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load() -> str:
    """The 1-minute load average, printed beside the figures: they mean less on a busy machine."""
    return f"{os.getloadavg()[0]:.2f}"


class CpuSplit:
    """CPU seconds used between `start()` and `stop()` by a process, its descendants (the bot's
    command workers) and the PostgreSQL backends serving one database, read from /proc (Linux):
    where a benchmark's time goes, without a profiler's own cost. Elsewhere it reports nothing."""

    def __init__(self, root: int, database: str | None = None) -> None:
        self.root, self.database = root, database
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        self.used = {part: after[part] - self._before.get(part, 0.0) for part in after}
        return self.used

    def _read(self) -> dict[str, float]:
        parts = {"client": 0.0, "workers": 0.0, "postgresql": 0.0, "generator": 0.0}
        stats = _proc_stats()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        tree, seen = [self.root], []
        while tree:
            pid = tree.pop()
            seen.append(pid)
            tree += children.get(pid, [])
        for pid in seen:
            if pid in stats:
                parts["client" if pid == self.root else "workers"] += stats[pid][1]
        for pid, (_, cpu, command) in stats.items():
            if self.database and command.startswith("postgres:") and f" {self.database} " in f" {command} ":
                parts["postgresql"] += cpu
            if pid == os.getpid():
                parts["generator"] += cpu
        return parts


def _proc_stats() -> dict[int, tuple[int, float, str]]:
    """pid → (parent pid, CPU seconds, command line) of every process this user can read."""
    found: dict[int, tuple[int, float, str]] = {}
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                fields = stat.read().rsplit(")", 1)[1].split()
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        found[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks, command)
    return found
