"""Read status is evidence (issue 13): where DingTalk reports none — a card, or a transport that gave
no receipt key — nobody is said to have left a notice unread, and the signer who got the draft is
never counted among the notice's readers."""

from __future__ import annotations

from sqlmodel import Session, select

from reminders.ledger import UNKNOWN_READ, notice_reads
from storage.models import Notice, NoticeKind, Task
from storage.tz import shanghai
from tests.helpers import HEAD, LEADER, OFFICE


def test_without_receipts_a_red_notice_names_nobody_as_unread(sim) -> None:
    code = sim.say(LEADER, "交办 县住建局 燃气管道隐患排查 截止11月25日", group="cid_leaders")[0].title.split()[-1]
    yellow = sim.wait_for_draft(code, shanghai(2026, 12, 1, 18))
    assert "已签发" in sim.say("u_changwu", f"签发 {yellow}")[0].title
    red = sim.wait_for_draft(code, shanghai(2026, 12, 14, 18))
    assert "已签发" in sim.say(LEADER, f"签发 {red}")[0].title
    sim.deliver()

    red_messages = [m for _, m in sim.transport.sent if red in m.text]
    assert red_messages and not any("至今未读" in m.text for m in red_messages)
    with Session(sim.engine) as session:
        task = session.exec(select(Task).where(Task.code == code)).one()
        reads = notice_reads(session, task, sim.clock.now())
        by_kind = {r["notice"].kind: r["people"] for r in reads}
        assert [p["user_id"] for p in by_kind[NoticeKind.YELLOW]] == [HEAD]  # not the signer
        assert [(p["text"], p["late"]) for p in by_kind[NoticeKind.YELLOW]] == [(UNKNOWN_READ, False)]
        assert session.exec(select(Notice).where(Notice.code == red)).one().status == "issued"
    assert UNKNOWN_READ in sim.say(OFFICE, f"查询 {code}")[0].text
