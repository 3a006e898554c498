"""The seam between a transport (DingTalk stream, console, tests) and the handlers.

A transport turns what it receives into an Incoming, calls handlers.dispatch, and delivers the
Replies back where the message came from. It never decides anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Incoming:
    msg_id: str
    sender_id: str  # DingTalk userId (staffId)
    text: str  # the message text with the robot's own @mention removed
    conversation_id: str = ""  # openConversationId; "" for a one-to-one chat
    is_group: bool = False
    sender_name: str = ""
    at_user_ids: tuple[str, ...] = ()  # userIds of the people @-mentioned (the robot excluded)
    at_names: tuple[str, ...] = ()  # their display names as written after "@", when known
    session_webhook: str = ""
    received_at: datetime | None = None
    # a tap on a card button whose command needs words (进展, 延期 …): ask for them, run nothing yet
    asks: bool = False
