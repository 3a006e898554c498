"""The outbox on SQLite and PostgreSQL: due rows go out once, in order per recipient, folded and
batched; failures back off (with jitter, after Retry-After); the dead are reported to 督查室."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bot.clock import FakeClock
from bot.outbox import (
    DIGEST_LISTED,
    MAX_CARDS_PER_MOMENT,
    MAX_FOLDED_TEXT_BYTES,
    RetryPolicy,
    SendPacer,
    batch,
    deliver_due,
    fold,
)
from bot.roster import apply_roster, load_roster
from bot.simulation import ROSTER
from bot.transport import OutgoingMessage, SendError, SendResult
from message_templates.reply import Action, Reply
from storage import cards
from storage.db import create_schema, make_engine, transaction
from storage.models import Outbox, OutboxStatus, ReadReceipt, ReadWatch
from storage.outbox import (
    CLAIM_LIMIT,
    COUNTERS,
    LEASE,
    claim_due,
    enqueue,
    next_due,
    purge_sent,
    undelivered_counts,
)
from storage.tz import shanghai

NOW = shanghai(2026, 11, 23, 9, 30)
Outcome = Mapping[str, SendError] | SendError | None


class FakeTransport:
    def __init__(self, max_batch: int = 1, outcome: Callable[[OutgoingMessage], Outcome] | None = None) -> None:
        self.max_batch = max_batch
        self.outcome = outcome or (lambda _m: None)
        self.calls: list[OutgoingMessage] = []  # every attempt
        self.sent: list[OutgoingMessage] = []  # the attempts that got through (to someone)

    async def send(self, message: OutgoingMessage) -> Mapping[str, SendError] | None:
        self.calls.append(message)
        outcome = self.outcome(message)
        if isinstance(outcome, SendError):
            raise outcome
        self.sent.append(message)
        return outcome

    def delivered_ids(self) -> Counter[int]:
        return Counter(i for m in self.sent for i in m.outbox_ids)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    create_schema(engine)
    with transaction(engine) as session:
        apply_roster(session, load_roster(ROSTER))
    yield engine
    engine.dispose()


def add(engine: Engine, recipient: str, text: str, *, at: datetime = NOW, target: str = "user",
        title: str = "通知", task_id: int | None = None) -> int:
    with transaction(engine) as session:
        row = enqueue(session, Reply(title=title, text=text, actions=(Action("签收", "签收 DB-2026-0001"),)),
                      target=target, recipient=recipient, deliver_after=at, now=at, task_id=task_id)
        session.flush()
        return row.id


def rows(engine: Engine) -> dict[int, Outbox]:
    with Session(engine) as session:
        return {row.id: row for row in session.exec(select(Outbox))}


async def drain(engine: Engine, transport: FakeTransport, start: datetime = NOW, worker: str = "w1",
                limit: int = 200) -> tuple[int, datetime]:
    """Deliver, jumping the clock to each next retry, until nothing is left; (rounds, end time)."""
    now = start
    for rounds in range(1, limit):
        if not await deliver_due(engine, transport, now, worker, rng=random.Random(rounds)):
            nxt = next_due(engine)
            if nxt is None:
                return rounds, now
            now = max(nxt, now)
    raise AssertionError("the outbox never drained")


async def test_due_rows_go_out_once_folded_per_recipient(engine: Engine) -> None:
    first = add(engine, "u_zhujian", "蓝色督办单 一")
    second = add(engine, "u_zhujian", "蓝色督办单 二")
    later = add(engine, "u_zhujian", "明天的", at=NOW + timedelta(days=1))
    group = add(engine, "cid_all_units", "群里的", target="group")
    transport = FakeTransport()

    assert await deliver_due(engine, transport, NOW, "w1") == 2
    assert await deliver_due(engine, transport, NOW, "w1") == 0

    dm = next(m for m in transport.sent if m.target == "user")
    assert dm.outbox_ids == (first, second) and "一" in dm.text and "二" in dm.text
    assert dm.title == "通知（共2条）" and len(dm.actions) == 1  # the same action, shown once (issue 11 point 5)
    state = rows(engine)
    assert {state[i].status for i in (first, second, group)} == {OutboxStatus.SENT}
    assert state[later].status == OutboxStatus.PENDING
    assert next_due(engine) == NOW + timedelta(days=1)


async def test_a_retried_row_keeps_its_place_and_holds_back_newer_rows(engine: Engine) -> None:
    first = add(engine, "u_zhujian", "第一条")
    second = add(engine, "u_zhujian", "第二条", at=NOW + timedelta(seconds=1))
    other = add(engine, "u_yingji", "别人的")
    failures = iter([SendError("HTTP 503", transient=True)])
    transport = FakeTransport(outcome=lambda m: next(failures, None) if m.recipient == "u_zhujian" else None)

    await deliver_due(engine, transport, NOW, "w1", rng=random.Random(1))
    state = rows(engine)
    assert state[first].status == OutboxStatus.PENDING and state[first].deliver_after == NOW
    retry_at = state[first].claimed_until
    assert retry_at is not None and retry_at > NOW
    assert state[other].status == OutboxStatus.SENT  # another recipient is not held up

    # the second row is due, but the first is backing off: nothing goes to u_zhujian yet
    assert await deliver_due(engine, transport, NOW + timedelta(seconds=1), "w1") == 0
    assert rows(engine)[second].status == OutboxStatus.PENDING
    assert next_due(engine) == retry_at

    await deliver_due(engine, transport, retry_at, "w1")
    order = [i for m in transport.sent if m.recipient == "u_zhujian" for i in m.outbox_ids]
    assert order == [first, second]
    assert transport.delivered_ids() == Counter({first: 1, second: 1, other: 1})


async def test_retry_after_is_honoured(engine: Engine) -> None:
    row = add(engine, "u_zhujian", "x")
    transport = FakeTransport(outcome=lambda m: SendError("HTTP 429", transient=True, retry_after=120))
    await deliver_due(engine, transport, NOW, "w1")
    retry_at = rows(engine)[row].claimed_until
    assert retry_at is not None and retry_at >= NOW + timedelta(seconds=120)


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=600)
    for attempts in range(1, 30):
        ceiling = min(600, 2 * 2 ** (attempts - 1))
        delays = {policy.delay(attempts, None, random.Random(seed)).total_seconds() for seed in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered: rows that failed together spread out
    assert policy.delay(1, 30, random.Random(0)) >= timedelta(seconds=30)


async def test_transient_failures_give_up_only_after_enough_attempts_and_time(engine: Engine) -> None:
    row = add(engine, "u_zhujian", "x")
    transport = FakeTransport(outcome=lambda m: SendError("HTTP 503", transient=True))
    policy = RetryPolicy(max_attempts=2, give_up_after=timedelta(hours=1))
    # the bot was down for a day: the first failure after it comes back is not the end
    await deliver_due(engine, transport, NOW + timedelta(days=1), "w1", policy=policy)
    assert rows(engine)[row].status == OutboxStatus.PENDING
    await deliver_due(engine, transport, NOW + timedelta(days=1, hours=1), "w1", policy=policy)
    assert rows(engine)[row].status == OutboxStatus.DEAD


async def test_a_permanent_failure_is_dead_and_the_supervisors_are_told(engine: Engine) -> None:
    row = add(engine, "u_zhujian", "蓝色督办单", title="🔵 蓝色督办单 DB-2026-0001-B1")
    transport = FakeTransport(outcome=lambda m: SendError("HTTP 400 invalid userId", transient=False)
                              if m.recipient == "u_zhujian" else None)

    await drain(engine, transport)

    state = rows(engine)
    assert state[row].status == OutboxStatus.DEAD and "invalid userId" in state[row].last_error
    told = [m for m in transport.sent if m.recipient in ("u_ducha1", "u_ducha2")]
    assert sorted(m.recipient for m in told) == ["u_ducha1", "u_ducha2"]
    assert all(m.title == "⚠️ 消息投递失败" and "王建华" in m.text and "B1" in m.text for m in told)


async def test_a_dead_letter_to_a_broken_supervisor_is_not_reported_again(engine: Engine) -> None:
    add(engine, "u_zhujian", "x")
    transport = FakeTransport(outcome=lambda m: SendError("HTTP 400", transient=False)
                              if m.recipient in ("u_zhujian", "u_ducha1") else None)
    await drain(engine, transport)
    state = list(rows(engine).values())
    assert Counter(r.status for r in state) == {OutboxStatus.DEAD: 2, OutboxStatus.SENT: 1}
    assert len(state) == 3  # the original and one report per supervisor; no report about the report


async def test_a_recipient_held_by_another_live_worker_waits(engine: Engine) -> None:
    first = add(engine, "u_zhujian", "一")
    add(engine, "u_zhujian", "二", at=NOW + timedelta(seconds=1))
    add(engine, "u_yingji", "别人的", at=NOW + timedelta(seconds=1))
    assert [r.id for r in claim_due(engine, NOW, "w1")] == [first]  # w1 is sending it (and stays alive)

    taken = claim_due(engine, NOW + timedelta(seconds=1), "w2")
    assert [r.recipient for r in taken] == ["u_yingji"]


async def test_an_expired_lease_is_taken_over(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    row = add(engine, "u_zhujian", "一")
    claim_due(engine, NOW, "w1")  # w1 dies here
    assert claim_due(engine, NOW + LEASE - timedelta(seconds=1), "w2") == []
    transport = FakeTransport()
    before = COUNTERS.lease_expired
    assert await deliver_due(engine, transport, NOW + LEASE + timedelta(seconds=1), "w2") == 1
    state = rows(engine)[row]
    assert state.status == OutboxStatus.SENT and state.attempts == 2
    assert COUNTERS.lease_expired == before + 1  # w1 may have sent it before dying
    assert [r for r in caplog.records if f"row={row} " in r.getMessage() and "possible duplicate" in r.getMessage()]


async def test_identical_content_to_many_users_goes_in_batches_of_twenty(engine: Engine) -> None:
    users = [f"u_{i:02d}" for i in range(45)]
    ids = [add(engine, u, "全县通报：请各单位于本周五前报送整改清单") for u in users]
    transport = FakeTransport(max_batch=20)

    assert await deliver_due(engine, transport, NOW, "w1") == 3
    assert sorted(len(m.recipients) for m in transport.sent) == [5, 20, 20]
    assert transport.delivered_ids() == Counter(dict.fromkeys(ids, 1))
    assert {r.status for r in rows(engine).values()} == {OutboxStatus.SENT}


async def test_a_partly_failed_batch_retries_only_who_missed_it(engine: Engine) -> None:
    ids = {u: add(engine, u, "同一条") for u in ("u_a", "u_b", "u_c")}
    transport = FakeTransport(max_batch=20, outcome=lambda m: {
        "u_b": SendError("unknown userId", transient=False),
        "u_c": SendError("flow-controlled", transient=True),
    } if len(m.recipients) == 3 else None)

    await deliver_due(engine, transport, NOW, "w1")
    state = rows(engine)
    assert state[ids["u_a"]].status == OutboxStatus.SENT
    assert state[ids["u_b"]].status == OutboxStatus.DEAD
    assert state[ids["u_c"]].status == OutboxStatus.PENDING

    await drain(engine, transport)
    assert rows(engine)[ids["u_c"]].status == OutboxStatus.SENT
    assert [m.recipients for m in transport.sent if "u_c" in m.recipients] == [("u_a", "u_b", "u_c"), ("u_c",)]


async def test_a_crashing_transport_is_a_transient_failure(engine: Engine) -> None:
    row = add(engine, "u_zhujian", "x")

    def crash(_m: OutgoingMessage) -> None:
        raise RuntimeError("bug in a transport")

    await deliver_due(engine, FakeTransport(outcome=crash), NOW, "w1")
    state = rows(engine)[row]
    assert state.status == OutboxStatus.PENDING and "bug in a transport" in state.last_error


async def test_two_workers_at_once_send_every_row_once_in_order(engine: Engine) -> None:
    recipients = [f"u_{i:02d}" for i in range(12)]
    ids = {u: [add(engine, u, f"{u} 第{n}条", at=NOW + timedelta(seconds=n)) for n in range(10)] for u in recipients}
    flaky = random.Random(7)
    transport = FakeTransport(outcome=lambda m: SendError("HTTP 503", transient=True) if flaky.random() < 0.2 else None)

    async def worker(name: str) -> None:
        now = NOW + timedelta(seconds=10)
        for _ in range(200):
            if not await deliver_due(engine, transport, now, name, rng=random.Random(name)):
                nxt = next_due(engine)
                if nxt is None:
                    return
                now = max(nxt, now)
                await asyncio.sleep(0)

    await asyncio.gather(worker("w1"), worker("w2"))

    assert transport.delivered_ids() == Counter(i for row_ids in ids.values() for i in row_ids)
    for recipient, row_ids in ids.items():
        order = [i for m in transport.sent if m.recipient == recipient for i in m.outbox_ids]
        assert order == row_ids


def test_folding_stops_short_of_dingtalks_size_limit() -> None:
    long = "督" * 1500  # 4,500 bytes
    members = [Outbox(id=i, target="group", recipient="cid", title="t", text=long, deliver_after=NOW,
                      created_at=NOW) for i in range(1, 5)]
    messages = fold(members)  # two messages: more would go as a digest (test_outbox_digest.py)
    assert [m.outbox_ids for m in messages] == [(1, 2), (3, 4)]
    assert all(len(m.text.encode()) <= MAX_FOLDED_TEXT_BYTES for m in messages)


def test_batching_keeps_each_recipients_order() -> None:
    def msg(recipient: str, text: str, row: int) -> OutgoingMessage:
        return OutgoingMessage("user", (recipient,), "t", text, (), (), None, None, (row,))

    # a's second message and b's first have the same content, but may not go out together
    rounds = batch([msg("a", "x", 1), msg("a", "y", 2), msg("b", "y", 3), msg("c", "x", 4)], 20)
    assert [[m.outbox_ids for m in r] for r in rounds] == [[(1, 4), (3,)], [(2,)]]


async def test_the_pacer_holds_the_rate() -> None:
    pacer = SendPacer(per_second=20)
    started = time.monotonic()
    for _ in range(30):
        await pacer.wait(OutgoingMessage("user", ("u",), "t", "x", (), (), None, None, ()))
    assert time.monotonic() - started >= 0.4  # 20 at once, then 10 more at 20/s

    pacer = SendPacer(per_second=100, group_per_minute=3)
    group = OutgoingMessage("group", ("cid",), "t", "x", (), (), None, None, ())
    for _ in range(3):
        await pacer.wait(group)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pacer.wait(group), 0.2)  # the fourth in a minute waits


class FailingMarks:
    """The database refuses the 'sent' mark `times` times (locked, connection dropped), each refusal
    taking `takes` of simulated time, as a long lock wait would."""

    def __init__(self, engine: Engine, clock: FakeClock, times: int, takes: timedelta) -> None:
        self.left, self.clock, self.takes = times, clock, takes
        event.listen(engine, "before_cursor_execute", self.before)

    def before(self, _conn, _cursor, statement: str, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if self.left and statement.startswith("UPDATE outbox SET status") and "sent" in {str(v).lower() for v in values}:
            self.left -= 1
            self.clock.advance(seconds=self.takes.total_seconds())
            raise OperationalError(statement, parameters, Exception("database is locked"))


async def test_a_mark_that_fails_after_the_200_is_retried_and_the_row_never_resent(engine: Engine) -> None:
    row = add(engine, "u_zhujian", "蓝色督办单")
    clock = FakeClock(NOW)
    # five refusals of three minutes each: a quarter of an hour, three leases, while w1 stays alive
    marks = FailingMarks(engine, clock, times=5, takes=timedelta(minutes=3))
    transport = FakeTransport()
    first = asyncio.create_task(deliver_due(engine, transport, NOW, "w1", clock=clock))
    while not transport.calls:
        await asyncio.sleep(0.001)
    taken_over = 0
    while not first.done():  # a second instance looks for expired leases all the while
        taken_over += await deliver_due(engine, transport, clock.now(), "w2", clock=clock)
        await asyncio.sleep(0.01)

    assert await first == 1 and taken_over == 0 and marks.left == 0
    assert await deliver_due(engine, transport, clock.now() + LEASE, "w1", clock=clock) == 0  # nor w1 later
    state = rows(engine)[row]
    assert state.status == OutboxStatus.SENT and state.attempts == 1
    assert transport.delivered_ids() == Counter({row: 1})


async def test_a_send_without_an_answer_is_retried_logged_and_counted_as_a_possible_duplicate(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    row = add(engine, "u_zhujian", "蓝色督办单")
    unknown = iter([SendError("batchSend: no answer (ReadTimeout)", transient=True, maybe_delivered=True)])
    transport = FakeTransport(outcome=lambda m: next(unknown, None))
    before = COUNTERS.unknown_outcome

    await drain(engine, transport)

    assert [m.outbox_ids for m in transport.calls] == [(row,), (row,)]  # retried: never lost
    assert rows(engine)[row].status == OutboxStatus.SENT
    assert COUNTERS.unknown_outcome == before + 1
    [line] = [r.getMessage() for r in caplog.records if "possible duplicate" in r.getMessage()]
    assert f"row={row} " in line


async def test_a_send_that_surely_failed_is_no_possible_duplicate(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    add(engine, "u_zhujian", "蓝色督办单")
    refused = iter([SendError("batchSend: not sent (ConnectError)", transient=True)])
    before = COUNTERS.unknown_outcome
    await drain(engine, FakeTransport(outcome=lambda m: next(refused, None)))
    assert COUNTERS.unknown_outcome == before
    assert not [r for r in caplog.records if "possible duplicate" in r.getMessage()]


async def test_a_burst_reaches_each_recipient_whole_in_one_round(engine: Engine) -> None:
    """The 09:00 burst: more due rows than a claim's first look (CLAIM_LIMIT), interleaved across
    recipients; each recipient's rows still go out folded together in the first round."""
    with transaction(engine) as session:
        for n in range(3 * CLAIM_LIMIT):
            enqueue(session, Reply(title="蓝色督办单", text=f"第{n}项"), target="user",
                    recipient=("u_zhujian", "u_yingji", "u_jiaoyu")[n % 3], deliver_after=NOW, now=NOW)
    transport = FakeTransport()
    assert await deliver_due(engine, transport, NOW, "w1") == 3  # one folded message each
    assert Counter(m.recipient for m in transport.sent) == {"u_zhujian": 1, "u_yingji": 1, "u_jiaoyu": 1}
    assert sorted(transport.delivered_ids()) == sorted(rows(engine))
    assert all(row.status == OutboxStatus.SENT for row in rows(engine).values())


