"""The numbers of the 三色 rules (Rules), read from the environment (prefix DUBAN_RULE_) or `.env`.

They live here, beside the engine and the reports that apply them; bot/settings.py nests them in
Settings. Every settings class reads the same `.env` (ENV_FILE), in the working directory.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum

from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE = ".env"


class DayCounting(StrEnum):
    CALENDAR = "calendar"  # 第五、六条 say 第5天 / 10天内: calendar days (default)
    WORKING = "working"


class Rules(BaseSettings):
    """The numbers of the 三色 rules. Every default comes from the seeds; all can be changed."""

    model_config = SettingsConfigDict(env_prefix="DUBAN_RULE_", env_file=ENV_FILE, extra="ignore")

    default_deadline_workdays: int = 7  # 第三条
    ack_reminder_workdays: int = 1  # SPEC §2.2
    courtesy_workdays_before: int = 1  # SPEC §3 临期提醒
    yellow_after_days: int = 5  # 第五条: 第5天
    red_after_yellow_days: int = 10  # 第六条: 黄色督办单发出后 10天内
    red_repeat_days: int = 5  # SPEC §3: red again every 5 days
    signer_reminder_workdays: int = 1  # SPEC §3: a draft waiting more than 1 working day
    day_counting: DayCounting = DayCounting.CALENDAR
    auto_issue: bool = False  # issue yellow/red without waiting for a signature
    work_start: time = time(9, 0)  # also when the daily look for due bulletins runs
    work_end: time = time(18, 0)
    due_time: time = time(17, 30)  # a date-only deadline falls due at the end of that working day
    score_blue: int = -1  # 第九条
    score_yellow: int = -2
    score_red: int = -5
    bonus_min_tasks: int = 5  # 第九条: units with ≥5 tasks that year earn the year-end bonuses
    bonus_no_yellow: int = 10
    bonus_no_red: int = 5
    bonus_more_tasks: int = 20  # 第九条: with ≥20 tasks, a further bonus (and the 优岗比例 note)
    bonus_more_no_yellow: int = 20
    bonus_more_no_red: int = 10
    criticism_reds: int = 2  # 第十条: 全县通报批评 + 书面检讨
    admonition_reds: int = 3  # 第十条: 诫勉谈话
