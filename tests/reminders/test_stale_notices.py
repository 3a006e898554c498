"""Notices whose moment passed before they could go out (issue 11 point 5): a 临期提醒 that could only
be sent after the deadline is dropped, a draft's 签发提醒 is not piled up while the draft itself (or an
earlier reminder) still waits to go out, and no notice names a "next step" date already past."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from storage.models import Notice, NoticeKind, Outbox
from storage.tz import shanghai
from tests.helpers import HEAD, LEADER


def setup(sim) -> None:
    sim.say(LEADER, "交办 县住建局 燃气管道隐患排查 截止12月1日", group="cid_leaders")
    sim.say(HEAD, "签收 DB-2026-0001")


def rows(sim, **where: object) -> list[Outbox]:
    with Session(sim.engine) as session:
        query = select(Outbox).order_by(Outbox.id)
        for name, value in where.items():
            query = query.where(getattr(Outbox, name) == value)
        return list(session.exec(query))


def test_after_a_week_down_the_courtesy_ping_is_dropped_and_the_blue_names_no_past_date(sim) -> None:
    setup(sim)
    sim.clock.set(shanghai(2026, 12, 8, 9, 30))  # the bot was down from before 11-30 until now
    sim.bot.tick()
    with Session(sim.engine) as session:
        kinds = {n.kind for n in session.exec(select(Notice))}
    assert {NoticeKind.COURTESY, NoticeKind.BLUE} <= kinds  # both fell due (and count for the policy)
    to_head = [row for row in rows(sim, recipient=HEAD) if row.notice_id]
    assert [row.title for row in to_head] == ["🔵 蓝色督办单 DB-2026-0001-B1"]
    [blue] = to_head
    assert "若至12月7日" not in blue.text and "下一步**：仍未办结，🟡黄色督办单已进入拟制签发" in blue.text


def test_a_blue_sent_on_time_names_its_next_step(sim) -> None:
    setup(sim)
    sim.run_until(shanghai(2026, 12, 1, 18, 0))
    [blue] = [row for row in rows(sim, recipient=HEAD) if row.title.startswith("🔵")]
    assert "若至12月7日（周一）09:00仍未办结" in blue.text


def test_sign_reminders_do_not_pile_up_behind_a_draft_that_has_not_gone_out(sim) -> None:
    setup(sim)
    start = shanghai(2026, 12, 7, 9, 0)
    for hour in range(10 * 24):  # DingTalk unreachable for ten days: the schedule runs, nothing is sent
        sim.clock.set(start + timedelta(hours=hour))
        sim.bot.tick()
    with Session(sim.engine) as session:
        reminders = session.exec(select(Notice).where(Notice.kind == NoticeKind.SIGN_REMINDER)).all()
    assert len(reminders) > 2
    waiting = [row.title for row in rows(sim, recipient="u_changwu") if not row.card_update]
    assert waiting == ["待签发：🟡 黄色督办单 DB-2026-0001-Y1"]