async def test_sent_rows_past_retention_are_purged_and_nothing_else(engine: Engine) -> None:
    old = add(engine, "u_zhujian", "半年前的")
    await deliver_due(engine, FakeTransport(), NOW, "w1")
    evidence = add(engine, "u_zhujian", "有已读回执的")
    await deliver_due(engine, FakeTransport(), NOW, "w1")
    with transaction(engine) as session:  # DingTalk gave it a receipt key and a head read it
        session.get(Outbox, evidence).receipt_key = "pqk-1"
        session.add(ReadReceipt(outbox_id=evidence, user_id="u_zhujian", read_at=NOW, exact=True, recorded_at=NOW))
    recent = add(engine, "u_zhujian", "上周的", at=NOW + timedelta(days=200))
    await deliver_due(engine, FakeTransport(), NOW + timedelta(days=200), "w1")
    waiting = add(engine, "u_yingji", "还没到点的", at=NOW + timedelta(days=400))
    dead = add(engine, "u_jiaoyu", "发不出去的")
    await deliver_due(engine, FakeTransport(outcome=lambda m: SendError("HTTP 400", transient=False)), NOW, "w1")
    assert rows(engine)[dead].status == OutboxStatus.DEAD

    assert purge_sent(engine, NOW + timedelta(days=200) - timedelta(days=180), chunk=1) == 1
    left = rows(engine)
    assert old not in left and {recent, waiting, dead, evidence} <= set(left)
    assert undelivered_counts(engine)[OutboxStatus.DEAD] == 1


