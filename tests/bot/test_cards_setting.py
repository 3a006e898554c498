"""DUBAN_DINGTALK_CARDS: cards on unless turned off, for both the transport and the bot."""

from __future__ import annotations

import pytest

from bot.dingtalk.settings import DingTalkSettings
from bot.settings import Settings


def test_cards_are_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUBAN_DINGTALK_CARDS", raising=False)  # the suite turns them off (conftest)
    assert DingTalkSettings().cards and Settings().dingtalk_cards


def test_cards_off_turns_off_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUBAN_DINGTALK_CARDS", "off")
    assert not DingTalkSettings().cards and not Settings().dingtalk_cards
