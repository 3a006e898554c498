"""A pooled connection whose server backend is gone (the server restarted, or an administrator ended
it): the next command still gets its normal reply and leaves one set of rows. No ping precedes a
connection used again at once (storage/db.py): the command runs again on a new connection
(bot/app.py); a connection that sat idle is pinged and replaced before use."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlmodel import Session, func, select

from handlers.incoming import Incoming
from storage import db
from storage.models import AuditEvent, ProcessedMessage, ProgressReport
from tests.helpers import HEAD, assign


def end_pooled_backends(url: str) -> int:
    """pg_terminate_backend every other session on the database: the pool's connections die."""
    with psycopg.connect(url, autocommit=True) as admin:
        return admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_command_on_a_dead_pooled_connection_runs_again_on_a_new_one(sim_any, db_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    sim = sim_any
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)  # no ping: the dead connection is handed out
    code = assign(sim)
    assert end_pooled_backends(db_url) >= 1

    replies = sim.bot.handle_sync(Incoming(msg_id="after-kill", sender_id=HEAD, text=f"进展 {code} 管线复查完毕 70%",
                                           received_at=sim.clock.now()))

    assert len(replies) == 1 and "已记录" in replies[0].text, replies
    with Session(sim.engine) as s:
        assert s.exec(select(func.count()).select_from(ProgressReport)
                      .where(ProgressReport.text == "管线复查完毕")).one() == 1
        assert s.exec(select(func.count()).select_from(ProcessedMessage)
                      .where(ProcessedMessage.msg_id == "after-kill")).one() == 1
        assert s.exec(select(func.count()).select_from(AuditEvent)
                      .where(AuditEvent.actor_id == HEAD)).one() == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_connection_idle_in_the_pool_is_pinged_and_replaced_when_dead(db_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            before = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert end_pooled_backends(db_url) >= 1
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # it has been idle long enough
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != before
    finally:
        engine.dispose()
