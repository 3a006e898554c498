"""The `duban` command line.

Whatever goes wrong that an operator can fix — a missing roster or database, a bad setting, DingTalk
refusing the credentials or out of reach — ends in one sentence naming what to set, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from bot.dingtalk.settings import DingTalkSettings
    from bot.settings import Settings

app = typer.Typer(help="督办助手：钉钉督办机器人", no_args_is_help=True, add_completion=False)
roster_app = typer.Typer(help="花名册：检查、导入", no_args_is_help=True)
export_app = typer.Typer(help="导出：台账 Excel", no_args_is_help=True)
app.add_typer(roster_app, name="roster")
app.add_typer(export_app, name="export")


@app.command()
def demo(colour: bool = typer.Option(sys.stdout.isatty(), "--colour/--no-colour", help="彩色输出"),
         serve: bool = typer.Option(False, "--serve", help="演示结束后打开督查看板（本机 127.0.0.1）"),
         port: int = typer.Option(8787, "--port", help="督查看板的端口")) -> None:
    """A whole escalation in simulated time, on a temporary database (no DingTalk account)."""
    if serve:
        from bot.dashboard.serve import serve_demo

        serve_demo("127.0.0.1", port)
        return
    from bot.demo import play

    play(colour=colour)


@app.command()
def console(
    as_user: str = typer.Option(..., "--as", help="以花名册中哪位的 userId 身份输入，例如 u_xianzhang"),
    group: str = typer.Option("", help="模拟在哪个群里发言（openConversationId），默认单聊"),
    new: bool = typer.Option(False, "--new", help="DUBAN_DATABASE_URL 指向的 SQLite 文件不存在时新建一个（试用）"),
) -> None:
    """Type commands as anyone in the roster, against the bot's own database."""
    from bot.app import Bot
    from bot.clock import SystemClock
    from bot.console import ConsoleTransport, repl
    from reminders.calendar import WorkCalendar
    from storage.db import create_schema, make_engine

    settings = _settings()
    _need_roster(settings)
    if not new:
        _need_data(settings)
    with _plain_errors():
        engine = make_engine(settings.database_url)
        create_schema(engine)
        clock = SystemClock()
        bot = Bot(engine, settings, clock, WorkCalendar.from_file(settings.calendar_overrides))
        bot.load_roster(settings.roster_file)
    repl(bot, as_user, group, ConsoleTransport(engine, clock, cards=settings.dingtalk_cards))


@app.command()
def run() -> None:
    """Run the bot on DingTalk (settings from the environment or .env; see docs/deploy.md)."""
    import asyncio
    import gc

    # Nearly all the start allocates (modules, classes, the models) lives as long as the process:
    # the cyclic collector walked it again and again as it grew, ~0.1 s of the start. It is off until
    # the bot is up, when bot.run.run freezes what is there (never walked again) and turns it back on.
    gc.disable()
    try:
        from bot.run import PortInUse
        from bot.run import run as run_service

        settings = _settings()
        _need_roster(settings)
        dingtalk = _dingtalk()
        with _plain_errors(), _valid_settings():  # RunSettings is read inside
            try:
                asyncio.run(run_service(settings, dingtalk))
            except PortInUse as exc:
                _fail(f"端口 {exc} 已被别的程序占用（督查看板和 /healthz 用它），"
                      f"请在 .env 里换一个，例如 DUBAN_HTTP_PORT={exc.port + 1}")
    finally:
        gc.enable()  # a start that failed (or a test calling this in its own process)


@roster_app.command("sync")
def roster_sync(
    yes: bool = typer.Option(False, "--yes", help="确认写入（不加则只显示差异）"),
    root: int = typer.Option(1, help="从哪个钉钉部门开始同步（根部门为 1）"),
) -> None:
    """Build or update the roster from DingTalk departments and their managers; shows the diff first."""
    import asyncio

    from bot.dingtalk.settings import CREDENTIALS_REJECTED
    from bot.roster_sync import sync_from_settings
    from bot.run import configure_logging
    from bot.transport import SendError

    settings = _settings()
    _need_roster(settings)
    dingtalk = _dingtalk()
    configure_logging("WARNING")  # the operator reads the diff; warnings only, secrets masked
    try:
        asyncio.run(_check_credentials(dingtalk))
    except SendError as exc:
        _fail(CREDENTIALS_REJECTED if exc.credentials or not exc.transient else f"连不上钉钉（{exc}），请检查网络后重试")
    with _plain_errors():
        try:
            diff = asyncio.run(sync_from_settings(settings, yes=yes, root_dept_id=root))
        except SendError as exc:
            _fail(f"钉钉暂时不可用（{exc}），请稍后重试" if exc.transient else
                  f"钉钉拒绝了通讯录请求（{exc}），请确认应用已开通通讯录读权限（见 docs/deploy.md）")
    typer.echo(diff.render())
    if diff and not yes:
        typer.echo("以上为差异，尚未写入；确认无误请加 --yes 再运行一次。")


