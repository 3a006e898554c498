"""Reliable delivery of what the handlers and the engine wrote to the outbox: folding, batching,
pacing, retry and the sender loop. The rows' state (enqueue, claim, mark) is storage/outbox.py's.

A row is written in the same transaction as the change that caused it, so nothing is lost.
Delivery claims rows under a lease (row locks with SKIP LOCKED on PostgreSQL; SQLite serialises
writers), sends, then marks them sent. A process that dies after DingTalk accepted a send and
before the mark leaves the row claimed; when the lease runs out it is sent again — the one
duplicate our guarantee admits (DingTalk's send APIs take no idempotency key).

The lease is only for the dead. A live worker whose mark fails after DingTalk's 200 (the database
locked, a dropped connection) retries the mark — never the send — until it lands, and renews its
lease on the rows it holds meanwhile, so no other worker takes them over. Two more ways a message
may arrive twice are counted in `storage.outbox.COUNTERS` and logged with "possible duplicate": a send whose
answer never came (a read timeout, a connection dropped after the request went out), which is
retried because an unknown outcome must not lose a notice; and a row taken over after a lease ran
out.

Order: each recipient (a user, or a group) gets its messages in (deliver_after, id) order. A
retried row keeps its deliver_after, so it keeps its place; `claimed_until` is the row's "not
before" time — the lease end while SENDING, the next retry while PENDING. A recipient whose
earliest undelivered row is backing off, or claimed by another live worker, gets nothing newer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from aiolimiter import AsyncLimiter
from sqlalchemy.engine import Engine

from bot.clock import Clock
from bot.transport import DEFAULT_RATE_PER_SECOND, Attachment, OutgoingMessage, SendError, Transport
from message_templates.render import render
from message_templates.reply import Action
from reminders.card_updates import render_stale
from storage.models import Outbox
from storage.outbox import LEASE, claim_due, mark_failed, mark_sent, release, renew_lease
from storage.tz import SHANGHAI

log = logging.getLogger(__name__)

# DingTalk rejects a group message whose msgParam exceeds 15,000 bytes; folding stops well short,
# leaving room for the title, the action links and JSON escaping.
MAX_FOLDED_TEXT_BYTES = 12_000
# A recipient's text rows due at one moment go as at most this many folded messages; more, and
# they go as one digest with their whole text attached (`_digest`): one person, one message.
MAX_MESSAGES_PER_MOMENT = 2
# A card is one task's live panel with its buttons: a handful due together still reads as a list of
# tasks; more (the burst after a holiday) go as one digest too, whose links lead to 我的 and 台账.
MAX_CARDS_PER_MOMENT = 5
DIGEST_TEMPLATE = "outbox_digest"
DIGEST_LISTED = 20  # the digest names this many rows, the most severe first: short enough to read
DIGEST_ACTIONS = (Action("我的", "我的"), Action("台账", "台账"))
SEVERITY = ("🔴", "🟡", "🔵")  # the colour notices first, red before yellow before blue
GROUP_MESSAGES_PER_MINUTE = 20  # borrowed from webhook robots: see DEFAULT_RATE_PER_SECOND
# After DingTalk's 200, a failed mark is tried again after 0.05 s, doubling up to 5 s: the rows are
# sent, so there is no reason to wait long, and nothing else goes out of this round meanwhile.
MARK_RETRY_FIRST_SECONDS = 0.05
MARK_RETRY_CAP_SECONDS = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 2.0
    cap_seconds: float = 600.0
    # A transiently failing row (DingTalk down, throttled) is given up on — DEAD, and the 督查室
    # told — only after both many attempts and days since it fell due: an outage far longer than
    # any DingTalk has had. Both, so that rows that fell due while the bot itself was down are
    # not given up on at their first failure after it comes back.
    max_attempts: int = 20
    give_up_after: timedelta = timedelta(days=3)

    def gives_up(self, attempts: int, due: datetime, now: datetime) -> bool:
        return attempts >= self.max_attempts and now - due >= self.give_up_after

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> timedelta:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        # "equal jitter": never immediate, and rows that failed together do not retry together
        jitter = rng.uniform(0, ceiling / 2)
        seconds = ceiling / 2 + jitter
        if retry_after is not None:
            seconds = max(seconds, retry_after + jitter)  # never earlier than DingTalk asked
        return timedelta(seconds=seconds)


class SendPacer:
    """Paces calls to DingTalk: one overall rate, and a ceiling per group conversation."""

    def __init__(self, per_second: float = DEFAULT_RATE_PER_SECOND,
                 group_per_minute: float = GROUP_MESSAGES_PER_MINUTE) -> None:
        if per_second <= 0 or group_per_minute <= 0:
            raise ValueError("rates must be positive")
        # a bucket must hold at least one call: below 1/s, one call per 1/rate seconds
        self._all = AsyncLimiter(per_second, 1) if per_second >= 1 else AsyncLimiter(1, 1 / per_second)
        self._group_per_minute = group_per_minute
        self._groups: dict[str, AsyncLimiter] = {}

    async def wait(self, message: OutgoingMessage) -> None:
        if message.target == "group":
            limiter = self._groups.setdefault(message.recipient, AsyncLimiter(self._group_per_minute, 60))
            await limiter.acquire()
        await self._all.acquire()


def fold(rows: Sequence[Outbox], cards: bool = False) -> list[OutgoingMessage]:
    """One message per recipient and moment: several notices due together arrive as one. With
    `cards` (the transport shows interactive cards) a card's rows fold into that card, and all the
    updates due for one card fold into one, its newest.

    More rows at one moment than fit in MAX_MESSAGES_PER_MOMENT messages (MAX_CARDS_PER_MOMENT
    cards) go as one digest (`_digest`), which then also stands for the updates due for the cards
    it kept from being shown."""
    groups: dict[tuple, list[Outbox]] = {}
    for row in rows:
        if row.card_update:
            key: tuple = (row.target, row.recipient, "update", row.card_id)
        else:
            key = (row.target, row.recipient, row.deliver_after)
        groups.setdefault(key, []).append(row)
    messages: list[OutgoingMessage] = []
    digested: dict[tuple[str, str, str], int] = {}  # a card a digest replaced → that digest's place
    for key, members in groups.items():
        target, recipient = key[0], key[1]
        if key[2] == "update":
            ids = tuple(m.id for m in members if m.id is not None)
            if (at := digested.get((target, recipient, key[3]))) is not None:  # never shown: nothing to update
                messages[at] = replace(messages[at], outbox_ids=messages[at].outbox_ids + ids)
            else:
                messages.append(_message(target, recipient, [members[-1]], key[3], update=True, ids=ids))
            continue
        # files and images travel alone, DINGs by their own API: neither can be folded into text
        texts = [m for m in members if not (m.image_path or m.file_path or m.ding_remind_type)]
        shown = _shown(texts, cards)
        shown_cards = sum(1 for card_id, _ in shown if card_id)
        if len(shown) - shown_cards > MAX_MESSAGES_PER_MOMENT or shown_cards > MAX_CARDS_PER_MOMENT:
            messages.append(_digest(target, recipient, texts))
            digested.update({(target, recipient, m.card_id): len(messages) - 1 for m in texts if m.card_id})
        else:
            messages += [_message(target, recipient, chunk, card_id) for card_id, chunk in shown]
        # after the text, one per row: each DING points at its own notice, already in the chat
        messages += [_message(target, recipient, [m], m.card_id if cards else None)
                     for m in members if m.image_path or m.file_path or m.ding_remind_type]
    return messages


def _shown(rows: list[Outbox], cards: bool) -> list[tuple[str | None, list[Outbox]]]:
    """How a moment's text rows would be shown: each card's rows folded into it (with `cards`),
    the rest folded into messages up to the size DingTalk takes; with `cards`, a plain row (a colour
    notice, whose read receipt is evidence) folds only with plain rows, into a message, never a card."""
    by_card: dict[tuple[str | None, bool], list[Outbox]] = {}
    for row in rows:
        by_card.setdefault((row.card_id, row.plain) if cards else (None, False), []).append(row)
    return [(card_id, chunk) for (card_id, _), members in by_card.items() for chunk in _by_size(members)]


def _message(target: str, recipient: str, chunk: list[Outbox], card_id: str | None, *, update: bool = False,
             ids: tuple[int, ...] | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        target=target,
        recipients=(recipient,),
        title=chunk[0].title if len(chunk) == 1 else f"{chunk[0].title}（共{len(chunk)}条）",
        text="\n\n---\n\n".join(m.text for m in chunk),
        at_user_ids=tuple(dict.fromkeys(u for m in chunk for u in m.at_user_ids)),
        # a folded message shows each action once, not once per notice in it
        actions=tuple(dict.fromkeys(Action(label, cmd) for m in chunk for label, cmd in m.actions)),
        image_path=chunk[0].image_path,
        file_path=chunk[0].file_path,
        outbox_ids=ids if ids is not None else tuple(m.id for m in chunk if m.id is not None),
        card_id=card_id,
        card_update=update,
        ding_remind_type=chunk[0].ding_remind_type,
        plain=chunk[0].plain,
    )


def _digest(target: str, recipient: str, rows: list[Outbox]) -> OutgoingMessage:
    """Dozens of messages at one moment (the 09:00 burst after a holiday, a province-sized roster)
    help no one: one short summary goes instead, counts by kind and the most severe items first,
    with a file holding every row's whole text (sent just before it, in the same chat).

    Every kind may be summarised here, the colour notices included, because none loses its text:
    a 蓝/黄/红 notice is a formal document (it is scored, and 黄/红 are signed), so its full wording
    still reaches the head — verbatim, in the attached file the digest names — on the same moment,
    and the digest's read receipt stands for each row as a folded message's does. A card's rows
    go into it too (the card is then never shown: storage.outbox.mark_sent stops updates looking
    for it). What never goes into a digest: DINGs (an alert by its own API, each naming its
    notice) and files and images (sent as themselves)."""
    ordered = sorted(rows, key=lambda m: _severity(_label(m.title)))  # stable: row order within a kind
    counts = Counter(_label(m.title) for m in rows)
    listed = [m.title for m in ordered[:DIGEST_LISTED]]
    moment = rows[0].deliver_after.astimezone(SHANGHAI)
    file_name = f"督办消息全文_{moment:%m月%d日%H%M}.xlsx"
    reply = render(DIGEST_TEMPLATE, total=len(rows), file_name=file_name, listed=listed, rest=len(rows) - len(listed),
                   counts=sorted(counts.items(), key=lambda item: (_severity(item[0]), -item[1])),
                   actions=DIGEST_ACTIONS)
    return OutgoingMessage(
        target=target, recipients=(recipient,), title=reply.title, text=reply.text,
        at_user_ids=tuple(dict.fromkeys(u for m in rows for u in m.at_user_ids)), actions=reply.actions,
        image_path=None, file_path=None, outbox_ids=tuple(m.id for m in rows if m.id is not None),
        attachment=Attachment(file_name, tuple((m.title, m.text) for m in rows)),
    )


def _label(title: str) -> str:
    """A row's kind, from its title: "🔵 蓝色督办单 DB-2026-0042-B1" → "🔵 蓝色督办单" (the templates
    end a notice's title with its code); a title without a code is its own kind."""
    head, _, tail = title.rpartition(" ")
    return head if head and any(c.isdigit() for c in tail) else title


