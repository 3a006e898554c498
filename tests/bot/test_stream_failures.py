"""The stream never dies quietly: `duban run`'s Service (and its real StreamClient) against the
emulator, failing at start — DingTalk unreachable, the credentials refused, 5xx, a lazily
imported websockets submodule — keeps retrying with short injected backoff, logs a line per
failure, says why in /healthz, and recovers when DingTalk comes up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.clock import FakeClock
from bot.dingtalk.inbound import InboundHandler
from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.settings import CREDENTIALS_REJECTED, DingTalkSettings
from bot.dingtalk.stream import StreamClient
from bot.run import RunSettings, Service
from bot.settings import Settings
from bot.simulation import ROSTER
from tests.emulator import Emulator, Fault
from tests.helpers import START

OPEN = "/v1.0/gateway/connections/open"
FAST = {"reconnect_min_seconds": 0.01, "reconnect_max_seconds": 0.05, "timeout_seconds": 2.0}


class LateDingTalk:
    """DingTalk's address before DingTalk is there: a loopback port that refuses connections until
    open(), then forwards each connection to the emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        with socket.socket() as probe:  # a free port, closed again: connecting to it is refused
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server:
            self._server.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.emulator.port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def fast_settings(emulator: Emulator, openapi: str, **overrides: object) -> DingTalkSettings:
    values = {"client_id": emulator.client_id, "client_secret": emulator.client_secret,
              "openapi_endpoint": openapi, "oapi_endpoint": emulator.url} | FAST | overrides
    return DingTalkSettings(**values)


async def health(service: Service) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
        return await http.get("/healthz")


async def assign_works(emulator: Emulator, service: Service) -> None:
    """A message through the recovered stream reaches the bot and is answered."""
    frame = emulator.robot_message("交办 县住建局 燃气隐患排查 截止12月10日", sender="u_xianzhang",
                                   conversation_id="cid_all_units")
    await emulator.push_frame(frame)
    await emulator.wait_for(lambda: len(emulator.to("cid_all_units", "webhook")) == 1)


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def a_burst(dingtalk: Emulator, handle, release: asyncio.Event,
                  count: int) -> AsyncIterator[tuple[StreamClient, list]]:
    """A connected stream whose messages go to `handle`, with `count` messages pushed to it at once;
    `release` is set on the way out, so no handler is left waiting."""
    settings = fast_settings(dingtalk, dingtalk.url)
    client = OpenApiClient(settings)
    stream = StreamClient(settings, InboundHandler(handle, client, FakeClock(START)))
    task = asyncio.create_task(stream.start())
    frames = [dingtalk.robot_message(f"帮助 {n}", sender="u_zhujian") for n in range(count)]
    try:
        await dingtalk.wait_for(lambda: stream.connected)
        for frame in frames:
            await dingtalk.push_frame(frame)
        yield stream, frames
    finally:
        release.set()
        await stream.stop()
        await task
        await stream.aclose()
        await client.aclose()


async def late_dingtalk_scenario(emulator: Emulator, tmp: Path) -> list[str]:
    """`duban run` started while DingTalk does not answer at all; it comes up later. Returns the
    /healthz reasons seen while down."""
    late = LateDingTalk(emulator)
    service = Service(Settings(database_url=f"sqlite:///{tmp}/run.db", roster_file=ROSTER),
                      fast_settings(emulator, late.url), RunSettings(http_port=0), FakeClock(START))
    async with running(service):
        await emulator.wait_for(lambda: service.stream.failures >= 3)
        down = await health(service)
        assert down.status_code == 503 and down.json()["stream_connected"] is False
        reasons = [down.json()["stream_down_reason"]]

        await late.open()
        await emulator.wait_for(lambda: service.stream.connected)
        up = await health(service)
        assert up.status_code == 200 and up.json()["stream_down_reason"] is None
        await assign_works(emulator, service)
    await late.close()
    return reasons


