"""Group commit on SQLite (bot/app.py): commands that arrive while the database is busy share one
commit, each in its own SAVEPOINT. Every reply still follows a durable change; a command that fails
leaves no trace and takes nobody else with it; a group whose transaction is lost runs again, each
command alone, so nobody is told "recorded" about a change that is gone. And, on both databases,
the reply marks of a burst share commits too."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from bot import app
from bot.settings import Settings
from bot.simulation import Simulation
from handlers import tasks
from handlers.incoming import Incoming
from storage.models import AuditEvent, ProcessedMessage, ProgressReport
from tests.helpers import HEAD, START, assign

REPORTS = 12


def progress(code: str, n: int) -> Incoming:
    return Incoming(msg_id=f"group-{n}", sender_id=HEAD, text=f"进展 {code} 第{n}次报送，整改推进中 {n}%")


def commits(engine) -> list[int]:
    """Commits as they reach the database (a SAVEPOINT's release is not one)."""
    seen: list[int] = []
    event.listen(engine, "commit", lambda conn: seen.append(1))
    return seen


async def arrive_together(sim, messages: list[Incoming], handled: list | None = None) -> list:
    """The messages reach the bot while its database thread is busy, so they wait there together
    (`handled`, when given, receives their futures as they are made)."""
    busy, release = threading.Event(), threading.Event()
    loop = asyncio.get_running_loop()
    blocker = loop.run_in_executor(sim.bot._db, lambda: (busy.set(), release.wait(10)))
    await asyncio.to_thread(busy.wait, 10)
    handled = handled if handled is not None else []
    handled += [asyncio.ensure_future(sim.bot.handle(m)) for m in messages]
    await asyncio.sleep(0)  # each has queued itself
    release.set()
    await blocker
    return await asyncio.gather(*handled, return_exceptions=True)


def reports(engine) -> list[str]:
    with Session(engine) as s:
        return sorted(r.text for r in s.exec(select(ProgressReport)))


def recorded(engine) -> set[str]:
    with Session(engine) as s:
        return set(s.exec(select(ProcessedMessage.msg_id)))


def test_commands_waiting_together_share_one_commit_and_each_is_recorded(sim) -> None:
    code = assign(sim)
    seen = commits(sim.engine)
    handled: list[asyncio.Future] = []
    answered_before_commit: list[int] = []
    event.listen(sim.engine, "commit", lambda conn: answered_before_commit.append(sum(f.done() for f in handled)))
    outcomes = asyncio.run(arrive_together(sim, [progress(code, n) for n in range(REPORTS)], handled))
    assert answered_before_commit == [0]  # nobody hears back before the shared commit
    assert all(o[0].title.startswith("进展已记录") for o in outcomes), outcomes
    assert len(seen) == 1  # twelve commands, one fsync
    assert len(reports(sim.engine)) == REPORTS
    assert recorded(sim.engine) >= {f"group-{n}" for n in range(REPORTS)}


def test_a_failing_command_in_a_group_leaves_no_trace_and_the_others_stand(sim, monkeypatch) -> None:
    code = assign(sim)
    changed = tasks.changed

    def breaks_after_writing(ctx, task, *args, **kwargs):
        changed(ctx, task, *args, **kwargs)
        if ctx.incoming.msg_id == "group-3":  # its report, audit event and task change are written
            raise RuntimeError("a bug in the middle of a command")

    monkeypatch.setattr(tasks, "changed", breaks_after_writing)
    messages = [progress(code, n) for n in range(6)] + [
        Incoming(msg_id="group-bad", sender_id=HEAD, text="进展 DB-2026-9999 没有这项"),  # refused
    ]
    seen = commits(sim.engine)
    outcomes = asyncio.run(arrive_together(sim, messages))
    assert len(seen) == 1
    assert outcomes[3][0].title == "系统繁忙" and "没有此事项" not in outcomes[-1][0].title, outcomes
    assert [o[0].title.startswith("进展已记录") for o in outcomes] == [True] * 3 + [False] + [True] * 2 + [False]
    assert len(reports(sim.engine)) == 5
    assert "第3次" not in " ".join(reports(sim.engine))
    assert "group-3" not in recorded(sim.engine) and "group-bad" not in recorded(sim.engine)
    with Session(sim.engine) as s:
        assert not [e for e in s.exec(select(AuditEvent)) if "第3次" in (e.detail or "")]


def test_a_group_whose_commit_fails_runs_again_each_alone(sim) -> None:
    code = assign(sim)
    failed: list[int] = []

    def fail_once(conn) -> None:
        if not failed:
            failed.append(1)
            raise OSError("disk I/O error")

    event.listen(sim.engine, "commit", fail_once)
    outcomes = asyncio.run(arrive_together(sim, [progress(code, n) for n in range(5)]))
    assert failed and not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert len(reports(sim.engine)) == 5  # each once: the group's rows rolled back, then each alone
    assert recorded(sim.engine) >= {f"group-{n}" for n in range(5)}


def test_a_group_whose_transaction_sqlite_rolled_back_runs_again_each_alone(sim, monkeypatch) -> None:
    """SQLite ends the whole transaction itself on some errors (disk full, I/O): the commands before
    would be gone although they answered, the ones after would commit one by one."""
    code = assign(sim)
    real = app.Bot.handle_sync
    lost: list[str] = []

    def losing(self, incoming, bind=None):
        replies = real(self, incoming, bind)
        if incoming.msg_id == "group-2" and bind is not None and not lost:
            lost.append(incoming.msg_id)
            bind.exec_driver_sql("ROLLBACK")  # what SQLite does on SQLITE_FULL
        return replies

    monkeypatch.setattr(app.Bot, "handle_sync", losing)
    outcomes = asyncio.run(arrive_together(sim, [progress(code, n) for n in range(5)]))
    assert lost and not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert len(reports(sim.engine)) == 5
    assert recorded(sim.engine) >= {f"group-{n}" for n in range(5)}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_on_threads_runs_commands_side_by_side_each_its_own_commit(db_url: str) -> None:
    """command_processes = 0; in worker processes each is its own commit too
    (tests/bot/test_command_processes.py)."""
    sim = Simulation(db_url, START, settings=Settings(database_url=db_url, command_processes=0))
    code = assign(sim)
    seen = commits(sim.engine)

    async def together() -> None:
        await asyncio.gather(*(sim.bot.handle(progress(code, n)) for n in range(4)))

    asyncio.run(together())
    sim.engine.dispose()
    assert len(seen) == 4 and len(reports(sim.engine)) == 4


def test_reply_marks_made_within_the_window_share_one_commit(sim_any) -> None:
    """A burst's messages are replied to one after another, not together: the first mark waits
    `mark_window` for the others, and each caller returns only once its own mark is committed."""
    code = assign(sim_any)
    messages = [progress(code, n) for n in range(3)]
    for message in messages:
        sim_any.bot.handle_sync(message)
    sim_any.bot.mark_window = 0.5  # wide, so a slow machine's 50 ms steps still fall inside it
    updates: list[str] = []
    event.listen(sim_any.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *_: updates.append(statement)
                 if statement.startswith("UPDATE processedmessage") else None)

    async def one_after_another() -> list[bool]:
        marking = []
        for message in messages:
            marking.append(asyncio.ensure_future(sim_any.bot.mark_replied(message)))
            await asyncio.sleep(0.05)  # the window is real time: this is what it spans
        done_before_commit = [m.done() for m in marking]
        await asyncio.gather(*marking)
        return done_before_commit

    assert asyncio.run(one_after_another()) == [False, False, False]
    assert len(updates) == 1
    with Session(sim_any.engine) as s:
        marked = s.exec(select(ProcessedMessage.msg_id).where(ProcessedMessage.replied_at.is_not(None)))
        assert set(marked) >= {m.msg_id for m in messages}


def test_a_mark_batch_cancelled_in_its_window_does_not_hold_up_the_next_mark(sim_any) -> None:
    """Cancelled (the loop shutting down, say) before its commit: later marks start a batch of
    their own instead of waiting on the dead one forever."""
    code = assign(sim_any)
    first, second = progress(code, 1), progress(code, 2)
    for message in (first, second):
        sim_any.bot.handle_sync(message)

    async def cancel_then_mark() -> None:
        cancelled = asyncio.ensure_future(sim_any.bot.mark_replied(first))
        await asyncio.sleep(0)  # its mark joined a batch whose task has not taken a step yet
        sim_any.bot._marking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.wait_for(sim_any.bot.mark_replied(second), 10)

    asyncio.run(cancel_then_mark())
    with Session(sim_any.engine) as s:
        marked = set(s.exec(select(ProcessedMessage.msg_id).where(ProcessedMessage.replied_at.is_not(None))))
    assert second.msg_id in marked and first.msg_id not in marked
