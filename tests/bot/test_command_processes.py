"""PostgreSQL's command workers (bot/command_processes.py): commands run in worker processes on the
bot's own clock, each its own transaction; a worker that dies is replaced and its command runs once
more without being recorded twice; workers die with the bot; what they log reaches the bot's log."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, func, select

from bot import app
from bot.command_processes import CommandProcesses
from handlers.incoming import Incoming
from storage.db import make_engine
from storage.models import ProcessedMessage, ProgressReport, Task
from tests.helpers import HEAD, assign

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def progress(code: str, n: int) -> Incoming:
    return Incoming(msg_id=f"worker-{n}", sender_id=HEAD, text=f"进展 {code} 第{n}次报送 {n}%")


def worker_pids(bot: app.Bot) -> list[int]:
    assert bot.processes is not None and bot.processes._pool is not None
    return list(bot.processes._pool._processes)


def gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody reaped (a container's first process may not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_commands_run_in_the_workers_on_the_bots_clock(sim_any, monkeypatch: pytest.MonkeyPatch) -> None:
    code = assign(sim_any)
    sim_any.clock.advance(days=2, hours=1)  # Wednesday 10:30, simulated
    now = sim_any.clock.now()

    def not_here(*args, **kwargs):
        raise AssertionError("a command ran in the bot's own process")

    monkeypatch.setattr(app.Bot, "handle_sync", not_here)  # the workers, spawned, import their own

    async def together() -> list:
        return await asyncio.gather(*(sim_any.bot.handle(progress(code, n)) for n in range(4)))

    answers = asyncio.run(together())
    assert all(replies[0].title.startswith("进展已记录") for replies in answers), answers
    assert len(set(worker_pids(sim_any.bot)) - {os.getpid()}) == sim_any.bot.settings.command_processes
    with Session(sim_any.engine) as session:
        times = list(session.exec(select(ProgressReport.at).where(ProgressReport.text.startswith("第"))))
    assert len(times) == 4 and set(times) == {now}  # the bot's clock, not the worker's


def test_a_worker_killed_mid_command_is_replaced_and_the_command_recorded_once(sim_any) -> None:
    code = assign(sim_any)
    bot = sim_any.bot

    async def scenario() -> list:
        await bot.handle(progress(code, 0))  # the workers are up
        holder = make_engine(sim_any.engine.url.render_as_string(hide_password=False))
        with holder.connect() as conn:  # the task's row held: the next command waits inside a worker
            conn.execute(text("SELECT id FROM task WHERE code = :c FOR UPDATE"), {"c": code})
            waiting = asyncio.ensure_future(bot.handle(progress(code, 1)))
            while not conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                await asyncio.sleep(0.05)
            for pid in worker_pids(bot):
                os.kill(pid, signal.SIGKILL)  # its transaction dies uncommitted
            await asyncio.sleep(0.5)
            conn.rollback()
        holder.dispose()
        return await waiting

    replies = asyncio.run(scenario())
    assert replies and replies[0].title.startswith("进展已记录"), replies
    with Session(sim_any.engine) as session:
        assert session.exec(select(func.count()).select_from(ProgressReport)
                            .where(ProgressReport.text.startswith("第1次"))).one() == 1
        assert session.get(ProcessedMessage, "worker-1") is not None
        assert session.exec(select(Task.progress_percent).where(Task.code == code)).one() == 1


def test_what_a_worker_logs_reaches_the_bots_log(sim_any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # the root's level, which the workers take when they start (as `duban run` sets it)
    code = assign(sim_any)

    async def twice() -> None:
        await sim_any.bot.handle(progress(code, 7))
        await sim_any.bot.handle(progress(code, 7))  # the same msgId again: logged, not answered

    asyncio.run(twice())
    # records are relayed by a listener thread, a moment after they are logged: close() stops the
    # workers and then the listener, once it has relayed everything they sent
    sim_any.bot.close()
    [record] = [r for r in caplog.records if "already processed" in r.getMessage()]
    assert record.process != os.getpid()


def _bot_with_workers(pids: multiprocessing.Queue) -> None:
    processes = CommandProcesses(2, os.getpid, ())  # nothing to set up: any callable will do
    while len(processes._pool._processes if processes._pool else ()) < 2:  # two at once start two workers
        asyncio.run(_two_at_once(processes))
    pids.put(list(processes._pool._processes))
    signal.pause()  # until the test kills this process


async def _two_at_once(processes: CommandProcesses) -> None:
    await asyncio.gather(processes.run("a", os.getpid), processes.run("b", os.getpid))


def test_workers_die_with_the_bot(db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    pids = context.Queue()
    bot = context.Process(target=_bot_with_workers, args=(pids,))
    bot.start()
    workers = pids.get(timeout=60)
    assert len(workers) == 2 and not any(gone(pid) for pid in workers)
    os.kill(bot.pid, signal.SIGKILL)
    bot.join()
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in workers), "a worker outlived the bot"
