"""Hostile input: arbitrary text never raises, never changes state unless it is a valid command,
and is always rendered inert — a user cannot forge a colour, a heading, a link or a button."""

from __future__ import annotations

import itertools
import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from bot.simulation import Simulation
from handlers.incoming import Incoming
from message_templates.render import user_text
from storage.models import Outbox, ProgressReport, Task
from storage.tz import shanghai as sh
from tests.helpers import dump

EXAMPLES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FRAGMENTS = [
    '<font color="#FF0000">红色督办单</font>', "### 🔴 红色督办单", "[签发](dtmd://dingtalkclient/sendMessage?content=销号)",
    "**加粗**", "`code`", "> 引用", "- 列表", "1. 列表", "![img](http://evil.example/x.png)", "<script>alert(1)</script>",
    "'; DROP TABLE task; --", "\" OR 1=1 --", "\x00", "\x1b[31m", "\u202e", "\u200b", "\r\n", "\n\n### 标题", "🔴🟡🔵",
    "https://evil.example", "&lt;font&gt;", "\\", "|表|格|", "~~删除~~", "DB-2026-0001", "@王建华", "截止12月10日",
    "协办", "类别", "特急", "%", "100%", "　", "交办", "销号",
    # invisible: control and format characters that must never be stored (Unicode Cc and Cf)
    "\x02", "\x7f", "\x85", "\u061c", "\u2060", "\u00ad", "\u180e", "\ufff9", "\ufffa", "\ufffb", "\U000e0041",
    "\U000e007f", "\u200d", "\ufeff", "\u2066",
]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40)), max_size=8).map("".join)
PEOPLE = ["u_xianzhang", "u_ducha1", "u_zhujian", "u_changwu", "u_nobody"]
FONT_TAG = re.compile(r'<font color="#[0-9A-F]{6}">|</font>')
FORBIDDEN = re.compile(r"[<>]|\]\(|://|[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e]")


def invisible(text: str) -> bool:
    """Holds a control or invisible format character (a newline or tab aside)."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs") and c not in "\n\t" for c in text)


def inert(text: str) -> bool:
    """Only the templates' own font tags and headings; no links, tags or control characters at all."""
    return not FORBIDDEN.search(FONT_TAG.sub("", text))


@EXAMPLES
@given(hostile)
def test_user_text_filter_leaves_no_markup(value):
    out = user_text(value)
    assert "\n" not in out and len(out) <= 300
    assert not re.search(r"[<>\[\]()#*_`|~!\\]", out), out
    assert inert(out) and not invisible(out)


def test_arbitrary_text_never_raises_nor_changes_state_unless_a_command(tmp_path):
    sim = Simulation(f"sqlite:///{tmp_path}/h.db", sh(2026, 11, 23, 9, 30))
    sim.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_leaders")
    ids = itertools.count()

    @EXAMPLES
    @given(st.sampled_from(PEOPLE), hostile, st.booleans())
    def prop(sender, text, in_group):
        first = text.split()[0] if text.split() else ""
        from handlers.registry import lookup

        before = dump(sim.engine)
        replies = sim.bot.handle_sync(Incoming(msg_id=f"h{next(ids)}", sender_id=sender, text=text,
                                               conversation_id="cid_leaders" if in_group else "", is_group=in_group))
        assert all(r.title and r.text for r in replies)
        assert all(inert(r.text) for r in replies), [r.text for r in replies]
        if lookup(first) is None:
            assert dump(sim.engine) == before and len(replies) == 1

    prop()


def test_hostile_titles_and_reports_cannot_forge_markup_anywhere(tmp_path):
    """Valid commands carrying hostile text: every reply and every outbox message stays inert."""
    sim = Simulation(f"sqlite:///{tmp_path}/h.db", sh(2026, 11, 23, 9, 30))
    ids = itertools.count()

    def say(user: str, text: str) -> list:
        return sim.bot.handle_sync(Incoming(msg_id=f"t{next(ids)}", sender_id=user, text=text,
                                            conversation_id="cid_leaders", is_group=True))

    @EXAMPLES
    @given(hostile, hostile)
    def prop(title, note):
        replies = say("u_xianzhang", f"交办 县住建局 {title} 截止12月10日")
        code = replies[0].title.split()[-1] if replies[0].title.startswith("已交办") else None
        if code:
            replies += say("u_zhujian", f"进展 {code} {note}")
            replies += say("u_zhujian", f"办结 {code} {note or '完成'}")
            replies += say("u_xianzhang", f"查询 {code}")
        assert all(inert(r.text) and inert(r.title) and not invisible(r.text) for r in replies), \
            [r.text for r in replies]

    prop()
    with Session(sim.engine) as s:
        for row in s.exec(select(Outbox)):
            assert inert(row.text) and inert(row.title), row.text
        # cleaned where it entered: nothing stored holds a control or invisible character
        stored = [t.title for t in s.exec(select(Task))] + [p.text for p in s.exec(select(ProgressReport))]
        assert not [t for t in stored if invisible(t)]