# -- issue 12: one recipient, one moment, one message -----------------------------------------------

class KeyedTransport(FakeTransport):
    """DingTalk's answer carries a read-receipt key (processQueryKey, openDingId) per call."""

    async def send(self, message: OutgoingMessage) -> Mapping[str, SendError] | None:
        failures = await super().send(message)
        return SendResult(failures, receipt_key=f"pqk-{len(self.calls)}")


def add_notices(engine: Engine, recipient: str, colours: Mapping[str, int], *, at: datetime = NOW,
                ding: bool = False) -> list[int]:
    """Rows shaped as the engine writes them: "<emoji> <colour>督办单 <code>", about 800 bytes each,
    and (if `ding`) a DING after each yellow and red one."""
    marks = {"红": "🔴", "黄": "🟡", "蓝": "🔵"}
    ids, number = [], itertools.count(1)
    with transaction(engine) as session:
        for colour, count in colours.items():
            for _ in range(count):
                code = f"DB-2026-{next(number):04d}-{colour}1"
                row = enqueue(session, Reply(title=f"{marks[colour]} {colour}色督办单 {code}", text=f"{code} " + "督" * 260,
                                             actions=(Action("办结", f"办结 {code} "),)),
                              target="user", recipient=recipient, deliver_after=at, now=at)
                session.flush()
                ids.append(row.id)
                if ding and colour != "蓝":
                    enqueue(session, Reply(title=f"📳 DING 提醒 {code}", text=f"{colour}色督办单 {code} 已发给您"),
                            target="user", recipient=recipient, deliver_after=at, now=at, ding_remind_type=1)
    return ids


