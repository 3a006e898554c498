"""The inbound handler's log: a DEBUG line per message, one INFO summary a minute (on the injected
clock) saying how many were handled and how many failed."""

from __future__ import annotations

import logging

import pytest
from dingtalk_stream import CallbackMessage

from bot.clock import FakeClock
from bot.dingtalk.inbound import SUMMARY_SECONDS, InboundHandler
from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.settings import DingTalkSettings
from handlers.incoming import Incoming
from tests.emulator import Emulator
from tests.helpers import START


async def test_one_summary_a_minute_with_messages_handled_and_failed(
        dingtalk: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.dingtalk.inbound")

    async def dispatch(incoming: Incoming) -> list:
        if "坏" in incoming.text:
            raise RuntimeError("a bug")
        return []

    clock = FakeClock(START)
    client = OpenApiClient(DingTalkSettings(client_id=dingtalk.client_id, client_secret=dingtalk.client_secret,
                                            openapi_endpoint=dingtalk.url, oapi_endpoint=dingtalk.url))
    handler = InboundHandler(dispatch, client, clock)

    async def say(text: str) -> None:
        frame = dingtalk.robot_message(text, sender="u_zhujian", group=False)
        await handler.raw_process(CallbackMessage.from_dict(frame))

    def summaries() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]

    try:
        for text in ("帮助", "帮助", "坏"):
            await say(text)
            clock.advance(seconds=10)
        assert summaries() == []
        assert len([r for r in caplog.records if r.levelno == logging.DEBUG and "inbound msg=" in r.getMessage()]) == 3
        clock.advance(seconds=SUMMARY_SECONDS - 30)
        await say("帮助")  # the first message a minute on brings the summary
        assert summaries() == ["inbound: 3 messages handled, 1 failed in the last 60 s"]
        clock.advance(seconds=5)
        await say("帮助")
        assert len(summaries()) == 1  # the next one waits for the next minute, and counts from the last
        clock.advance(seconds=SUMMARY_SECONDS)
        await say("坏")
        assert summaries()[1] == "inbound: 1 messages handled, 1 failed in the last 65 s"
    finally:
        await client.aclose()
