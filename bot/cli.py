"""The `duban` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bot.roster import RosterError, load_roster

app = typer.Typer(help="督办助手：钉钉督办机器人", no_args_is_help=True, add_completion=False)
roster_app = typer.Typer(help="花名册：检查、导入", no_args_is_help=True)
app.add_typer(roster_app, name="roster")


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