async def test_a_recipient_with_hundreds_of_rows_gets_one_digest_and_each_row_its_receipt_key(engine: Engine) -> None:
    ids = add_notices(engine, "u_zhujian", {"蓝": 500, "黄": 60, "红": 40})
    transport = KeyedTransport()

    assert await deliver_due(engine, transport, NOW, "w1") == 1
    [digest] = transport.sent
    assert digest.outbox_ids == tuple(ids) and digest.attachment is not None
    assert [title for title, _ in digest.attachment.items] == [r.title for r in rows(engine).values()]
    assert [text for _, text in digest.attachment.items] == [r.text for r in rows(engine).values()]  # whole
    assert "🔴 红色督办单 **40**　🟡 黄色督办单 **60**　🔵 蓝色督办单 **500**" in digest.text
    listed = [line for line in digest.text.splitlines() if line.startswith("- ")]
    assert all("红色督办单" in line for line in listed[:DIGEST_LISTED]) and "其余580条" in listed[-1]
    assert len(digest.text.encode()) < MAX_FOLDED_TEXT_BYTES and {a.command for a in digest.actions} == {"我的", "台账"}
    state = rows(engine)
    assert all(r.status == OutboxStatus.SENT and r.attempts == 1 and r.receipt_key == "pqk-1" for r in state.values())
    assert COUNTERS.sent >= len(ids)


