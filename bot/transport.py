"""What bot/dingtalk (and the console, the tests) implement to carry the outbox's messages.

No SQL and no rendering here: bot/dingtalk imports this, never bot/outbox.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from message_templates.reply import Action

# DingTalk publishes no rate for app robots; what it does publish is a per-API and per-IP ceiling
# shared with everyone (errcode 90002), a monthly call quota for small organisations (90020) and,
# for custom webhook robots, 20 messages a minute per group. So we stay far below any per-API
# figure (5 calls/s overall: a county's few hundred notices a day never wait long) and borrow the
# webhook robots' 20/min as a per-group ceiling, the closest published number for a group.
DEFAULT_RATE_PER_SECOND = 5.0


@dataclass(frozen=True)
class Attachment:
    """A text file sent right after the message's markdown, in the same chat (a digest's full text)."""

    file_name: str  # an .xlsx: a file type DingTalk's sampleFile takes
    items: tuple[tuple[str, str], ...]  # (title, whole text) of each row, one spreadsheet row each


@dataclass(frozen=True)
class OutgoingMessage:
    """One call on the wire: due rows for one recipient folded together, or — when the transport
    batches (`max_batch` > 1) — identical content for several users at once."""

    target: str  # "user" or "group"
    recipients: tuple[str, ...]
    title: str
    text: str
    at_user_ids: tuple[str, ...]
    actions: tuple[Action, ...]
    image_path: str | None
    file_path: str | None
    outbox_ids: tuple[int, ...]
    card_id: str | None = None  # the interactive card it shows (outTrackId), when it is one
    card_update: bool = False  # it only updates that card in place
    ding_remind_type: int | None = None  # a DING (robot/ding/send), not a chat message
    attachment: Attachment | None = None  # a digest's full text, as a file after the markdown
    plain: bool = False  # a chat message even when cards are on (Outbox.plain: a colour notice)

    @property
    def recipient(self) -> str:
        """The recipient of a message that is not batched (every message, for a 1-batch transport)."""
        return self.recipients[0]


class SendError(Exception):
    """`maybe_delivered`: the request left and no answer came back (a read timeout, a connection
    dropped after sending), so DingTalk may have acted on it; retrying it may duplicate it.
    `credentials`: DingTalk refused the app's own credentials — nothing to do with the message, so
    it is transient (the operator fixes the secret; the notices wait, they are not given up).
    `undeliverable`: DingTalk refused this recipient (not a person it can reach): never sent."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None,
                 maybe_delivered: bool = False, credentials: bool = False, undeliverable: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered
        self.credentials = credentials
        self.undeliverable = undeliverable


class SendResult(dict[str, SendError]):
    """What a transport may return: the recipients that failed (as a plain mapping does), and
    the key DingTalk gave to ask later who read the message (processQueryKey, openDingId)."""

    def __init__(self, failures: Mapping[str, SendError] | None = None, receipt_key: str | None = None) -> None:
        super().__init__(failures or {})
        self.receipt_key = receipt_key


class Transport(Protocol):
    async def send(self, message: OutgoingMessage) -> Mapping[str, SendError] | None:
        """Deliver, or raise SendError when nothing was delivered. A batch that reached only some
        recipients returns the others' errors by recipient. A transport with a `max_batch` int
        attribute above 1 may be given that many user recipients in one message."""
