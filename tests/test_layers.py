"""The layers contract (ARCHITECTURE.md): message_templates ← storage ← reminders ← handlers ← bot.

A module may import its own layer or a lower one, never a higher one, and no group of modules may
import each other in a circle. Every import counts: at the top, inside a function (a lazy import
hides a cycle, it does not remove it) and under `if TYPE_CHECKING:`. bot/dingtalk, at the top
beside the rest of bot/, reaches no SQL: only the few small modules it is allowed below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("message_templates", "storage", "reminders", "handlers", "bot")  # lowest first
RANK = {name: rank for rank, name in enumerate(LAYERS)}
# what bot/dingtalk may reach, directly or through what it imports: no database, no handlers
DINGTALK_MAY_REACH = {"bot", "bot.transport", "bot.clock", "handlers", "handlers.incoming",
                      "message_templates", "message_templates.reply", "reminders", "reminders.profiles", "reminders.rules",
                      "storage", "storage.tz"}
SQL = ("sqlalchemy", "sqlmodel", "psycopg", "alembic")


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (root / layer).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file: project modules and third-party tops."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            for target in submodules or [base]:
                yield node.lineno, target


def graph(root: Path) -> dict[str, list[tuple[int, str]]]:
    found = modules(root)
    return {name: list(imports(name, path, set(found))) for name, path in found.items()}


def upward_imports(root: Path) -> list[str]:
    bad = []
    for name, targets in graph(root).items():
        for line, target in targets:
            top = target.split(".")[0]
            if top in RANK and RANK[top] > RANK[name.split(".")[0]]:
                bad.append(f"{name.replace('.', '/')}.py:{line} imports {target}")
    return bad


def cycles(root: Path) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), sorted."""
    edges = {name: {t for _, t in targets if t in RANK or t.split(".")[0] in RANK}
             for name, targets in graph(root).items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            group.append(v)
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(groups)


def dingtalk_reach(root: Path) -> tuple[set[str], set[str]]:
    """Project modules bot/dingtalk reaches (outside itself), and third-party SQL it reaches."""
    g = graph(root)
    seen, todo, sql = set(), [m for m in g if m.startswith("bot.dingtalk")], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for _, target in g.get(m, ()):
            if target.split(".")[0] in SQL:
                sql.add(f"{m} imports {target}")
            parent = target
            while parent:  # importing a.b.c runs a/__init__ and a/b/__init__ too
                if parent in g:
                    todo.append(parent)
                parent = parent.rpartition(".")[0]
    return {m for m in seen if not m.startswith("bot.dingtalk")}, sql


def test_no_layer_imports_a_higher_one() -> None:
    assert upward_imports(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def test_bot_dingtalk_reaches_no_sql() -> None:
    reached, sql = dingtalk_reach(ROOT)
    assert reached - DINGTALK_MAY_REACH == set()
    assert sql == set()


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_walk_sees_bot_dingtalk_reaching_sql_through_another_module(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"bot/dingtalk/__init__.py": "", "bot/dingtalk/openapi.py": "from bot.outbox import SendError\n",
                            "bot/outbox.py": "from sqlmodel import Session\nfrom storage.db import transaction\n",
                            "storage/db.py": "import sqlalchemy\n"})
    reached, sql = dingtalk_reach(root)
    assert reached - DINGTALK_MAY_REACH == {"bot.outbox", "storage.db"}
    assert sql == {"bot.outbox imports sqlmodel", "storage.db imports sqlalchemy"}


@pytest.mark.parametrize("text", ["from bot.clock import Clock\n", "import bot.clock\n",
                                  "def f():\n    from handlers import registry\n",
                                  "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from reminders import x\n"])
def test_the_walk_sees_every_kind_of_upward_import(tmp_path: Path, text: str) -> None:
    root = _tree(tmp_path, {"storage/types.py": text})
    assert upward_imports(root) and upward_imports(root)[0].startswith("storage/types.py:")


def test_the_walk_sees_a_cycle_hidden_by_a_lazy_import(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"reminders/engine.py": "from reminders import notices\n",
                            "reminders/notices.py": "def f():\n    from reminders.engine import g\n"})
    assert cycles(root) == [["reminders.engine", "reminders.notices"]]
