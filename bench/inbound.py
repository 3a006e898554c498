"""Inbound: robot messages a second through the whole bot, against the bare dingtalk-stream SDK.

Both run as their own process against the DingTalk emulator (tests/emulator) on 127.0.0.1:
- bot: `duban run` itself (bot.run.Service): the SDK's client, frames and handler under our
  StreamClient → InboundHandler → Bot.handle (parse, permission check, one database transaction:
  progress report, task, audit event, msgId) → the reply through the message's session webhook;
- sdk: the SDK's own DingTalkStreamClient with the echo handler from its README (ChatbotHandler
  .reply_text, also through the session webhook).

The emulator pushes N CALLBACK frames (`进展 <code> …` from a unit head) as fast as it can; the
clock stops when every frame is acked and every reply reached the webhook. Each round runs the
SDK, then the bot on a fresh database, so the ratio compares two runs a few seconds apart (a
shared machine's load shifts less between them than between rounds). Min/median/max of the rates
and of the ratio are printed, the last lines reading `inbound_ratio <backend> min=… median=… max=…`.
Each run also prints where its CPU went, in ms a message (bench.common.CpuSplit, from /proc): the
client (the bot's or the SDK's process), the bot's command workers, PostgreSQL's backends for the
bench's database, and the generator (this process: the emulator and the frames it pushes).

    python -m bench.inbound [--messages 1000] [--rounds 3] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlmodel import Session, func, select

from bench.common import ROUNDS, CpuSplit, fmt, load, machine_line, postgres, spread, table
from storage.db import make_engine
from storage.models import ProgressReport, Task
from tests.emulator import Emulator

WARM_UP = 20
SEED_TASKS = 50
READY_SECONDS = 60.0
HEAD = "u_zhujian"  # 县住建局's head in examples/roster.yaml


async def measure(mode: str, messages: int, database_url: str, work: Path) -> float:
    """Messages a second for one client (`bot` or `sdk`)."""
    emulator = Emulator()
    await emulator.start()
    log = (work / f"{mode}.log").open("w")
    # the SDK reads its endpoint once, at import: point it at the emulator before the child starts
    env = os.environ | {"DINGTALK_OPENAPI_ENDPOINT": emulator.url}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.inbound", "--serve", mode, "--database", database_url, "--work", str(work),
        env=env, stdout=log, stderr=log)
    try:
        await emulator.wait_for(lambda: emulator.live_connections > 0, READY_SECONDS)
        codes = [f"DB-{time.localtime().tm_year}-0001"]
        if mode == "bot":
            engine = make_engine(database_url)
            with Session(engine) as session:
                codes = list(session.exec(select(Task.code)))
            engine.dispose()
        frames = [emulator.robot_message(f"进展 {codes[n % len(codes)]} 第{n}次报送，整改推进中 {n % 100}%",
                                         sender=HEAD, group=False) for n in range(WARM_UP + messages)]
        await push(emulator, frames[:WARM_UP])
        cpu = CpuSplit(child.pid, database_url.rsplit("/", 1)[1] if database_url.startswith("postgresql") else None)
        cpu.start()
        started = time.perf_counter()
        await push(emulator, frames[WARM_UP:])
        rate = messages / (time.perf_counter() - started)
        spent = cpu.stop()
        print(f"[{mode}] CPU ms a message: " + ", ".join(
            f"{part} {1000 * seconds / messages:.2f}" for part, seconds in spent.items() if seconds), flush=True)
        if mode == "bot":  # every reply was a recorded progress report, not a cheap refusal
            engine = make_engine(database_url)
            with Session(engine) as session:
                reports = session.exec(select(func.count()).select_from(ProgressReport)).one()
            engine.dispose()
            assert reports == len(frames), f"{reports} progress reports for {len(frames)} messages: see {log.name}"
        return rate
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), 20)
        except TimeoutError:
            child.kill()
        await emulator.stop()
        log.close()


async def push(emulator: Emulator, frames: list[dict]) -> None:
    """Push every frame; return once all are acked and all replies reached the session webhook."""
    acks, replies = len(emulator.acks), len(emulator.calls("/robot/sendBySession"))
    for frame in frames:
        await emulator.push_frame(frame)
    await emulator.wait_for(lambda: len(emulator.acks) >= acks + len(frames)
                            and len(emulator.calls("/robot/sendBySession")) >= replies + len(frames), 600)


# -- the clients -------------------------------------------------------------------------------


def serve_bot(database_url: str, work: Path) -> None:
    from bot.dingtalk.settings import DingTalkSettings
    from bot.run import RunSettings, Service, configure_logging
    from bot.settings import Settings
    from bot.simulation import ROSTER
    from handlers.incoming import Incoming
    from storage.db import create_schema

    async def main() -> None:
        configure_logging("INFO")  # as `duban run` logs: a summary a minute, per-message lines at DEBUG
        emulator_url = os.environ["DINGTALK_OPENAPI_ENDPOINT"]
        service = Service(Settings(database_url=database_url, roster_file=ROSTER, reports_dir=work),
                          DingTalkSettings(client_id="dingtestapp", client_secret="test-secret",
                                           oapi_endpoint=emulator_url),
                          RunSettings(http_port=0))
        create_schema(service.engine)
        service.bot.load_roster(ROSTER)
        for n in range(SEED_TASKS):  # tasks for the unit head to report progress on
            service.bot.handle_sync(Incoming(msg_id=f"seed-{n}", sender_id="u_xianzhang", text=f"交办 县住建局 基准测试第{n}项",
                                             conversation_id="cid_all_units", is_group=True))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await service.start()
        await stop.wait()
        await service.stop()

    asyncio.run(main())


def serve_sdk() -> None:
    import dingtalk_stream
    from dingtalk_stream import AckMessage

    class EchoTextHandler(dingtalk_stream.ChatbotHandler):  # the SDK README's example
        async def process(self, callback: dingtalk_stream.CallbackMessage) -> tuple[int, str]:
            incoming_message = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
            text = incoming_message.text.content.strip()
            self.reply_text(text, incoming_message)
            return AckMessage.STATUS_OK, "OK"

    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential("dingtestapp", "test-secret"))
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, EchoTextHandler())
    client.start_forever()


async def main(messages: int, rounds: int, backends: list[str]) -> None:
    rows, lines = [], []
    for backend in backends:
        sdk_rates, bot_rates, ratios = [], [], []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as work, postgres() if backend == "postgresql" else _none() as pg:
                url = pg if backend == "postgresql" else f"sqlite:///{work}/inbound.db"
                if url is None:
                    break
                sdk = await measure("sdk", messages, url, Path(work))
                bot = await measure("bot", messages, url, Path(work))
            sdk_rates.append(sdk)
            bot_rates.append(bot)
            ratios.append(bot / sdk)
            print(f"[{backend}] sdk {sdk:7.1f}/s  bot {bot:7.1f}/s  ratio {bot / sdk:.2f}  (load {load()})", flush=True)
        if ratios:
            rows += [(backend, "bare SDK echo, msg/s", fmt(sdk_rates, 1)), (backend, "full bot, msg/s", fmt(bot_rates, 1)),
                     (backend, "bot / SDK", fmt(ratios, 2))]
            lines.append(machine_line(f"inbound_ratio {backend}", **dict(zip(("min", "median", "max"),
                                                                           (f"{v:.2f}" for v in spread(ratios)), strict=True))))
    print(f"\ninbound, {messages} messages after {WARM_UP} to warm up, {rounds} rounds:")
    print(table(("backend", "what", "figures"), rows))
    print("\n".join(lines))



@contextlib.contextmanager
def _none() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--database", help=argparse.SUPPRESS)  # the child's database
    parser.add_argument("--serve", choices=["bot", "sdk"], help=argparse.SUPPRESS)  # the child's role
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "bot":
        serve_bot(args.database, args.work)
    elif args.serve == "sdk":
        serve_sdk()
    else:
        asyncio.run(main(args.messages, args.rounds, args.backends))