def _severity(label: str) -> int:
    return next((rank for rank, mark in enumerate(SEVERITY) if mark in label), len(SEVERITY))


def _by_size(rows: list[Outbox]) -> list[list[Outbox]]:
    chunks: list[list[Outbox]] = []
    size = 0
    for row in rows:
        length = len(row.text.encode())
        if not chunks or size + length > MAX_FOLDED_TEXT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += length
    return chunks


def batch(messages: Sequence[OutgoingMessage], max_batch: int) -> list[list[OutgoingMessage]]:
    """Order folded messages into rounds — each recipient's n-th message in round n — and merge,
    within a round, user messages with identical content into one call of up to max_batch users.
    Merging only within a round keeps every recipient's order, whatever gets merged."""
    depth: dict[tuple[str, str], int] = defaultdict(int)
    rounds: list[list[OutgoingMessage]] = []
    for message in messages:
        lane = (message.target, message.recipient)
        if depth[lane] == len(rounds):
            rounds.append([])
        rounds[depth[lane]].append(message)
        depth[lane] += 1
    return rounds if max_batch <= 1 else [_merge_same(round_, max_batch) for round_ in rounds]


def _merge_same(messages: list[OutgoingMessage], max_batch: int) -> list[OutgoingMessage]:
    order: list[OutgoingMessage | tuple] = []  # a group message, or the content key of user messages
    same: dict[tuple, list[OutgoingMessage]] = {}
    for message in messages:
        if message.target != "user":
            order.append(message)
            continue
        key = (message.title, message.text, message.actions, message.image_path, message.file_path,
               message.card_update, message.ding_remind_type, message.plain, message.attachment)
        if key not in same:
            same[key] = []
            order.append(key)
        same[key].append(message)
    merged = []
    for item in order:
        if isinstance(item, OutgoingMessage):
            merged.append(item)
            continue
        members = same[item]
        for start in range(0, len(members), max_batch):
            chunk = members[start:start + max_batch]
            merged.append(replace(
                chunk[0],
                recipients=tuple(m.recipient for m in chunk),
                outbox_ids=tuple(row_id for m in chunk for row_id in m.outbox_ids),
            ))
    return merged


