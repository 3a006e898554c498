"""The numbers of the 三色 rules (Rules), read from the environment (prefix DUBAN_RULE_) or `.env`.

They live here, beside the engine and the reports that apply them; bot/settings.py nests them in
Settings. Every settings class reads the same `.env` (ENV_FILE), in the working directory.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reminders.profiles import RuleProfile, profile_rules

ENV_FILE = ".env"


class DayCounting(StrEnum):
    CALENDAR = "calendar"  # 第五、六条 say 第5天 / 10天内: calendar days (default)
    WORKING = "working"


class Rules(BaseSettings):
    """The numbers of the 三色 rules. Every default comes from the seeds; all can be changed.

    `profile` picks the document the numbers follow (reminders/profiles.py, with each rule's source);
    a value the operator sets (DUBAN_RULE_<NAME>, or a keyword here) wins over the profile's."""

    model_config = SettingsConfigDict(env_prefix="DUBAN_RULE_", env_file=ENV_FILE, extra="ignore")

    profile: RuleProfile = RuleProfile.XIANGYIN

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
    stars: int = 10  # 第十条: 十大效能之星
    stalled_urges: int = 2  # 鄂托克前旗 措施10: 连续2次督办仍然进展缓慢 ⇒ 公开通报
    praise_list: bool = True  # 华容 措施九: 正反两面清单 in the monthly bulletin
    half_year_review: bool = True  # 湘阴 实施方案 18: 半年一讲评
    quarterly_review: bool = False  # 华容 措施九: 季讲评
    deploy_duty: bool = False  # 布置落实 after 签收 (湖北 (七), 鄂托克前旗 措施8); 湘阴 has none
    deploy_workdays: int = 3  # 湖北 (七): 3个工作日内布置落实
    hard_report_workdays: int = 5  # 湖北 (六): 难以执行的, 5个工作日内反馈
    hard_answer_workdays: int = 3  # 湖北 (六): 3个工作日内 … 明确回复
    monthly_plan_day: int = 5  # 华容 措施九: 月初有计划 (by the 5th)
    monthly_progress_day: int = 15  # …月中有进展 (by the 15th), 月底有成效 (by month end)
    # issue 13: a DING to the unit head with the notice; robot/ding/send remindType 1 in-app,
    # 2 SMS, 3 phone (SMS and phone may cost money: unconfirmed), 0 none
    ding_red: int = Field(default=1, ge=0, le=3)
    ding_yellow: int = Field(default=0, ge=0, le=3)

    @model_validator(mode="after")
    def _follow_profile(self) -> Rules:
        for name, rule in profile_rules(self.profile).items():
            if name not in self.model_fields_set:  # set by the operator: theirs wins
                object.__setattr__(self, name, rule.value)  # not recorded as set: the table says "profile"
        return self
