"""交办's target is its first word only: a unit name or an @-mention there. @-mentions later in the
text are people asked to help (they get a DM), never the target; a leading @ that could be several
of the people mentioned gets a question, not a guess. All through the real Bot.handle_sync."""

from __future__ import annotations

from sqlmodel import Session, select

from handlers.incoming import Incoming
from message_templates.reply import Reply
from storage.models import Outbox, Task, Unit
from tests.helpers import EDU_HEAD, HEAD, LEADER, LIAISON, dump

GROUP = "cid_leaders"


def say(sim, text: str, at: tuple[str, ...], names: tuple[str, ...]) -> list[Reply]:
    """As the stream delivers it: userIds of the mentions, and the names written after "@"."""
    replies = sim.bot.handle_sync(Incoming(msg_id=f"m-{text}-{at}", sender_id=LEADER, text=text, conversation_id=GROUP,
                                           is_group=True, at_user_ids=at, at_names=names))
    sim.deliver()
    return replies


def lead_and_title(sim) -> tuple[str, str]:
    with Session(sim.engine) as s:
        task = s.exec(select(Task)).one()
        return s.get(Unit, task.lead_unit_id).name, task.title


def dms(sim) -> dict[str, list[str]]:
    """Each DM recipient and the titles they were sent."""
    with Session(sim.engine) as s:
        out: dict[str, list[str]] = {}
        for row in s.exec(select(Outbox).where(Outbox.target == "user").order_by(Outbox.id)):
            out.setdefault(row.recipient, []).append(row.title)
        return out


def test_a_mention_in_the_body_is_someone_to_tell_not_the_target(sim_any):
    [reply] = say(sim_any, "交办 县教育局 校园安全隐患排查，请@王建华 配合… 截止12月10日", (HEAD,), ("王建华",))
    assert reply.title == "已交办 DB-2026-0001", reply.text
    assert lead_and_title(sim_any) == ("县教育局", "校园安全隐患排查，请@王建华 配合…")
    assert reply.at_user_ids == (EDU_HEAD,)  # the group message calls the 教育局's head, not 王建华
    sent = dms(sim_any)
    assert sent[EDU_HEAD] == ["新交办事项 DB-2026-0001"]
    assert sent[HEAD] == ["请配合 DB-2026-0001"]  # 王建华 is asked to help, once
    assert LIAISON not in sent  # 县住建局 is not the lead: its liaison hears nothing


def test_the_leading_mention_is_the_target_whatever_order_dingtalk_lists_them(sim):
    text = "交办 @王建华 燃气管道隐患排查，请@林涛 配合 截止12月10日"
    say(sim, text, (EDU_HEAD, HEAD), ("王建华", "林涛"))
    assert lead_and_title(sim) == ("县住建局", "燃气管道隐患排查，请@林涛 配合")
    sent = dms(sim)
    assert sent[HEAD] == sent[LIAISON] == ["新交办事项 DB-2026-0001"]
    assert sent[EDU_HEAD] == ["请配合 DB-2026-0001"]


def test_a_unit_name_written_after_at_is_that_unit_even_with_other_mentions(sim):
    say(sim, "交办 @县教育局 校园安全隐患排查，请@王建华 配合 截止12月10日", (HEAD,), ("王建华",))
    assert lead_and_title(sim) == ("县教育局", "校园安全隐患排查，请@王建华 配合")


def test_a_leading_mention_that_could_be_either_person_is_a_question(sim_any):
    before = dump(sim_any.engine)
    replies = say(sim_any, "交办 @王局长 燃气管道隐患排查，请@林局长 配合 截止12月10日", (HEAD, EDU_HEAD),
                  ("王局长", "林局长"))
    assert [r.text for r in replies] == [
        "「@王局长」不知指哪一位（王建华（县住建局）、林涛（县教育局）），请把责任单位写在最前面，"
        "例如：交办 县住建局 燃气管道隐患排查并报送整改清单 截止12月10日"]
    assert dump(sim_any.engine) == before


def test_a_lone_mention_needs_no_matching_name(sim):
    say(sim, "交办 @王局长 燃气管道隐患排查 截止12月10日", (HEAD,), ("王局长",))
    assert lead_and_title(sim) == ("县住建局", "燃气管道隐患排查")
