"""The `duban` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bot.roster import RosterError, load_roster

app = typer.Typer(help="督办助手：钉钉督办机器人", no_args_is_help=True, add_completion=False)
roster_app = typer.Typer(help="花名册：检查、导入", no_args_is_help=True)
export_app = typer.Typer(help="导出：台账 Excel", no_args_is_help=True)
app.add_typer(roster_app, name="roster")
app.add_typer(export_app, name="export")


@app.command()
def demo(colour: bool = typer.Option(sys.stdout.isatty(), "--colour/--no-colour", help="彩色输出")) -> None:
    """A whole escalation in simulated time, on a temporary database (no DingTalk account)."""
    from bot.demo import play

    play(colour=colour)


@app.command()
def console(
    as_user: str = typer.Option(..., "--as", help="以花名册中哪位的 userId 身份输入，例如 u_xianzhang"),
    group: str = typer.Option("", help="模拟在哪个群里发言（openConversationId），默认单聊"),
) -> None:
    """Type commands as anyone in the roster, against the bot's own database."""
    from bot.app import Bot
    from bot.clock import SystemClock
    from bot.console import ConsoleTransport, repl
    from bot.settings import Settings
    from reminders.calendar import WorkCalendar
    from storage.db import create_schema, make_engine

    settings = Settings()
    engine = make_engine(settings.database_url)
    create_schema(engine)
    clock = SystemClock()
    bot = Bot(engine, settings, clock, WorkCalendar.from_file(settings.calendar_overrides))
    bot.load_roster(settings.roster_file)
    repl(bot, as_user, group, ConsoleTransport(engine, clock))


@app.command()
def run() -> None:
    """Run the bot on DingTalk (settings from the environment or .env; see docs/deploy.md)."""
    import asyncio

    from bot.run import run as run_service
    from bot.settings import Settings

    asyncio.run(run_service(Settings()))


@roster_app.command("sync")
def roster_sync(
    yes: bool = typer.Option(False, "--yes", help="确认写入（不加则只显示差异）"),
    root: int = typer.Option(1, help="从哪个钉钉部门开始同步（根部门为 1）"),
) -> None:
    """Build or update the roster from DingTalk departments and their managers; shows the diff first."""
    import asyncio

    from bot.roster_sync import sync_from_settings
    from bot.settings import Settings

    diff = asyncio.run(sync_from_settings(Settings(), yes=yes, root_dept_id=root))
    typer.echo(diff.render())
    if diff and not yes:
        typer.echo("以上为差异，尚未写入；确认无误请加 --yes 再运行一次。")


@app.command()
def report(
    kind: str = typer.Argument(..., help="weekly | monthly | annual"),
    at: str = typer.Option(None, "--at", help="按哪一天出报告，例如 2026-12-07（默认今天）"),
) -> None:
    """Print the weekly summary, monthly bulletin or year-end report as of any date (sends nothing)."""
    from reminders.reports import print_report

    settings, engine, calendar = _local()
    moment = _moment(at)
    try:
        typer.echo(print_report(kind, moment, engine, settings, calendar))
    except ValueError as exc:
        typer.echo(f"报告种类只能是 weekly、monthly 或 annual：{exc}", err=True)
        raise typer.Exit(2) from exc


@export_app.command("ledger")
def export_ledger(out: Path = typer.Option(..., "--out", help="写到哪个 .xlsx 文件")) -> None:
    """Write the 台账 as an Excel file: one row per task, colours as cell fills, and per-unit scores."""
    from reminders.ledger_export import export_ledger as write

    _, engine, _ = _local()
    typer.echo(f"已导出：{write(engine, _moment(None), out)}")


def _local():
    from bot.settings import Settings
    from reminders.calendar import WorkCalendar
    from storage.db import create_schema, make_engine

    settings = Settings()
    engine = make_engine(settings.database_url)
    create_schema(engine)
    return settings, engine, WorkCalendar.from_file(settings.calendar_overrides)


def _moment(day: str | None):
    from datetime import date, datetime, time

    from bot.clock import SHANGHAI, SystemClock

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
    try:
        roster = load_roster(file)
    except RosterError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    people = len(roster.officials) + sum(1 + len(u.liaisons) for u in roster.units)
    typer.echo(f"花名册无误：{len(roster.units)} 个单位，{people} 人，{len(roster.groups)} 个工作群。")


if __name__ == "__main__":
    app()
