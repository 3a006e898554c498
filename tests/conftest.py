"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL gets a database of its own per test session (created and dropped here), so parallel
runs on one server never see each other's tables. Where no server is reachable the PostgreSQL
cases skip with the reason — except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlmodel import SQLModel

from bot.simulation import Simulation
from storage.db import make_engine
from storage.tz import shanghai
from tests.emulator import Emulator

if TYPE_CHECKING:
    from tests.helpers import World
    from tests.reminders.test_reports import SimulatedYear

# No test may reach a real DingTalk host. The SDK reads this variable once, when dingtalk_stream is
# first imported (DingTalkStreamClient.OPEN_CONNECTION_API is a class attribute computed then), and
# nothing above imports it: so the SDK's own endpoint is pinned here to a closed loopback port, and
# any SDK code path we do not use fails locally. We do not patch that class attribute: our
# StreamClient takes its URL from DingTalkSettings, whose default is this same variable, which the
# `dingtalk` fixture points at the emulator.
OFFLINE_DINGTALK = "http://127.0.0.1:9"
os.environ["DINGTALK_OPENAPI_ENDPOINT"] = OFFLINE_DINGTALK
# The suite checks the markdown-with-links mode unless a test turns interactive cards on (tests/e2e/
# test_cards_e2e.py, the cards crash test): production's default is on (bot.settings, DingTalkSettings).
os.environ.setdefault("DUBAN_DINGTALK_CARDS", "off")
LOOPBACK = {"127.0.0.1", "localhost", "::1", None}

PG_ADMIN = os.environ.get("DUBAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"duban_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_ADMIN} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN} ({exc}); PostgreSQL cases skipped")
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty database URL: a SQLite file, or the session's PostgreSQL database wiped clean."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/duban.db"
    url = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def year(tmp_path_factory: pytest.TempPathFactory) -> SimulatedYear:
    """tests/reminders/test_reports.py's simulated county year, played once a session (the costliest
    fixture): its tests read it, tests/bot/test_dashboard_browser.py copies it. Nobody writes to it."""
    from tests.reminders.test_reports import SimulatedYear, YearSim

    root = tmp_path_factory.mktemp("year")
    sim = YearSim(root / "year.db", root / "reports")
    sim.run()
    return SimulatedYear(sim.engine, sim.settings, sim.calendar, root / "year.db")


@pytest.fixture
def sim(tmp_path) -> Iterator[Simulation]:
    """The bot with the example roster on SQLite, at Monday 2026-11-23 09:30."""
    simulation = Simulation(f"sqlite:///{tmp_path}/sim.db", shanghai(2026, 11, 23, 9, 30))
    yield simulation
    simulation.engine.dispose()


@pytest.fixture
def sim_any(db_url: str) -> Iterator[Simulation]:
    """The same, on SQLite and on PostgreSQL."""
    simulation = Simulation(db_url, shanghai(2026, 11, 23, 9, 30))
    yield simulation
    simulation.bot.close()  # PostgreSQL: the command workers, if a test started them
    simulation.engine.dispose()


@pytest.fixture
async def dingtalk(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    """A local DingTalk (tests/emulator) on 127.0.0.1; outside hosts are refused while it runs."""
    import dingtalk_stream.utils

    assert dingtalk_stream.utils.DINGTALK_OPENAPI_ENDPOINT == OFFLINE_DINGTALK, "SDK imported before conftest"
    resolve = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in LOOPBACK:
            raise OSError(f"test tried to reach {host}: only the emulator on 127.0.0.1 is allowed")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    emulator = Emulator()
    await emulator.start()
    monkeypatch.setenv("DINGTALK_OPENAPI_ENDPOINT", emulator.url)
    yield emulator
    await emulator.stop()


@pytest.fixture
async def world(dingtalk: Emulator, tmp_path: Path) -> AsyncIterator[World]:
    """The bot wired as `duban run` wires it, on the emulator (tests.helpers.World)."""
    # imported here, not on top: tests.helpers loads the SDK, which must see the endpoint set above first
    from tests.helpers import running

    async with running(dingtalk, tmp_path) as world:
        yield world


# The longest tests, in the order they should start. Under xdist (--dist loadgroup) work goes out in
# collection order, each node holding two units at most, so these start at once on different
# workers instead of one of them running alone at the end (it did: 5 of 12 minutes in CI).
SLOW_FIRST = (
    "tests/reminders/test_engine.py::test_the_batch_path_writes_what_the_one_task_path_writes[cards-on]",
    "tests/e2e/test_crash.py",  # the bot_processes group (test_two_instances.py joins it)
    "tests/reminders/test_reports.py",  # the simulated_year group
    "tests/reminders/test_engine.py::test_the_batch_path_writes_what_the_one_task_path_writes[cards-off]",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: everything else keeps its order