async def test_a_mixed_burst_reaches_each_chat_in_one_call_with_its_dings_apart(engine: Engine) -> None:
    head = add_notices(engine, "u_zhujian", {"红": 8, "黄": 12, "蓝": 40}, ding=True)
    other = add_notices(engine, "u_yingji", {"蓝": 2})  # few: folded whole, as ever
    group = add_notices(engine, "cid_leaders", {"红": 45})  # three messages' worth: a digest
    with transaction(engine) as session:
        for row in session.exec(select(Outbox).where(Outbox.recipient == "cid_leaders")):
            row.target = "group"
            session.add(row)
    transport = KeyedTransport(max_batch=20)

    await drain(engine, transport)

    chat = Counter(r for m in transport.calls if not m.ding_remind_type for r in m.recipients)
    assert chat == {"u_zhujian": 1, "u_yingji": 1, "cid_leaders": 1}  # a file with it: two messages at most
    digest, *dings = [m for m in transport.sent if m.recipient == "u_zhujian"]
    assert digest.attachment is not None and sorted(digest.outbox_ids) == head
    # DINGs stay one per yellow and red notice, each naming its own, after the digest that holds it
    assert len(dings) == 20 and all(m.ding_remind_type == 1 and len(m.outbox_ids) == 1 for m in dings)
    assert all(m.text in {r.text for r in rows(engine).values()} for m in dings)
    [folded] = [m for m in transport.sent if m.recipient == "u_yingji"]
    assert folded.attachment is None and folded.outbox_ids == tuple(other)  # the notices themselves
    [in_group] = [m for m in transport.sent if m.recipient == "cid_leaders"]
    assert in_group.attachment is not None and in_group.outbox_ids == tuple(group)
    state = rows(engine)
    assert transport.delivered_ids() == Counter(dict.fromkeys(state, 1))  # each row once, none lost
    assert all(r.status == OutboxStatus.SENT and r.receipt_key for r in state.values())
    assert len({state[i].receipt_key for i in digest.outbox_ids}) == 1


