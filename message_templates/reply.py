"""What the bot says back: a Reply (markdown, mentions, one-tap Actions, a file). Every layer builds them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Action:
    """A one-tap link under a message: the client sends `command` to the bot as if typed."""

    label: str
    command: str


@dataclass(frozen=True)
class Reply:
    title: str
    text: str  # DingTalk markdown
    at_user_ids: tuple[str, ...] = ()
    actions: tuple[Action, ...] = field(default=())
    file_path: str | None = None  # a file to send along (the Excel 台账)