@dataclass
class _Round:
    """What one deliver_due call needs to share between its concurrent sends."""

    engine: Engine
    transport: Transport
    now: datetime
    clock: Callable[[], datetime]  # the time while the round runs (lease renewals)
    worker: str
    pacer: SendPacer | None
    policy: RetryPolicy
    rng: random.Random
    deadline: float
    slots: asyncio.Semaphore
    rows: dict[int, Outbox]
    failed_lanes: set[tuple[str, str]] = field(default_factory=set)
    sent: int = 0


async def deliver_due(
    engine: Engine,
    transport: Transport,
    now: datetime,
    worker: str,
    *,
    pacer: SendPacer | None = None,
    policy: RetryPolicy | None = None,
    rng: random.Random | None = None,
    concurrency: int = 1,
    clock: Clock | None = None,
) -> int:
    """Send everything due at `now`; returns how many messages (calls) went out. `clock` tells the
    time later in the round (by default: `now` plus the time elapsed since)."""
    # database work runs in threads: a SQLite writer waiting on its lock must not stall the stream
    await asyncio.to_thread(render_stale, engine, now)  # cards whose task changed: their updates join this round
    rows = await asyncio.to_thread(claim_due, engine, now, worker)
    if not rows:
        return 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    state = _Round(
        engine=engine, transport=transport, now=now, worker=worker, pacer=pacer,
        clock=clock.now if clock else lambda: now + timedelta(seconds=loop.time() - started),
        policy=policy or RetryPolicy(), rng=rng or random.Random(), slots=asyncio.Semaphore(concurrency),
        # stop starting sends well before the lease ends, so no other worker can take a row we send
        deadline=loop.time() + LEASE.total_seconds() / 2, rows={row.id: row for row in rows},
    )
    shows_cards = getattr(transport, "shows_cards", False)
    for round_ in batch(fold(rows, shows_cards), getattr(transport, "max_batch", 1)):
        await asyncio.gather(*(_send_one(state, message) for message in round_))
    return state.sent