class Crash(BaseException):
    """The process dies: nothing after this line of the round runs (no mark, no release)."""


async def test_a_crash_mid_digest_leaves_the_rows_to_be_taken_over_and_the_resend_flagged(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    ids = add_notices(engine, "u_zhujian", {"蓝": 100})
    dies = FakeTransport(outcome=lambda m: (_ for _ in ()).throw(Crash()))  # DingTalk has it; we die
    with pytest.raises(Crash):
        await deliver_due(engine, dies, NOW, "w1")
    assert all(r.status == OutboxStatus.SENDING for r in rows(engine).values())
    assert claim_due(engine, NOW + LEASE - timedelta(seconds=1), "w2") == []  # w1's lease still holds them

    before = COUNTERS.lease_expired
    transport = FakeTransport()
    assert await deliver_due(engine, transport, NOW + LEASE + timedelta(seconds=1), "w2") == 1
    [again] = transport.sent
    assert again.attachment is not None and again.outbox_ids == tuple(ids)  # the same digest, once more
    assert all(r.status == OutboxStatus.SENT and r.attempts == 2 for r in rows(engine).values())
    assert COUNTERS.lease_expired == before + len(ids)
    flagged = {r.getMessage() for r in caplog.records if "possible duplicate" in r.getMessage()}
    assert all(any(f"row={i} " in line for line in flagged) for i in ids)
    assert await deliver_due(engine, transport, NOW + 2 * LEASE, "w2") == 0  # and no third time


async def test_a_claim_takes_recipients_whole_and_never_cuts_a_burst_in_two(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storage.outbox.CLAIM_MAX", 50)
    with transaction(engine) as session:
        for n in range(90):  # interleaved, as the engine writes them
            enqueue(session, Reply(title="蓝色督办单", text=f"第{n}项"), target="user",
                    recipient=("u_zhujian", "u_yingji", "u_jiaoyu")[n % 3], deliver_after=NOW, now=NOW)
    transport = FakeTransport()
    await drain(engine, transport)
    assert Counter(m.recipient for m in transport.sent) == {"u_zhujian": 1, "u_yingji": 1, "u_jiaoyu": 1}
    assert transport.delivered_ids() == Counter(dict.fromkeys(rows(engine), 1))


async def test_rows_sent_past_retention_go_even_with_a_receipt_key_unless_their_reads_are_watched(
        engine: Engine) -> None:
    add(engine, "u_zhujian", "一条回复")
    watched = add(engine, "u_zhujian", "蓝色督办单")
    await deliver_due(engine, KeyedTransport(), NOW, "w1")
    with transaction(engine) as session:
        session.add(ReadWatch(outbox_id=watched, channel="user", sent_at=NOW, next_poll_at=NOW))
    assert {r.receipt_key for r in rows(engine).values()} == {"pqk-1"}
    assert purge_sent(engine, NOW + timedelta(days=1)) == 1
    assert set(rows(engine)) == {watched}  # the reply went though DingTalk gave it a key


async def test_a_burst_of_cards_goes_as_one_digest_and_updates_queued_for_them_have_nothing_to_update(
        engine: Engine) -> None:
    def notice(session: Session, recipient: str, task_id: int) -> Outbox:
        code = f"DB-2026-{task_id:04d}"
        return enqueue(session, Reply(title=f"🔵 蓝色督办单 {code}-B1", text=f"{code} 已到期",
                                      actions=(Action("办结", f"办结 {code} "),)),
                       target="user", recipient=recipient, deliver_after=NOW, now=NOW, task_id=task_id)

    with transaction(engine) as session:
        many = [notice(session, "u_zhujian", t) for t in range(1, MAX_CARDS_PER_MOMENT + 2)]
        few = [notice(session, "u_yingji", t) for t in range(1, MAX_CARDS_PER_MOMENT + 1)]
        session.flush()
        card = many[0].card_id
        assert card and all(r.card_id for r in many + few)
        later = Outbox(target="user", recipient="u_zhujian", title="t", text="已签收", deliver_after=NOW + timedelta(hours=1),
                       created_at=NOW, card_key=many[0].card_key, card_id=card, card_update=True)
        session.add(later)
        session.flush()
        later_id = later.id
    transport = FakeTransport()
    transport.shows_cards = True  # type: ignore[attr-defined]

    await drain(engine, transport)

    [digest] = [m for m in transport.sent if m.recipient == "u_zhujian"]
    assert digest.attachment is not None and digest.card_id is None and len(digest.outbox_ids) == len(many)
    assert [m.card_id for m in transport.sent if m.recipient == "u_yingji"] == [r.card_id for r in few]
    state = rows(engine)
    assert all(state[r.id].card_id is None and state[r.id].card_key is None for r in many)  # never shown
    assert state[later_id].status == OutboxStatus.SENT  # its card never was: nothing to update
    assert not [m for m in transport.calls if m.card_update]
    with Session(engine) as session:
        assert [c.recipient for c in cards.shown(session, [f"t.{t}" for t in range(1, 9)])] == ["u_yingji"] * len(few)