@app.command()
def report(
    kind: str = typer.Argument(..., help="weekly | monthly | quarterly | half-year | annual"),
    at: str = typer.Option(None, "--at", help="按哪一天出报告，例如 2026-12-07（默认今天）"),
) -> None:
    """Print the weekly summary, monthly bulletin, quarterly or half-year review, or year-end report as
    of any date (sends nothing)."""
    from reminders.reports import print_report
    from reminders.reviews import KINDS, print_review

    settings, engine, calendar = _local()
    moment = _moment(at)
    try:
        if kind in KINDS:
            typer.echo(print_review(kind, moment, engine, settings))
        else:
            typer.echo(print_report(kind, moment, engine, settings, calendar))
    except ValueError as exc:
        typer.echo(f"报告种类只能是 weekly、monthly、quarterly、half-year 或 annual：{exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("rules")
def rules() -> None:
    """Print the rule profile in force (DUBAN_RULE_PROFILE): every number, and the article it comes from."""
    from reminders.profiles import DOCUMENTS, rules_table, show

    settings = _settings()
    profile = settings.rules.profile
    typer.echo(f"规则方案：{profile}（{DOCUMENTS[profile].title}）；未写明的沿用湘阴制度，运营设置优先。")
    typer.echo("| 项目 | 取值 | 出处 |")
    typer.echo("| --- | --- | --- |")
    for row in rules_table(settings.rules):
        typer.echo(f"| {row.label} | {show(row.value)} | {row.source} |")


@export_app.command("ledger")
def export_ledger(out: Path = typer.Option(..., "--out", help="写到哪个 .xlsx 文件")) -> None:
    """Write the 台账 as an Excel file: one row per task, colours as cell fills, and per-unit scores."""
    from reminders.ledger_export import export_ledger as write

    _, engine, _ = _local()
    typer.echo(f"已导出：{write(engine, _moment(None), out)}")


def _local():
    """The configured database, which must already hold the bot's data, and its settings."""
    from reminders.calendar import WorkCalendar
    from storage.db import create_schema, make_engine

    settings = _settings()
    _need_data(settings)
    with _plain_errors():
        engine = make_engine(settings.database_url)
        create_schema(engine)
    return settings, engine, WorkCalendar.from_file(settings.calendar_overrides)


# -- one sentence instead of a traceback -------------------------------------------------------

SETTING_PREFIXES = {"Settings": "DUBAN_", "RunSettings": "DUBAN_", "Rules": "DUBAN_RULE_",
                    "DingTalkSettings": "DUBAN_DINGTALK_"}


def _fail(sentence: str) -> NoReturn:
    typer.echo(sentence, err=True)
    raise typer.Exit(1)


@contextmanager
def _valid_settings() -> Iterator[None]:
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        error = exc.errors()[0]
        name = SETTING_PREFIXES.get(exc.title, "DUBAN_") + "_".join(str(p) for p in error["loc"]).upper()
        _fail(f"设置 {name} 的值 {error.get('input')!r} 不对（{error['msg']}），请在环境变量或 .env 中改正")


def _settings() -> Settings:
    from bot.settings import Settings

    with _valid_settings():
        return Settings()


def _dingtalk() -> DingTalkSettings:
    from bot.dingtalk.settings import CREDENTIALS_MISSING, DingTalkSettings

    with _valid_settings():
        dingtalk = DingTalkSettings()
    if not (dingtalk.client_id and dingtalk.client_secret.get_secret_value()):
        _fail(CREDENTIALS_MISSING)
    return dingtalk


async def _check_credentials(dingtalk: DingTalkSettings) -> None:
    """Ask DingTalk for a token first, so that refused credentials get their own sentence."""
    from bot.dingtalk.openapi import OpenApiClient

    async with OpenApiClient(dingtalk) as client:
        await client.access_token()


def _need_roster(settings: Settings) -> None:
    if not settings.roster_file.is_file():
        _fail(f"找不到花名册文件 {settings.roster_file.absolute()}：请把 DUBAN_ROSTER_FILE 设为花名册的路径，"
              f"例如 DUBAN_ROSTER_FILE=/var/lib/duban/roster.yaml")


def _need_data(settings: Settings) -> None:
    """A SQLite file that is not there means "no data here": say so rather than create an empty one."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        if not path.is_file():
            _fail(f"这里没有督办数据：数据库文件 {path.absolute()} 不存在；请把 DUBAN_DATABASE_URL 设为督办助手"
                  f"所用的数据库，例如 DUBAN_DATABASE_URL=sqlite:////var/lib/duban/duban.db")


@contextmanager
def _plain_errors() -> Iterator[None]:
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from bot.roster import RosterError

    try:
        yield
    except RosterError as exc:
        _fail(f"{exc}（花名册由 DUBAN_ROSTER_FILE 指定）")
    except (DBAPIError, ArgumentError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(f"打不开数据库（{reason}），请检查 DUBAN_DATABASE_URL")


def _moment(day: str | None):
    from datetime import date, datetime, time

    from bot.clock import SystemClock
    from storage.tz import SHANGHAI

    if day is None:
        return SystemClock().now()
    try:
        return datetime.combine(date.fromisoformat(day), time(9, 0), tzinfo=SHANGHAI)
    except ValueError as exc:
        typer.echo(f"日期格式应为 2026-12-07，收到的是 {day}", err=True)
        raise typer.Exit(2) from exc


@roster_app.command("check")
def roster_check(file: Path) -> None:
    """Validate a roster file and say what it holds."""
    from bot.roster import RosterError, load_roster

    try:
        roster = load_roster(file)
    except RosterError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    people = len(roster.officials) + sum(1 + len(u.liaisons) for u in roster.units)
    typer.echo(f"花名册无误：{len(roster.units)} 个单位，{people} 人，{len(roster.groups)} 个工作群。")


if __name__ == "__main__":
    app()