async def _send_one(state: _Round, message: OutgoingMessage) -> None:
    lanes = {(message.target, r) for r in message.recipients}
    # The slot is held until the outcome is recorded: only `concurrency` sends (one by default) can
    # ever sit between DingTalk's 200 and our commit, so a crash duplicates at most that many.
    async with state.slots:
        if lanes & state.failed_lanes or asyncio.get_running_loop().time() > state.deadline:
            # an earlier message to one of these recipients failed in this round (or time is up):
            # hand the rows back untouched, behind the failed one
            state.failed_lanes |= lanes
            await asyncio.to_thread(release, state.engine, message.outbox_ids, state.worker)
            return
        if state.pacer:
            await state.pacer.wait(message)
        receipt_key = None
        try:
            result = await state.transport.send(message)  # an empty SendResult is falsy: no `or`
            receipt_key = getattr(result, "receipt_key", None)
            failures = dict(result or {})
        except SendError as exc:
            failures = dict.fromkeys(message.recipients, exc)
        except Exception as exc:  # a transport bug must not stop the sender loop; retry as transient
            log.exception("outbox transport failed on rows=%s", message.outbox_ids)
            failures = dict.fromkeys(message.recipients, SendError(repr(exc), transient=True))
        delivered = [i for i in message.outbox_ids if state.rows[i].recipient not in failures]
        if delivered:
            await _record_sent(state, delivered, receipt_key, digest=message.attachment is not None)
            state.sent += 1
        for recipient, exc in failures.items():
            ids = [i for i in message.outbox_ids if state.rows[i].recipient == recipient]
            state.failed_lanes.add((message.target, recipient))
            await asyncio.to_thread(_mark_failed, state, ids, exc)


