"""Rule profiles: which county document the numbers and duties follow (`DUBAN_RULE_PROFILE`).

Each rule is data: the `Rules` field it sets, its value, and its source — the document, the article,
and the words of the article it is read from (tests/test_profiles.py finds those words under that
article in the seed and checks the number is in them). A profile starts from the 湘阴 table (the
default, which is what the bot always did) and replaces the rules its own document states; an
operator's `DUBAN_RULE_<NAME>` still wins over any single one. Numbers no document states are the
bot's own conventions and say so.

Pure data and a function over it: no import of the settings (they import this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RuleProfile(StrEnum):
    XIANGYIN = "xiangyin"
    HUARONG = "huarong"
    HUBEI = "hubei"
    NINGQIANG = "ningqiang"
    ETUOKEQIANQI = "etuokeqianqi"


@dataclass(frozen=True)
class Document:
    short: str  # how the bot cites it
    title: str
    seed: str  # file name under shared/seeds (a copy is in tests/fixtures/seeds)


XIANGYIN = Document("湘阴", "湘阴县“蓝、黄、红”三色督办单制度（湘阴县2020年行政效能建设实施方案附件）",
                    "xiangyin-2020-three-colour-notices.txt")
XIANGYIN_PLAN = Document("湘阴实施方案", "湘阴县2020年行政效能建设实施方案", "xiangyin-2020-three-colour-notices.txt")
HUARONG = Document("华容", "华容县进一步提升政府系统执行力十条措施（2021）", "huarong-2021-ten-measures.txt")
HUBEI = Document("湖北", "湖北省关于进一步提升政府执行力的意见（2019）", "hubei-2019-execution-opinions.txt")
NINGQIANG = Document("宁强", "宁强县提升工作质量若干措施（2022）", "ningqiang-2022-work-quality-measures.txt")
ETUOKEQIANQI = Document("鄂托克前旗", "鄂托克前旗进一步提升政务工作创造力执行力公信力十五条措施（2021）",
                        "etuokeqianqi-2021-fifteen-measures.txt")
DOCUMENTS = {RuleProfile.XIANGYIN: XIANGYIN, RuleProfile.HUARONG: HUARONG, RuleProfile.HUBEI: HUBEI,
             RuleProfile.NINGQIANG: NINGQIANG, RuleProfile.ETUOKEQIANQI: ETUOKEQIANQI}


@dataclass(frozen=True)
class Source:
    document: Document | None  # None: the bot's own convention (SPEC), no document states it
    article: str  # 第三条, 措施九, (七) … or, for a convention, where SPEC says it
    quote: str = ""  # the article's own words the value is read from, exactly as in the seed

    def cite(self) -> str:
        if self.document is None:
            return f"本系统约定（{self.article}）"
        return f"{self.document.short} {self.article}"


@dataclass(frozen=True)
class Rule:
    name: str  # the Rules field it sets
    label: str
    value: object
    source: Source


def _spec(where: str) -> Source:
    return Source(None, where)


def _x(article: str, quote: str) -> Source:
    return Source(XIANGYIN, article, quote)


# ---- 湘阴: the default --------------------------------------------------------------------------------
_ART9 = "每收到一次“蓝色督办单”的扣1分,每收到一次“黄色督办单”的扣2分,每收到一次“红色督办单”的扣5分"
_DEFAULT = (
    Rule("default_deadline_workdays", "未定期限的办理时限（工作日）", 7, _x("第三条", "一般从交办之日起7个工作日内办结")),
    Rule("ack_reminder_workdays", "未签收提醒（工作日）", 1, _spec("SPEC §2.2")),
    Rule("courtesy_workdays_before", "临期提醒提前（工作日）", 1, _spec("SPEC §3")),
    Rule("yellow_after_days", "到期后发黄色督办单（天）", 5, _x("第五条", "交办事项规定完成时限第5天")),
    Rule("red_after_yellow_days", "黄色发出后发红色督办单（天）", 10, _x("第六条", "“黄色督办单”发出后,10天内")),
    Rule("red_repeat_days", "红色督办单重发间隔（天）", 5, _spec("SPEC §3，第六条“直至该事项督办完成”")),
    Rule("signer_reminder_workdays", "待签发提醒（工作日）", 1, _spec("SPEC §3")),
    Rule("score_blue", "蓝色督办单扣分", -1, _x("第九条", _ART9)),
    Rule("score_yellow", "黄色督办单扣分", -2, _x("第九条", _ART9)),
    Rule("score_red", "红色督办单扣分", -5, _x("第九条", _ART9)),
    Rule("bonus_min_tasks", "年终加分所需承办项数", 5, _x("第九条", "对承办5项及以上任务的相关单位")),
    Rule("bonus_no_yellow", "全年无黄色加分", 10, _x("第九条", "全年未收到“黄色督办单”的加10分")),
    Rule("bonus_no_red", "全年无红色加分", 5, _x("第九条", "全年未收到“红色督办单”的加5分")),
    Rule("bonus_more_tasks", "另行加分所需承办项数", 20, _x("第九条", "对承办20项及以上任务的相关单位")),
    Rule("bonus_more_no_yellow", "另行加分：全年无黄色", 20, _x("第九条", "全年未收到“黄色督办单”的另加20分")),
    Rule("bonus_more_no_red", "另行加分：全年无红色", 10, _x("第九条", "全年未收到“红色督办单”的另加10分")),
    Rule("criticism_reds", "通报批评所需红色督办单（次）", 2,
         _x("第十条", "承办单位年度内累计2次或同一督办事项2次收到“红色督办单”的,全县通报批评")),
    Rule("admonition_reds", "诫勉谈话所需红色督办单（次）", 3,
         _x("第十条", "年度内累计3次或同一督办事项3次收到“红色督办单”的,由县政府主要领导对单位主要负责人进行诫勉谈话")),
    Rule("stars", "效能之星（人）", 10, _x("第十条", "全县评选“十大效能之星”,给予每人1万元奖励")),
    Rule("stalled_urges", "连续督办几次无进展即公开通报", 2,
         Source(ETUOKEQIANQI, "措施10", "对连续2次督办仍然进展缓慢的事项,要公开通报落实不力的相关责任单位、责任人")),
    Rule("praise_list", "月通报附正反两面清单", True, Source(HUARONG, "措施九", "建立正反两面清单")),
    Rule("half_year_review", "半年讲评", True, Source(XIANGYIN_PLAN, "18", "实行半年一讲评、年终一考核")),
    Rule("quarterly_review", "季度讲评", False, _spec("湘阴文件无季讲评")),
    Rule("deploy_duty", "签收后报送部署（布置落实）", False, _spec("湘阴文件无此要求")),
    Rule("deploy_workdays", "布置落实时限（工作日）", 3, Source(HUBEI, "(七)", "並在3個工作日內布置落實")),
    Rule("hard_report_workdays", "难以执行反馈时限（工作日）", 5, Source(HUBEI, "(六)", "發現難以執行的,必須在5個工作日內反饋")),
    Rule("hard_answer_workdays", "难以执行答复时限（工作日）", 3,
         Source(HUBEI, "(六)", "政府辦公廳(室)在3個工作日內給予繼續執行、暫緩執行或按新的方法執行的明確回復")),
    # 华容 says 月初 / 月中 / 月底; which day that is, no document says
    Rule("monthly_plan_day", "每月报送：计划截止（日）", 5, _spec("华容 措施九“月初有计划”，5日为约定")),
    Rule("monthly_progress_day", "每月报送：进展截止（日）", 15, _spec("华容 措施九“月中有进展”，15日为约定")),
)

# ---- what each other document states ---------------------------------------------------------------
PROFILES: dict[RuleProfile, tuple[Rule, ...]] = {
    RuleProfile.XIANGYIN: (),
    RuleProfile.HUARONG: (
        Rule("default_deadline_workdays", "未定期限的办理时限（工作日）", 7,
             Source(HUARONG, "措施三", "各部门单位阅处件7个工作日内做出答复")),
        Rule("quarterly_review", "季度讲评", True, Source(HUARONG, "措施九", "县政府严格实行旬调度、月通报、季讲评")),
        Rule("half_year_review", "半年讲评", False, _spec("华容文件为季讲评")),
    ),
    RuleProfile.HUBEI: (
        Rule("deploy_duty", "签收后报送部署（布置落实）", True, Source(HUBEI, "(七)", "並在3個工作日內布置落實")),
        Rule("half_year_review", "半年讲评", False, _spec("湖北文件无此要求")),
    ),
    RuleProfile.NINGQIANG: (
        Rule("default_deadline_workdays", "未定期限的办理时限（工作日）", 7,
             Source(NINGQIANG, "措施5", "没有时限要求的,自收到批示件之日起7个工作日内落实反馈")),
        Rule("half_year_review", "半年讲评", False, _spec("宁强文件无此要求")),
    ),
    RuleProfile.ETUOKEQIANQI: (
        Rule("deploy_duty", "签收后报送部署（布置落实）", True,
             Source(ETUOKEQIANQI, "措施8", "各部门要在2个工作日内布置落实")),
        Rule("deploy_workdays", "布置落实时限（工作日）", 2, Source(ETUOKEQIANQI, "措施8", "各部门要在2个工作日内布置落实")),
        Rule("half_year_review", "半年讲评", False, _spec("鄂托克前旗文件无此要求")),
    ),
}

def profile_rules(profile: RuleProfile) -> dict[str, Rule]:
    """The whole table of a profile: 湘阴's rules with the profile's own in their place."""
    table = {rule.name: rule for rule in _DEFAULT}
    table.update({rule.name: rule for rule in PROFILES[RuleProfile(profile)]})
    return table


@dataclass(frozen=True)
class RuleRow:
    name: str
    label: str
    value: object
    source: str


def rules_table(rules: object) -> list[RuleRow]:
    """The rules in force (a `Rules`): each with its value and where it comes from — the profile's
    document and article, or the operator's setting when one overrides it."""
    profile = RuleProfile(rules.profile)
    chosen = rules.model_fields_set
    rows = []
    for name, rule in profile_rules(profile).items():
        value = getattr(rules, name)
        source = f"运营设置 DUBAN_RULE_{name.upper()}" if name in chosen else rule.source.cite()
        rows.append(RuleRow(name, rule.label, value, source))
    return rows


def show(value: object) -> str:
    if isinstance(value, bool):
        return "开" if value else "关"
    return str(value)
