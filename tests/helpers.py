"""Helpers shared by the test modules, so that no test module imports another.

The roster ids are people on examples/roster.yaml (the `sim` fixtures' roster); `dump` is how a
test shows that a rejected command changed nothing; `World` is the bot wired as `duban run` wires
it, on the DingTalk emulator (the `world` fixture in conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from bot.app import Bot
from bot.clock import FakeClock
from bot.dingtalk.cards import CardCallbackHandler
from bot.dingtalk.inbound import InboundHandler
from bot.dingtalk.openapi import OpenApiClient
from bot.dingtalk.settings import DingTalkSettings
from bot.dingtalk.stream import StreamClient
from bot.dingtalk.transport import DingTalkTransport
from bot.outbox import SendPacer, deliver_due
from bot.run import outbox_route
from bot.settings import Settings
from bot.simulation import ROSTER
from reminders.calendar import WorkCalendar
from storage.db import create_schema, make_engine
from storage.models import Outbox, Task
from storage.outbox import next_due
from storage.tz import shanghai
from tests.emulator import Emulator

# people on examples/roster.yaml
LEADER, DEPUTY, VICE, DIRECTOR, OFFICE = "u_xianzhang", "u_changwu", "u_fuxianzhang", "u_zhuren", "u_ducha1"
HEAD, LIAISON, OTHER_HEAD, OTHER_LIAISON = "u_zhujian", "u_zhujian_ll", "u_yingji", "u_yingji_ll"
EDU_HEAD = "u_jiaoyu"
STRANGER = "u_stranger"

START = shanghai(2026, 11, 23, 9, 30)  # a Monday: the `sim` fixtures' and the `world` fixture's start


def dump(engine) -> dict[str, list[tuple]]:
    """Every row of every table, in a comparable form."""
    out = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = conn.execute(table.select()).fetchall()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


def task(sim, code: str = "DB-2026-0001") -> Task:
    with Session(sim.engine) as s:
        return s.exec(select(Task).where(Task.code == code)).one()


def assign(sim, text: str = "交办 县住建局 燃气管道隐患排查 截止12月10日") -> str:
    reply = sim.say(LEADER, text, group="cid_leaders")[0]
    assert reply.title.startswith("已交办"), reply.text
    return reply.title.split()[-1]


def dingtalk_settings(emulator: Emulator, **overrides: object) -> DingTalkSettings:
    values = {"client_id": emulator.client_id, "client_secret": emulator.client_secret,
              "oapi_endpoint": emulator.url, "timeout_seconds": 0.5} | overrides
    settings = DingTalkSettings(**values)
    assert settings.openapi_endpoint == emulator.url  # read from DINGTALK_OPENAPI_ENDPOINT, as in production
    return settings
@dataclass
class World:
    emulator: Emulator
    engine: Engine
    clock: FakeClock
    bot: Bot
    client: OpenApiClient
    transport: DingTalkTransport
    stream: StreamClient

    async def say(self, user_id: str, text: str, *, group: str = "", at: tuple[tuple[str, str], ...] = ()) -> dict:
        """`user_id` sends `text` to the robot (in `group`, or one to one); returns once acked."""
        frame = self.emulator.robot_message(text, sender=user_id, conversation_id=group, group=bool(group), at=at)
        await self.push(frame)
        return frame

    async def push(self, frame: dict) -> None:
        acks = self.emulator.acked(frame)
        await self.emulator.push_frame(frame)
        await self.emulator.wait_for(lambda: self.emulator.acked(frame) > acks)

    async def deliver(self, **kwargs: object) -> int:
        return await deliver_due(self.engine, self.transport, self.clock.now(), "e2e", **kwargs)  # type: ignore[arg-type]

    async def deliver_all(self, pacer: SendPacer | None = None) -> int:
        """Deliver, moving the clock to each retry, until the outbox is empty; the rounds it took."""
        for rounds in range(1, 500):
            await self.deliver(pacer=pacer, rng=random.Random(rounds))
            nxt = next_due(self.engine)
            if nxt is None:
                return rounds
            self.clock.set(max(nxt, self.clock.now()))
        raise AssertionError("the outbox never emptied")

    def tasks(self) -> list[Task]:
        with Session(self.engine) as session:
            return list(session.exec(select(Task).order_by(Task.id)))

    def outbox(self) -> list[Outbox]:
        with Session(self.engine) as session:
            return list(session.exec(select(Outbox).order_by(Outbox.id)))


@contextlib.asynccontextmanager
async def running(dingtalk: Emulator, tmp_path: Path, *, outbox: bool = True,
                  cards: bool = False) -> AsyncIterator[World]:
    """The bot wired as `duban run` wires it (without an outbox route for replies, if so told; with
    interactive cards and their taps, if so told)."""
    settings = dingtalk_settings(dingtalk)
    url = f"sqlite:///{tmp_path}/e2e.db"
    engine = make_engine(url)
    create_schema(engine)
    clock = FakeClock(START)
    bot = Bot(engine, Settings(database_url=url, dingtalk_cards=cards), clock, WorkCalendar())
    bot.load_roster(ROSTER)
    client = OpenApiClient(settings)
    taps = CardCallbackHandler(bot.handle, outbox_route(engine, clock), clock, replied=bot.mark_replied)
    stream = StreamClient(settings, InboundHandler(bot.handle, client, clock, replied=bot.mark_replied,
                                                   via_outbox=outbox_route(engine, clock) if outbox else None),
                          cards=taps if cards else None)
    task = asyncio.create_task(stream.start())
    await dingtalk.wait_for(lambda: stream.connected)
    try:
        transport = DingTalkTransport(client, cards=cards, robot_code=settings.robot_code)
        yield World(dingtalk, engine, clock, bot, client, transport, stream)
    finally:
        await stream.stop()
        await task
        await stream.aclose()
        await client.aclose()
        engine.dispose()