async def test_dingtalk_unreachable_at_start_then_up(dingtalk: Emulator, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.dingtalk.stream")
    [reason] = await late_dingtalk_scenario(dingtalk, tmp_path)

    assert reason.startswith("DingTalk unreachable (/v1.0/gateway/connections/open: not sent (ClientConnectorError")
    failures = [r.getMessage() for r in caplog.records if "stream connection failed" in r.getMessage()]
    assert len(failures) >= 3  # one line for each failed attempt, not silence until shutdown
    assert all("DingTalk unreachable" in line for line in failures)


@pytest.mark.parametrize("accepted", [True, False], ids=["connected", "refused"])
async def test_the_rest_of_the_start_follows_the_first_attempt_at_once(
        dingtalk: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accepted: bool) -> None:
    """Connected or failed, the first attempt's end lets the scheduler and /healthz start: they do
    not sit out FIRST_ATTEMPT_SECONDS."""
    monkeypatch.setattr("bot.run.FIRST_ATTEMPT_SECONDS", 60.0)
    if not accepted:
        dingtalk.client_secret = "the-app-was-given-another-secret"
    service = Service(Settings(database_url=f"sqlite:///{tmp_path}/run.db", roster_file=ROSTER),
                      fast_settings(dingtalk, dingtalk.url, client_secret="test-secret"),
                      RunSettings(http_port=0), FakeClock(START))
    async with asyncio.timeout(20):
        await service.start()
    try:
        assert service.stream.connections == (1 if accepted else 0)
        assert (service.stream.failures > 0) is not accepted
        assert (await health(service)).status_code == (200 if accepted else 503)
    finally:
        await service.stop()


async def test_a_silent_dingtalk_holds_up_the_rest_of_the_start_only_so_long(
        dingtalk: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler and /healthz wait for the stream's first attempt, but not for a DingTalk that
    takes the connection and never answers: they come up after FIRST_ATTEMPT_SECONDS."""
    monkeypatch.setattr("bot.run.FIRST_ATTEMPT_SECONDS", 0.2)
    hang_up = asyncio.Event()

    async def take_and_say_nothing(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hang_up.wait()
        writer.close()

    silent = await asyncio.start_server(take_and_say_nothing, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    service = Service(Settings(database_url=f"sqlite:///{tmp_path}/run.db", roster_file=ROSTER),
                      fast_settings(dingtalk, url, timeout_seconds=10.0), RunSettings(http_port=0), FakeClock(START))
    try:
        async with asyncio.timeout(3):  # well short of the 10 s the first attempt takes to time out
            await service.start()
        assert service.stream.failures == 0  # still waiting on connections/open
        assert service.waker.scheduler and service.waker.scheduler.running
        down = await health(service)
        assert down.status_code == 503 and down.json()["stream_down_reason"] == "connecting"
    finally:
        hang_up.set()  # the attempt fails, and the stream can stop
        await service.stop()
        silent.close()


LAZY_IMPORT_CHECK = """
import asyncio, sys, tempfile
from pathlib import Path
# the first failure must not depend on someone else having imported websockets.exceptions
assert "websockets.exceptions" not in sys.modules, "imported before the service: this check proves nothing"
from bot.run import configure_logging
from tests.emulator import Emulator
from tests.bot.test_stream_failures import late_dingtalk_scenario

async def main():
    emulator = Emulator()
    await emulator.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await asyncio.wait_for(late_dingtalk_scenario(emulator, Path(tmp)), 30)
    finally:
        await emulator.stop()

configure_logging("WARNING")
asyncio.run(main())
print("recovered")
"""


def test_the_first_failure_needs_no_lazily_imported_module(tmp_path: Path) -> None:
    """In a fresh interpreter (under pytest something else may have loaded websockets.exceptions)."""
    repo = str(Path(__file__).resolve().parents[2])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", LAZY_IMPORT_CHECK], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "recovered"
    assert "AttributeError" not in done.stderr
    assert re.search(r"stream connection failed: DingTalk unreachable .*; retry 1 in", done.stderr)


async def test_refused_credentials_are_said_in_chinese_retried_and_recovered(
        dingtalk: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.dingtalk.stream")
    dingtalk.client_secret = "the-app-was-given-another-secret"  # connections/open answers 401
    service = Service(Settings(database_url=f"sqlite:///{tmp_path}/run.db", roster_file=ROSTER),
                      fast_settings(dingtalk, dingtalk.url, client_secret="test-secret"),
                      RunSettings(http_port=0), FakeClock(START))
    async with running(service):
        await dingtalk.wait_for(lambda: service.stream.failures >= 3)
        down = await health(service)
        assert down.status_code == 503
        assert down.json()["stream_down_reason"] == CREDENTIALS_REJECTED
        lines = [r.getMessage() for r in caplog.records if r.name == "bot.dingtalk.stream"]
        assert len(lines) >= 3 and all(line.startswith(CREDENTIALS_REJECTED) for line in lines)

        dingtalk.client_secret = "test-secret"  # the administrator puts the secret back
        await dingtalk.wait_for(lambda: service.stream.connected)
        assert (await health(service)).json()["status"] == "ok"
        await assign_works(dingtalk, service)


async def test_server_errors_then_recovery_and_the_backoff_is_capped_and_jittered(
        dingtalk: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.dingtalk.stream")
    dingtalk.fail_next(OPEN, Fault.SERVER_ERROR, count=8)
    settings = fast_settings(dingtalk, dingtalk.url, reconnect_min_seconds=0.01, reconnect_max_seconds=0.08)
    client = OpenApiClient(settings)
    stream = StreamClient(settings, InboundHandler(lambda _: asyncio.sleep(0, []), client, FakeClock(START)),
                          rng=random.Random(7))
    task = asyncio.create_task(stream.start())
    try:
        await dingtalk.wait_for(lambda: stream.connected)
    finally:
        await stream.stop()
        await task
        await stream.aclose()
        await client.aclose()

    lines = [r.getMessage() for r in caplog.records if "stream connection failed" in r.getMessage()]
    assert len(lines) == 8 and all("connections/open: HTTP 503 ServiceUnavailable" in line for line in lines)
    waits = [float(re.search(r"in ([0-9.]+)s", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert all(w <= 0.08 for w in waits)  # never past the cap
    assert waits[0] <= 0.01 and max(waits) > 0.04  # doubling from the minimum...
    assert len(set(waits[3:])) > 1  # ...and, once capped, jittered rather than in lockstep
    assert stream.failures == 0 and stream.last_failure is None


async def test_an_error_nobody_foresaw_is_logged_with_its_traceback_and_the_stream_reconnects(
        dingtalk: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.dingtalk.stream")
    settings = fast_settings(dingtalk, dingtalk.url)
    client = OpenApiClient(settings)
    stream = StreamClient(settings, InboundHandler(lambda _: asyncio.sleep(0, []), client, FakeClock(START)))
    task = asyncio.create_task(stream.start())
    try:
        await dingtalk.wait_for(lambda: stream.connected)
        await dingtalk.push_frame(["not", "a", "frame"])  # type: ignore[arg-type]  # valid JSON, not an object
        await dingtalk.wait_for(lambda: stream.connections == 2 and stream.connected)
    finally:
        await stream.stop()
        await task
        await stream.aclose()
        await client.aclose()
    [failure] = [r for r in caplog.records if "stream connection failed" in r.getMessage()]
    assert failure.levelno == logging.ERROR and failure.exc_info is not None
    assert "AttributeError: 'list' object has no attribute 'get'" in failure.getMessage()


async def test_a_burst_is_held_in_a_queue_not_in_thousands_of_tasks(dingtalk: Emulator) -> None:
    """Back-pressure: however many frames arrive, at most MAX_IN_FLIGHT are handled at once; the
    rest wait until one finishes, and every frame is still handled and acked."""
    from bot.dingtalk.stream import MAX_IN_FLIGHT

    release, busy, peak = asyncio.Event(), [0], [0]

    async def slow(_incoming: object) -> list:
        busy[0] += 1
        peak[0] = max(peak[0], busy[0])
        await release.wait()
        busy[0] -= 1
        return []

    async with a_burst(dingtalk, slow, release, 3 * MAX_IN_FLIGHT) as (_stream, frames):
        await dingtalk.wait_for(lambda: busy[0] == MAX_IN_FLIGHT)
        await asyncio.sleep(0.2)  # were anything to run unbounded, it would have started by now
        assert peak[0] == MAX_IN_FLIGHT and len(dingtalk.acks) == 0
        release.set()
        await dingtalk.wait_for(lambda: len(dingtalk.acks) == len(frames))


async def test_the_socket_is_read_while_every_worker_is_busy(dingtalk: Emulator) -> None:
    """A burst longer than the websocket's keepalive timeout must not drop the connection: the frames
    behind it (a ping, a pong) are read at once, though no worker is free to handle a message."""
    from bot.dingtalk.stream import MAX_IN_FLIGHT

    release = asyncio.Event()

    async def slow(_incoming: object) -> list:
        await release.wait()
        return []

    async with a_burst(dingtalk, slow, release, 4 * MAX_IN_FLIGHT) as (stream, frames):
        ping = await dingtalk.ping()
        await dingtalk.wait_for(lambda: dingtalk.acked(ping) == 1)  # answered behind the whole burst
        assert len(dingtalk.acks) == 1 and stream.connections == 1
        release.set()
        await dingtalk.wait_for(lambda: len(dingtalk.acks) == len(frames) + 1)
        assert all(dingtalk.acked(frame) == 1 for frame in frames) and stream.connections == 1
