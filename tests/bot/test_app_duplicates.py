"""One message handled by two instances at once (DingTalk redelivered it to the other connection):
on PostgreSQL both pass the msgId check before either commits; the msgId INSERT … ON CONFLICT DO
NOTHING of the second finds the first's row, and its whole transaction rolls back."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlmodel import Session, func, select

from handlers.incoming import Incoming
from message_templates.reply import Reply
from storage.models import ProgressReport, Task
from tests.helpers import HEAD, assign


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_same_message_on_two_instances_at_once_is_recorded_once(sim_any) -> None:
    sim = sim_any
    code = assign(sim)
    incoming = Incoming(msg_id="redelivered-1", sender_id=HEAD, text=f"进展 {code} 已完成城区排查 60%",
                        received_at=sim.clock.now())
    replies: list[list[Reply]] = [[], []]

    def run(i: int) -> None:
        replies[i] = sim.bot.handle_sync(incoming)

    with Session(sim.engine) as holder:  # both wait on the task's row lock, past their msgId check
        holder.exec(select(Task).where(Task.code == code).with_for_update()).one()
        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        waiting = 0
        for _ in range(500):
            with sim.engine.connect() as probe:  # its own transaction: the view is a snapshot per transaction
                waiting = probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE '%FOR UPDATE%'")).scalar_one()
            if waiting == 2:
                break
            threading.Event().wait(0.02)  # real threads reaching a real lock: nothing to simulate
        assert waiting == 2
        holder.rollback()
    for t in threads:
        t.join(timeout=30)

    answered = [r for r in replies if r]
    assert len(answered) == 1 and "已记录" in answered[0][0].text, replies
    assert [r for r in replies if not r] == [[]]  # the second stays silent: the first answered
    with Session(sim.engine) as s:
        assert s.exec(select(func.count()).select_from(ProgressReport)
                      .where(ProgressReport.text == "已完成城区排查")).one() == 1
