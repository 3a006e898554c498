"""The `duban` command line as a new operator meets it: run outside the repository, with settings
missing, wrong or in `.env`, and against a DingTalk that refuses or does not answer. Each case
ends in one Chinese sentence naming what to set — never a traceback — and creates nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bot.cli import app
from bot.clock import FakeClock
from bot.dingtalk.settings import CREDENTIALS_MISSING, CREDENTIALS_REJECTED, DingTalkSettings
from bot.run import RunSettings, Service
from bot.settings import Settings
from bot.simulation import ROSTER, Simulation
from reminders.rules import Rules
from storage.tz import SHANGHAI, shanghai
from tests.emulator import Emulator, Fault
from tests.helpers import START

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder outside the repository, no DUBAN_* in the environment; logging restored afterwards
    (commands that talk to DingTalk configure it)."""
    for name in [n for n in os.environ if n.startswith("DUBAN_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield tmp_path
    root.setLevel(level)
    root.handlers[:] = handlers


def duban(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def one_sentence(result: Result) -> str:
    """The command failed with exactly one line on stderr and no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # typer.Exit: not an exception escaping
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def a_database_with_one_task(path: Path) -> None:
    """Assigned ten days before today, due two weeks after: the console reads the real clock, so the
    task is dated from it (a fixed date made a test of today's date). Ten days hold at least one
    workday, whatever the holidays: its 签收提醒 is due when the console starts."""
    now = datetime.now(SHANGHAI)
    due = now + timedelta(days=14)
    sim = Simulation(f"sqlite:///{path}", now - timedelta(days=10))
    sim.say("u_xianzhang", f"交办 县住建局 燃气隐患排查 截止{due.month}月{due.day}日", group="cid_leaders")
    sim.engine.dispose()


@pytest.mark.parametrize("command", [["console", "--as", "u_xianzhang"], ["run"], ["roster", "sync"]])
def test_outside_the_repository_the_missing_roster_names_its_setting(elsewhere: Path, command: list[str]) -> None:
    sentence = one_sentence(duban(*command))
    assert sentence.startswith(f"找不到花名册文件 {elsewhere / 'roster.yaml'}：请把 DUBAN_ROSTER_FILE 设为")
    assert list(elsewhere.iterdir()) == []  # no database left behind


@pytest.mark.parametrize("command", [["export", "ledger", "--out", "台账.xlsx"], ["report", "weekly"],
                                     ["console", "--as", "u_xianzhang"]])
def test_no_database_here_is_said_and_none_is_created(elsewhere: Path, command: list[str]) -> None:
    env = {"DUBAN_ROSTER_FILE": str(ROSTER)}
    sentence = one_sentence(duban(*command, env=env))
    assert sentence.startswith(f"这里没有督办数据：数据库文件 {elsewhere / 'duban.db'} 不存在；请把 DUBAN_DATABASE_URL 设为")
    assert list(elsewhere.iterdir()) == []  # neither an empty duban.db nor an empty 台账


def test_export_and_console_use_the_configured_database(elsewhere: Path) -> None:
    data = elsewhere / "data"
    data.mkdir()
    a_database_with_one_task(data / "duban.db")
    env = {"DUBAN_DATABASE_URL": f"sqlite:///{data / 'duban.db'}", "DUBAN_ROSTER_FILE": str(ROSTER)}

    exported = duban("export", "ledger", "--out", "台账.xlsx", env=env)
    assert exported.exit_code == 0 and exported.stdout.startswith("已导出")
    assert (elsewhere / "台账.xlsx").stat().st_size > 0

    console = duban("console", "--as", "u_zhujian", env=env, stdin="我的\n")
    assert console.exit_code == 0 and "燃气隐患排查" in console.stdout  # the task from that database
    assert sorted(p.name for p in elsewhere.iterdir()) == ["data", "台账.xlsx"]


def test_console_new_makes_a_database_to_try_things_out(elsewhere: Path) -> None:
    env = {"DUBAN_DATABASE_URL": "sqlite:///try.db", "DUBAN_ROSTER_FILE": str(ROSTER)}
    result = duban("console", "--new", "--as", "u_xianzhang", env=env, stdin="交办 县住建局 燃气隐患排查 截止12月10日\n")
    assert result.exit_code == 0 and "DB-2026-0001" in result.stdout
    assert (elsewhere / "try.db").is_file()


def test_a_setting_with_a_wrong_value_is_named(elsewhere: Path) -> None:
    sentence = one_sentence(duban("report", "weekly", env={"DUBAN_RULE_YELLOW_AFTER_DAYS": "五"}))
    assert sentence.startswith("设置 DUBAN_RULE_YELLOW_AFTER_DAYS 的值 '五' 不对")
    sentence = one_sentence(duban("run", env={"DUBAN_ROSTER_FILE": str(ROSTER), "DUBAN_HTTP_PORT": "八七",
                                              "DUBAN_DINGTALK_CLIENT_ID": "a", "DUBAN_DINGTALK_CLIENT_SECRET": "b"}))
    assert sentence.startswith("设置 DUBAN_HTTP_PORT 的值 '八七' 不对")


def test_run_without_credentials_says_what_to_set(elsewhere: Path) -> None:
    assert one_sentence(duban("run", env={"DUBAN_ROSTER_FILE": str(ROSTER)})) == CREDENTIALS_MISSING
    assert gc.isenabled()  # `run` pauses the collector for the start: a start that fails turns it back on


def test_every_settings_class_reads_the_same_env_file(elsewhere: Path) -> None:
    (elsewhere / ".env").write_text(
        "DUBAN_RULE_YELLOW_AFTER_DAYS=3\nDUBAN_CODE_PREFIX=XY\nDUBAN_DINGTALK_CLIENT_ID=from-env-file\n"
        "DUBAN_HTTP_PORT=9876\n", encoding="utf-8")
    settings = Settings()
    assert (settings.rules.yellow_after_days, settings.code_prefix) == (3, "XY")
    assert DingTalkSettings().client_id == "from-env-file" and RunSettings().http_port == 9876

    # and the bot acts on it: the yellow is drafted on day 3 after the deadline, not day 5
    sim = Simulation(f"sqlite:///{elsewhere}/sim.db", START, settings=settings.model_copy(
        update={"database_url": f"sqlite:///{elsewhere}/sim.db"}))
    sim.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止11月24日", group="cid_leaders")
    sim.wait_for_draft("XY-2026-0001", shanghai(2026, 11, 27, 18, 0))
    sim.engine.dispose()


async def test_the_bulletin_look_runs_at_work_start(dingtalk: Emulator, tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/run.db", roster_file=ROSTER,
                        rules=Rules(work_start=time(8, 30)))
    dingtalk_settings = DingTalkSettings(client_id=dingtalk.client_id, client_secret=dingtalk.client_secret,
                                         oapi_endpoint=dingtalk.url)
    service = Service(settings, dingtalk_settings, RunSettings(http_port=0), FakeClock(START))
    await service.start()
    try:
        bulletins = service.waker.scheduler.get_job("bulletins")
        assert bulletins.next_run_time.astimezone(SHANGHAI).time() == time(8, 30)
    finally:
        await service.stop()


# -- commands that talk to DingTalk ------------------------------------------------------------

async def test_run_on_a_port_already_taken_says_which_and_stops_cleanly(dingtalk: Emulator, elsewhere: Path) -> None:
    """In a process of its own: `duban run` handles SIGTERM, which only a main thread can."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=elsewhere,
            env=os.environ | {
                "PYTHONPATH": str(REPO), "DUBAN_ROSTER_FILE": str(ROSTER), "DUBAN_HTTP_PORT": str(port),
                "DUBAN_DATABASE_URL": f"sqlite:///{elsewhere}/run.db", "DUBAN_DINGTALK_OAPI_ENDPOINT": dingtalk.url,
                "DUBAN_DINGTALK_CLIENT_ID": dingtalk.client_id, "DUBAN_DINGTALK_CLIENT_SECRET": dingtalk.client_secret})
        stdout, stderr = await asyncio.wait_for(run.communicate(), 60)
    output = stderr.decode()
    assert run.returncode == 1 and stdout == b"" and "Traceback" not in output, output
    *logged, sentence = output.strip().splitlines()  # before it, `duban run`'s own log lines
    assert sentence == (f"端口 127.0.0.1:{port} 已被别的程序占用（督查看板和 /healthz 用它），"
                        f"请在 .env 里换一个，例如 DUBAN_HTTP_PORT={port + 1}")
    assert any("duban stopped" in line for line in logged), output  # what had started was stopped first
    assert dingtalk.live_connections == 0


async def sync_in(folder: Path, emulator: Emulator, **env: str) -> Result:
    roster = folder / "roster.yaml"
    shutil.copy(ROSTER, roster)
    return await asyncio.to_thread(duban, "roster", "sync", env={
        "DUBAN_DINGTALK_CLIENT_ID": emulator.client_id, "DUBAN_DINGTALK_CLIENT_SECRET": emulator.client_secret,
        "DUBAN_DINGTALK_OAPI_ENDPOINT": emulator.url, "DUBAN_DINGTALK_TIMEOUT_SECONDS": "2"} | env)


async def test_roster_sync_with_good_credentials_shows_the_diff(dingtalk: Emulator, elsewhere: Path) -> None:
    dingtalk.departments = {}  # every unit of the example roster is gone from DingTalk
    result = await sync_in(elsewhere, dingtalk)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("与钉钉通讯录相比：新增 0 项，变更 0 项，移除") and "- 单位 县住建局" in result.stdout
    assert (elsewhere / "roster.yaml").read_bytes() == Path(ROSTER).read_bytes()  # not written without --yes


async def test_roster_sync_with_refused_credentials_says_so(dingtalk: Emulator, elsewhere: Path) -> None:
    result = await sync_in(elsewhere, dingtalk, DUBAN_DINGTALK_CLIENT_SECRET="wrong")
    assert one_sentence(result) == CREDENTIALS_REJECTED


async def test_roster_sync_without_credentials_says_what_to_set(dingtalk: Emulator, elsewhere: Path) -> None:
    result = await sync_in(elsewhere, dingtalk, DUBAN_DINGTALK_CLIENT_ID="", DUBAN_DINGTALK_CLIENT_SECRET="")
    assert one_sentence(result) == CREDENTIALS_MISSING
    assert dingtalk.requests == []


async def test_roster_sync_when_dingtalk_does_not_answer(dingtalk: Emulator, elsewhere: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DINGTALK_OPENAPI_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    sentence = one_sentence(await sync_in(elsewhere, dingtalk))
    assert sentence.startswith("连不上钉钉（/v1.0/oauth2/accessToken: not sent (ClientConnectorError") and sentence.endswith("请检查网络后重试")


async def test_roster_sync_when_dingtalk_fails_midway(dingtalk: Emulator, elsewhere: Path) -> None:
    dingtalk.fail_next("/topapi/v2/department/listsub", Fault.SERVER_ERROR)
    sentence = one_sentence(await sync_in(elsewhere, dingtalk))
    assert sentence == "钉钉暂时不可用（/topapi/v2/department/listsub: HTTP 503 ServiceUnavailable emulated outage），请稍后重试"


def test_the_wheel_carries_the_demo_roster_and_the_demo_runs_from_it(tmp_path: Path) -> None:
    """Built from a clean copy of the sources (a build/ left in the checkout would mask a missing
    package-data entry), unpacked — not installed over the editable install — and run elsewhere."""
    source = tmp_path / "source"
    source.mkdir()
    for part in ("pyproject.toml", "bot", "handlers", "reminders", "storage", "message_templates", "examples"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, source / part, **({"symlinks": True} if copy is shutil.copytree else {}))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("duban-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("bot/data/roster.yaml") == (REPO / "examples" / "roster.yaml").read_bytes()
        archive.extractall(tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUBAN_")} | {"PYTHONPATH": str(tmp_path / "site")}
    demo = subprocess.run([sys.executable, "-c", "import bot, sys; assert bot.__file__.startswith(sys.argv[1]); "
                           "from bot.cli import app; app(['demo', '--no-colour'])", str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=120, cwd=elsewhere, env=env)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "✅ 演示结束" in demo.stdout


def test_console_shows_cards_with_numbered_buttons_and_a_number_taps_one(elsewhere: Path) -> None:
    data = elsewhere / "data"
    data.mkdir()
    a_database_with_one_task(data / "duban.db")
    env = {"DUBAN_DATABASE_URL": f"sqlite:///{data / 'duban.db'}", "DUBAN_ROSTER_FILE": str(ROSTER),
           "DUBAN_DINGTALK_CARDS": "on"}
    console = duban("console", "--as", "u_zhujian", env=env, stdin="我的\n1\n2\n已完成城区排查 60%\n")
    out = console.stdout
    assert console.exit_code == 0, out
    assert "［1 签收］ ［2 汇报进展］ ［3 申请延期］ ［4 办结］" in out  # the task's card, as text
    assert "已签收 DB-2026-0001" in out  # "1": 签收, tapped as u_zhujian
    # updated in place once tapped: no 签收 any more
    assert re.search(r"🔄 卡片更新 → 王建华[^\n]*\n(?: {4}[^［\n]*\n)+ {4}［\d+ 汇报进展］ ［\d+ 申请延期］ ［\d+ 办结］",
                     out[out.index("已签收 DB-2026-0001"):])
    assert "请回复进展情况" in out  # "2": 汇报进展 asks for the words
    assert "进展已记录" in out and "**最新进展**（王建华" in out  # the next line was the progress
