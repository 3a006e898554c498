"""The journal never carries a credential: an end-to-end `duban run` session against the emulator
(a one-to-one command answered through its session webhook, an assignment whose DM goes through
the robot API, a file uploaded to the old API) with every logger at DEBUG, and the whole log
searched for each token, session key, stream ticket and the app secret the emulator saw."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.dingtalk.settings import DingTalkSettings
from bot.run import QUIET_LOGGERS, RunSettings, Service, configure_logging
from bot.settings import Settings
from bot.simulation import ROSTER
from message_templates.reply import Reply
from storage.db import transaction
from storage.outbox import enqueue
from tests.emulator import Emulator
from tests.helpers import START


@pytest.fixture
def journal() -> Iterator[io.StringIO]:
    """What `duban run` would write to the journal, at DEBUG; logging restored afterwards."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers), {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    yield stream
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def secrets_seen(emulator: Emulator) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"token": set(), "session": set(), "ticket": set()}
    for request in emulator.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        found["token"] |= {v for v in (headers.get("x-acs-dingtalk-access-token"),
                                       request.query.get("access_token")) if v}
        found["session"] |= {request.query["session"]} if "session" in request.query else set()
        found["ticket"] |= {request.query["ticket"]} if "ticket" in request.query else set()
    return found


@pytest.mark.parametrize("libraries", ["as configured", "every library at DEBUG"])
async def test_an_end_to_end_session_logs_no_token_session_key_or_secret(
        dingtalk: Emulator, tmp_path: Path, journal: io.StringIO, libraries: str) -> None:
    if libraries == "every library at DEBUG":  # the redacting filter alone must hold
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
    settings = DingTalkSettings(client_id=dingtalk.client_id, client_secret=dingtalk.client_secret,
                                oapi_endpoint=dingtalk.url, timeout_seconds=2.0)
    clock = FakeClock(START)
    service = Service(Settings(database_url=f"sqlite:///{tmp_path}/run.db", roster_file=ROSTER), settings,
                      RunSettings(http_port=0), clock)
    await service.start()
    try:
        await dingtalk.wait_for(lambda: service.stream.connected)
        await dingtalk.push_frame(dingtalk.robot_message("我的", sender="u_zhujian", group=False))
        await dingtalk.wait_for(lambda: len(dingtalk.to("cidu_zhujiansingle", "webhook")) == 1)
        await dingtalk.push_frame(dingtalk.robot_message("交办 县住建局 燃气隐患排查 截止12月10日",
                                                         sender="u_xianzhang", conversation_id="cid_leaders"))
        await dingtalk.wait_for(lambda: len(dingtalk.to("u_zhujian", "user")) == 1)
        ledger = tmp_path / "台账.xlsx"
        ledger.write_bytes(b"PK\x03\x04 not really excel")
        with transaction(service.engine) as session:
            enqueue(session, Reply(title="台账", text="本周台账见附件", file_path=str(ledger)), target="group",
                    recipient="cid_leaders", deliver_after=clock.now(), now=clock.now())
    finally:
        await service.stop()  # its last round uploads and sends the file
    assert len(dingtalk.media) == 1

    log = journal.getvalue()
    seen = secrets_seen(dingtalk)
    assert all(seen.values()), seen  # the session really used a token, a session key and a ticket
    assert "inbound msg=" in log and "duban stopped" in log  # the log was captured, at DEBUG
    leaked = {kind: [v for v in values if v in log] for kind, values in seen.items()}
    assert leaked == {"token": [], "session": [], "ticket": []}
    assert dingtalk.client_secret not in log
    if libraries == "every library at DEBUG":  # httpx did log those URLs: with the values masked
        assert "access_token=***" in log and "session=***" in log