async def _record_sent(state: _Round, ids: Sequence[int], receipt_key: str | None = None, *,
                       digest: bool = False) -> None:
    """DingTalk took them: retry the mark, never the send, until it lands. Between attempts the
    lease on every row this round holds is renewed, so that no other worker takes them over; a
    renewal that fails too is no worse (the database is away for everyone) and is tried again."""
    delay = MARK_RETRY_FIRST_SECONDS
    for attempt in itertools.count(1):
        try:
            await asyncio.to_thread(mark_sent, state.engine, ids, state.worker, state.now, receipt_key, digest=digest)
            return
        except Exception as exc:  # locked, connection dropped, server restarting: all pass
            log.warning("outbox rows=%s delivered but not recorded (attempt %s: %s): recording again, "
                        "not sending again", ids, attempt, exc)
        try:
            await asyncio.to_thread(renew_lease, state.engine, list(state.rows), state.worker,
                                    state.clock() + LEASE)
        except Exception as exc:
            log.warning("outbox lease renewal for rows=%s failed: %s", list(state.rows), exc)
        try:
            await asyncio.sleep(delay * state.rng.uniform(0.5, 1.0))
        except asyncio.CancelledError:  # shutting down with the database still away
            log.error("outbox rows=%s were delivered but could not be recorded before stopping: once their "
                      "lease runs out they go out again, counted as possible duplicates", ids)
            raise
        delay = min(delay * 2, MARK_RETRY_CAP_SECONDS)


def _mark_failed(state: _Round, ids: Sequence[int], exc: SendError) -> None:
    # One retry time for the rows of one message (the jitter spreads recipients, not a message's
    # rows): they fall due together again and go out as the same message, a digest as one digest.
    delays: list[timedelta] = []

    def retry_at(row: Outbox) -> datetime | None:
        if not exc.transient or state.policy.gives_up(row.attempts, row.deliver_after, state.now):
            return None
        delays[:] = delays or [state.policy.delay(row.attempts, exc.retry_after, state.rng)]
        return state.now + delays[0]

    mark_failed(state.engine, ids, state.worker, state.now, str(exc), maybe_delivered=exc.maybe_delivered,
                retry_at=retry_at, undeliverable=exc.undeliverable)


async def run_sender(
    engine: Engine,
    transport: Transport,
    clock: Clock,
    worker: str,
    stop: asyncio.Event,
    *,
    pacer: SendPacer | None = None,
    policy: RetryPolicy | None = None,
    wake: asyncio.Event | None = None,
    idle_seconds: float = 1.0,
) -> None:
    """Deliver until `stop` is set; the round under way when it is set is finished, not cut.
    Between empty rounds it polls every `idle_seconds`, or at once when `wake` is set (a command
    or the scheduler just wrote rows)."""
    wake = wake or asyncio.Event()
    while not stop.is_set():
        try:
            sent = await deliver_due(engine, transport, clock.now(), worker, pacer=pacer, policy=policy, clock=clock)
        except Exception:  # the database is away, say: keep the loop, try again shortly
            log.exception("outbox round failed")
            sent = 0
        if sent == 0 and not stop.is_set():
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            await asyncio.wait(waiters, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        wake.clear()
