"""Which interactive card an outbox row shows, and where each card was shown.

A row whose actions act on a task is a card: its key says what the card is about — "t.42" the task
for its unit (签收 进展 延期 办结), "r.42" its review (销号 退回), "x.42" an extension request
(同意 驳回), "n.DB-2026-0042-Y1" a draft for signature (签发 暂缓). Each row that shows a card gets
an outTrackId of its own (rows due together in one chat share one: they fold into one card), and
every card shown for a key is updated in place when what it is about changes (reminders/cards.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, true
from sqlmodel import Session, select

from message_templates.reply import Action, Reply
from storage.models import Outbox, OutboxStatus
from storage.queries import among

NEW_CARDS = "duban_new_cards"  # session.info key: the cards this transaction made
KINDS = {"签收": "t", "进展": "t", "延期": "t", "办结": "t", "销号": "r", "退回": "r",
         "同意延期": "x", "驳回延期": "x", "签发": "n", "暂缓": "n"}


def card_key(actions: Sequence[Action], task_id: int | None) -> str | None:
    if not actions or task_id is None:
        return None
    word, _, rest = actions[0].command.strip().partition(" ")
    kind = KINDS.get(word)
    if kind is None or not rest:
        return None
    return f"n.{rest.split()[0]}" if kind == "n" else f"{kind}.{task_id}"


def place(session: Session, row: dict[str, Any], placed: dict[tuple, str] | None = None,
          fetched: bool = False) -> None:
    """Give a new row's columns (storage/outbox.py outbox_values) their card: the card of a row still
    waiting in the same chat for the same moment (they will fold into one), or a new one. `placed`
    holds the cards given to rows not yet written (the engine's batch), by chat and moment; `fetched`:
    it also holds every waiting card of the row's task already written (`waiting_cards`), so the
    database need not be asked again."""
    # a plain row (a colour notice) is a message, whose read status DingTalk reports: never a card
    key = None if row.get("plain") else card_key([Action(label, command) for label, command in row["actions"]],
                                                  row["task_id"])
    row["card_key"], row["card_id"], row["card_update"] = key, None, False
    if key is None:
        return
    lane = (key, row["target"], row["recipient"], row["deliver_after"])
    card_id = placed.get(lane) if placed is not None else None
    if card_id is None and fetched:
        card_id = f"duban.{key}.{uuid.uuid4().hex[:12]}"
    elif card_id is None:  # rows already written come first: they have the lowest ids
        card_id = session.exec(select(Outbox.card_id).where(
            Outbox.card_key == key, Outbox.target == row["target"], Outbox.recipient == row["recipient"],
            Outbox.deliver_after == row["deliver_after"], Outbox.status == OutboxStatus.PENDING,
            Outbox.card_update.is_(False), Outbox.card_id.is_not(None)).order_by(Outbox.id)
        ).first() or f"duban.{key}.{uuid.uuid4().hex[:12]}"
    if placed is not None:
        placed[lane] = card_id
    row["card_id"] = card_id
    session.info.setdefault(NEW_CARDS, set()).add(card_id)


def waiting_cards(session: Session, task_ids: Sequence[int]) -> dict[tuple, str]:
    """The cards of rows still waiting for these tasks, by (key, chat, moment) as `place` looks them
    up — the first row's card of each — in one query, for a batch that places many rows."""
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = session.exec(select(Outbox.card_key, Outbox.target, Outbox.recipient, Outbox.deliver_after,
                               Outbox.card_id).where(
        among(Outbox.task_id, task_ids, postgres), Outbox.card_key.is_not(None), Outbox.status == OutboxStatus.PENDING,
        Outbox.card_update.is_(False), Outbox.card_id.is_not(None)).order_by(Outbox.id.desc()))
    return {(key, target, recipient, after): card_id for key, target, recipient, after, card_id in rows}


@dataclass(frozen=True)
class Shown:
    card_id: str
    key: str
    target: str
    recipient: str
    deliver_after: datetime  # an update must not overtake the card's own creation
    last: tuple | None = None  # (card_update, title, text, actions) of the card's newest row, when read


_OUTBOX = Outbox.__table__


def _shown_statement(lateral: bool):
    """The cards shown for some keys, each with its newest row (what it shows or will), in one
    statement: refresh runs it after every command. The newest row is found per card through the
    card_key index, as the single-card query did, however many updates the card has had: on
    PostgreSQL through LATERAL (a join on a correlated subquery makes it hash the whole outbox),
    on SQLite, which has no LATERAL, through that join (which it runs as a lookup per card)."""
    newest = _OUTBOX.alias("newest")
    of_card = (newest.c.card_key == _OUTBOX.c.card_key, newest.c.card_id == _OUTBOX.c.card_id)
    if lateral:
        last = (select(newest.c.card_update, newest.c.title, newest.c.text, newest.c.actions).where(*of_card)
                .order_by(newest.c.id.desc()).limit(1).lateral("last"))
        joined = _OUTBOX.outerjoin(last, true())
    else:
        last = _OUTBOX.alias("last")
        joined = _OUTBOX.outerjoin(last, last.c.id == select(newest.c.id).where(*of_card)
                                   .order_by(newest.c.id.desc()).limit(1).scalar_subquery())
    return (select(_OUTBOX.c.card_id, _OUTBOX.c.card_key, _OUTBOX.c.target, _OUTBOX.c.recipient,
                   _OUTBOX.c.deliver_after, last.c.card_update, last.c.title, last.c.text, last.c.actions)
            .select_from(joined)
            .where(_OUTBOX.c.card_key.in_(bindparam("keys", expanding=True)), _OUTBOX.c.card_update.is_(False),
                   _OUTBOX.c.status != OutboxStatus.DEAD)
            .order_by(_OUTBOX.c.id))


_SHOWN = {"postgresql": _shown_statement(lateral=True), "sqlite": _shown_statement(lateral=False)}


def shown(session: Session, keys: Sequence[str]) -> list[Shown]:
    """Every card shown (or about to be) for these keys, with its newest row; a card that never could
    be is left out."""
    statement = _SHOWN["postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"]
    rows = session.execute(statement, {"keys": list(keys)})
    return list({card_id: Shown(card_id, key, target, recipient, after,
                                None if update is None else (update, title, text, actions))
                 for card_id, key, target, recipient, after, update, title, text, actions in rows}.values())


def update(session: Session, changes: Sequence[tuple[Shown, Reply]], now: datetime) -> int:
    """Queue each reply as its card's new content, unless the card already shows (or will) exactly
    it; returns how many were queued. Each card's newest row is the one `shown` read with it."""
    made = session.info.get(NEW_CARDS, ())
    rows = []
    for card, reply in changes:
        if card.card_id in made:
            continue  # made in this very transaction: it already says what is current
        actions = [[a.label, a.command] for a in reply.actions]
        if card.last is not None and card.last[0] and card.last[1:] == (reply.title, reply.text, actions):
            continue
        rows.append({"target": card.target, "recipient": card.recipient, "at_user_ids": [], "title": reply.title,
                     "text": reply.text, "actions": actions, "deliver_after": max(now, card.deliver_after),
                     "created_at": now, "card_key": card.key, "card_id": card.card_id, "card_update": True})
    if rows:  # Core, in one statement: nothing reads these rows back as objects
        session.execute(_OUTBOX.insert(), rows)
    return len(rows)
