"""Renders message_templates/*.j2 into Replies. The words live in the templates, not here.

A template may `{% set title = "…" %}` for the message title (DingTalk shows it in the chat list).
Every value a user typed must pass through the `u` filter, which neutralises DingTalk markdown
and HTML so user text can never forge a colour, a heading, a link or a button.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING

from message_templates.reply import Action, Reply

if TYPE_CHECKING:
    from jinja2 import Environment

WEEKDAYS = "一二三四五六日"

# Characters that carry meaning in DingTalk markdown or HTML, mapped to their full-width twins:
# they read naturally in Chinese text and have no markup meaning.
_NEUTRAL = str.maketrans({
    "<": "＜", ">": "＞", "[": "［", "]": "］", "(": "（", ")": "）", "#": "＃", "*": "＊",
    "_": "＿", "`": "｀", "|": "｜", "~": "～", "!": "！", "&": "＆", "\\": "＼", "=": "＝",
})
# Unicode categories of characters that are never text a person meant: control (Cc), invisible format
# (Cf: zero-width, bidi, soft hyphen, tags, …) and lone surrogates (Cs, which no database can encode).
INVISIBLE = frozenset({"Cc", "Cf", "Cs"})
_SPACES = re.compile(r"\s+")
MAX_USER_TEXT = 300


def drop_invisible(text: str) -> str:
    """`text` without control and invisible format characters. Whitespace (newline, tab, …) stays:
    it separates words, and the callers collapse it."""
    return "".join(c for c in text if c.isspace() or unicodedata.category(c) not in INVISIBLE)


def user_text(value: object, limit: int = MAX_USER_TEXT) -> str:
    """User-supplied text made inert: one line, no markup, no control characters, bounded length.
    Chat input is already cleaned at the edge (handlers.parsing.clean_incoming); this also covers
    text from elsewhere (the roster, rows stored before that)."""
    text = _SPACES.sub(" ", drop_invisible(str(value))).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.translate(_NEUTRAL)
    # a URL scheme would still be auto-linked by some clients: break the "://" that makes it one
    return text.replace("://", "：//")


def weekday(value: date) -> str:
    """周一 … 周日: the one weekday formatter (messages, deadlines, the console's time stamp)."""
    return f"周{WEEKDAYS[value.weekday()]}"


def md_date(value: datetime | date | None, with_time: bool = True) -> str:
    if value is None:
        return "—"
    text = f"{value.month}月{value.day}日（{weekday(value)}）"
    if with_time and isinstance(value, datetime):
        text += f"{value:%H:%M}"
    return text


def md_datetime_full(value: datetime | None) -> str:
    return "—" if value is None else f"{value.year}年{md_date(value)}"


ROLE_NAMES = {
    "county_head": "县长", "executive_deputy": "常务副县长", "deputy": "副县长", "office_director": "县政府办主任",
    "supervisor": "县政府督查室", "unit_head": "单位主要负责人", "liaison": "单位联络员", None: "未登记人员",
}
STATUS_NAMES = {"assigned": "待签收", "in_progress": "办理中", "reported_done": "待销号", "closed": "已销号",
                "cancelled": "已撤销"}
COLOUR_NAMES = {"blue": "🔵蓝色", "yellow": "🟡黄色", "red": "🔴红色", None: "⚪未督办"}


@cache
def _env() -> Environment:
    # jinja2 loads with the first message rendered, not with every process that imports this module
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("message_templates", ""),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,  # markdown, not HTML: escaping is the explicit `u` filter
        # the templates ship with the code and change only with a new release: without this every
        # render stat()s its template and each one it imports (a tenth of a notice's rendering)
        auto_reload=False,
    )
    env.filters["u"] = user_text
    env.filters["d"] = md_date
    env.filters["dd"] = lambda v: md_date(v, with_time=False)
    env.filters["full"] = md_datetime_full
    env.globals.update(ROLE_NAMES=ROLE_NAMES, STATUS_NAMES=STATUS_NAMES, COLOUR_NAMES=COLOUR_NAMES)
    return env


def render(name: str, *, actions: tuple[Action, ...] = (), at_user_ids: tuple[str, ...] = (), **data) -> Reply:
    template = _env().get_template(f"{name}.md.j2")
    module = template.make_module(data)
    text = str(module).strip()
    title = getattr(module, "title", None) or text.splitlines()[0].lstrip("#").strip()[:40]
    return Reply(title=title, text=text, at_user_ids=at_user_ids, actions=actions)
