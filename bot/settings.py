"""One Settings object, read from the environment (prefix DUBAN_) or a .env file, passed down.

Every settings class (these, DingTalkSettings, RunSettings) reads the same `.env`, in the working
directory; a variable set in the environment wins over the file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from reminders.rules import ENV_FILE, Rules


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUBAN_", env_file=ENV_FILE, extra="ignore")

    database_url: str = "sqlite:///duban.db"
    roster_file: Path = Path("roster.yaml")  # like the database, in the working directory by default
    calendar_overrides: Path | None = None
    code_prefix: str = "DB"
    year_end_report: str = "12-31"  # MM-DD: the year-end report covers the year it is issued in
    reports_dir: Path = Path("reports")  # chart images wait here until the outbox delivers them
    dashboard_url: str = "http://127.0.0.1:8787"  # how people reach `duban run`'s web server (看板 links)
    rules: Rules = Field(default_factory=Rules)
    # interactive cards, kept current in place (DUBAN_DINGTALK_CARDS, as DingTalkSettings.cards reads it)
    dingtalk_cards: bool = True
    # PostgreSQL: commands run in this many worker processes (bot/command_processes.py), so a burst is
    # not held to the one core a process's threads share; 0 runs them on threads of the bot's process.
    # A worker waits on PostgreSQL's round trips about half its time: 3 on 2 cores measured best
    # (bench.inbound, 2 / 3 / 4 workers: median 0.45 / 0.48–0.52 / 0.42 of the bare SDK)
    command_processes: int = Field(default=3, ge=0)
