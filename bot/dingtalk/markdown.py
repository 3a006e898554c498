"""How a Reply's extras look in DingTalk markdown: @-mentions and one-tap action links."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from message_templates.reply import Action


def action_link(action: Action) -> str:
    """A link the DingTalk client answers by sending `command` to the bot, as if the user typed it."""
    return f"[{action.label}](dtmd://dingtalkclient/sendMessage?content={quote(action.command, safe='')})"


def compose(text: str, actions: Sequence[Action] = (), at_user_ids: Sequence[str] = ()) -> str:
    """The text, then the "@userId" tokens DingTalk needs in a markdown body for `at.atUserIds` to
    notify (the client shows them as names), then the action links on one line."""
    parts = [text.rstrip()]
    if at_user_ids:
        parts.append(" ".join(f"@{user_id}" for user_id in at_user_ids))
    if actions:
        parts.append("　".join(action_link(action) for action in actions))
    return "\n\n".join(part for part in parts if part)
