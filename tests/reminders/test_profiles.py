"""Rule profiles (reminders/profiles.py): every profile's table matches its document, the profile in
force sets the numbers, an operator's setting still wins, and `duban rules` prints it all.

The documents are the seeds (a copy in tests/fixtures/seeds). For each rule a profile cites, the test
finds the rule's quoted words in the seed, under the article the rule names (the nearest article
heading above the words), and checks the rule's number is in those words.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from reminders.profiles import DOCUMENTS, PROFILES, Rule, RuleProfile, profile_rules
from reminders.rules import Rules

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
# article headings at the start of a line: 第三条 / 18. / 九、 / (七) (the 湖北 text writes half-width brackets)
HEADING = re.compile(r"^\s*(第[一二三四五六七八九十]+条|\d{1,2}[.．]|[一二三四五六七八九十]+、|[(（][一二三四五六七八九十]+[)）])",
                     re.MULTILINE)
CHINESE = "一二三四五六七八九十"


def article_key(article: str) -> str:
    """How an article is written as a heading in its seed: 措施九 → 九、, 措施8 → 8., (七) → (七)."""
    bare = article.removeprefix("措施")
    if bare.isdigit():
        return f"{bare}."
    if bare and all(ch in CHINESE for ch in bare):
        return f"{bare}、"
    return bare


def heading_above(text: str, position: int) -> str:
    headings = [m for m in HEADING.finditer(text) if m.start() <= position]
    assert headings, "no article heading above the quote"
    return headings[-1].group(1).replace("（", "(").replace("）", ")").replace("．", ".")


def check_cited(rule: Rule) -> None:
    source = rule.source
    text = (SEEDS / source.document.seed).read_text(encoding="utf-8")
    positions = [m.start() for m in re.finditer(re.escape(source.quote), text)]
    assert positions, f"{rule.name}: 「{source.quote}」 is not in {source.document.seed}"
    key = article_key(source.article)
    assert any(heading_above(text, p) == key for p in positions), \
        f"{rule.name}: 「{source.quote}」 is not under {source.article} of {source.document.seed}"
    if isinstance(rule.value, int) and not isinstance(rule.value, bool):
        numbers = re.findall(r"\d+", source.quote) + [str(CHINESE.index(ch) + 1) for ch in source.quote
                                                        if ch in CHINESE]  # 十大效能之星
        assert str(abs(rule.value)) in numbers, f"{rule.name}={rule.value}: not stated in 「{source.quote}」"


@pytest.mark.parametrize("profile", list(RuleProfile))
def test_every_number_a_profile_cites_is_in_its_article(profile: RuleProfile) -> None:
    table = profile_rules(profile)
    cited = [rule for rule in table.values() if rule.source.document is not None]
    own = [rule for rule in PROFILES[profile] if rule.source.document is DOCUMENTS[profile]]
    assert own or profile is RuleProfile.XIANGYIN, f"{profile} cites nothing of its own document"
    for rule in cited:
        check_cited(rule)
    rules = Rules(profile=profile)
    for rule in table.values():
        assert getattr(rules, rule.name) == rule.value, f"{profile}: {rule.name}"


@pytest.mark.parametrize(("profile", "expected"), [
    (RuleProfile.XIANGYIN, {"deploy_duty": False, "half_year_review": True, "quarterly_review": False,
                            "default_deadline_workdays": 7, "stars": 10}),
    (RuleProfile.HUARONG, {"quarterly_review": True, "half_year_review": False, "praise_list": True}),
    (RuleProfile.HUBEI, {"deploy_duty": True, "deploy_workdays": 3, "hard_report_workdays": 5,
                         "hard_answer_workdays": 3}),
    (RuleProfile.NINGQIANG, {"default_deadline_workdays": 7, "deploy_duty": False}),
    (RuleProfile.ETUOKEQIANQI, {"deploy_duty": True, "deploy_workdays": 2, "stalled_urges": 2}),
])
def test_each_profile_sets_its_documents_duties(profile: RuleProfile, expected: dict[str, object]) -> None:
    rules = Rules(profile=profile)
    assert {name: getattr(rules, name) for name in expected} == expected


def test_the_default_profile_is_xiangyin_and_leaves_every_old_number_as_it_was() -> None:
    rules = Rules()
    assert rules.profile is RuleProfile.XIANGYIN
    old = {"default_deadline_workdays": 7, "ack_reminder_workdays": 1, "courtesy_workdays_before": 1,
           "yellow_after_days": 5, "red_after_yellow_days": 10, "red_repeat_days": 5, "signer_reminder_workdays": 1,
           "score_blue": -1, "score_yellow": -2, "score_red": -5, "bonus_min_tasks": 5, "bonus_no_yellow": 10,
           "bonus_no_red": 5, "bonus_more_tasks": 20, "bonus_more_no_yellow": 20, "bonus_more_no_red": 10,
           "criticism_reds": 2, "admonition_reds": 3}
    assert {name: getattr(rules, name) for name in old} == old


def test_an_operator_setting_wins_over_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DUBAN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DUBAN_RULE_PROFILE", "etuokeqianqi")
    monkeypatch.setenv("DUBAN_RULE_DEPLOY_WORKDAYS", "4")
    rules = Rules()
    assert (rules.profile, rules.deploy_duty, rules.deploy_workdays) == (RuleProfile.ETUOKEQIANQI, True, 4)
    assert Rules(profile="hubei", deploy_duty=False).deploy_duty is False


def test_duban_rules_prints_the_table_with_the_article_of_each_number(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DUBAN_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["rules"], env={"DUBAN_RULE_PROFILE": "etuokeqianqi",
                                                     "DUBAN_RULE_STARS": "8"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("规则方案：etuokeqianqi（鄂托克前旗")
    assert "| 布置落实时限（工作日） | 2 | 鄂托克前旗 措施8 |" in lines
    assert "| 签收后报送部署（布置落实） | 开 | 鄂托克前旗 措施8 |" in lines
    assert "| 黄色发出后发红色督办单（天） | 10 | 湘阴 第六条 |" in lines
    assert "| 难以执行答复时限（工作日） | 3 | 湖北 (六) |" in lines
    assert "| 效能之星（人） | 8 | 运营设置 DUBAN_RULE_STARS |" in lines
    assert len([line for line in lines if line.startswith("| ") and "---" not in line]) == 1 + len(
        profile_rules(RuleProfile.ETUOKEQIANQI))


def test_an_unknown_profile_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["rules"], env={"DUBAN_RULE_PROFILE": "changsha"})
    assert result.exit_code == 1
    assert "DUBAN_RULE_PROFILE" in result.output and "Traceback" not in result.output
