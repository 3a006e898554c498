"""The bot: one `handle(incoming)` entry point for every transport, and `tick()` for the schedule.

Every command runs in one unit of work: the state change, its audit events, its outbox rows and the
processed msgId commit together, or — on any rejection or error — nothing is written at all. On
SQLite, commands that arrive while the database is busy run as SAVEPOINTs of one transaction and
share its commit (group commit); each is still answered only after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from bot.clock import Clock
from bot.command_processes import CommandProcesses
from bot.roster import RosterChange, apply_roster, load_roster
from bot.settings import Settings
from handlers import conversation
from handlers.families import FAMILIES
from handlers.incoming import Incoming
from handlers.parsing import clean_incoming
from handlers.queries import suggest
from handlers.registry import Context, Services, UserError, may_use, split_command
from message_templates.render import render
from message_templates.reply import Action, Reply
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from storage import processed as guard
from storage.db import make_engine, transaction

log = logging.getLogger(__name__)

MAX_MESSAGE = 2000  # characters; DingTalk allows more, but no real command is longer
# Commands that arrived while the database was busy share one commit, at most this many (SQLite):
# the commit's fsync, not the command, was a third of a command's time in a burst
GROUP = 32
# PostgreSQL with command_processes = 0: commands run side by side, each in its own transaction, on
# threads of their own (the default executor is shared with every asyncio.to_thread). The process's
# CPU (one core, the GIL) is what limits a burst, not the round trips: 1 to 6 threads measured alike
# within the noise of a shared 2-core machine (bench.inbound). By default they run in worker
# processes instead (bot/command_processes.py).
PG_COMMAND_THREADS = 4


class GroupLost(Exception):
    """The transaction a group of commands shared is gone before its commit."""


class Duplicate(Exception):
    """Another instance committed the same msgId while this one ran it: roll this one back."""


class Bot:
    families = FAMILIES  # the command families it answers (handlers/families.py)
    # seconds the first reply mark waits for others to share its commit: a burst's marks then cost a
    # commit per 20 ms, not one a message (bench.inbound, PostgreSQL: 1,471 commits for 2,000
    # messages before); a message's ack waits that much longer, which nobody sees
    mark_window = 0.02

    def __init__(self, engine: Engine, settings: Settings, clock: Clock, calendar: WorkCalendar) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.calendar = calendar
        self.escalation = Escalation(calendar, settings.rules, cards=settings.dingtalk_cards)
        self.services = Services(settings, calendar, self.escalation)
        # SQLite takes one writer at a time: commands queue here, in order, instead of many threads
        # polling for the write lock (its busy handler sleeps, and a burst spent most time asleep)
        self._db = ThreadPoolExecutor(1, thread_name_prefix="duban-db") if engine.dialect.name == "sqlite" else None
        self.processes = (CommandProcesses(settings.command_processes, _start_worker, (settings,))
                          if self._db is None and settings.command_processes > 0 else None)
        self._commands = (ThreadPoolExecutor(PG_COMMAND_THREADS, thread_name_prefix="duban-command")
                          if self._db is None and self.processes is None else None)
        self._lock = threading.Lock()
        self._marks: list[str] | None = None  # msgIds waiting for the next mark_replied commit
        self._marking: asyncio.Task[None] | None = None
        self._waiting: deque[tuple[Incoming, asyncio.Future[list[Reply]]]] = deque()  # commands for the next commit

    def load_roster(self, path: Path) -> RosterChange:
        roster = load_roster(path)
        with transaction(self.engine) as session:
            return apply_roster(session, roster, self.clock.now(), self.escalation)

    async def handle(self, incoming: Incoming) -> list[Reply]:
        # database work is synchronous: keep it off the event loop that the stream client runs on
        if self.processes is not None:  # PostgreSQL: in worker processes, each its own transaction
            return await self.processes.run(f"msg {incoming.msg_id}", _handle_in_worker, incoming, self.clock.now())
        loop = asyncio.get_running_loop()
        if self._db is None:  # PostgreSQL on threads: side by side, each its own transaction
            return await loop.run_in_executor(self._commands, self.handle_sync, incoming)
        replied = loop.create_future()
        with self._lock:
            self._waiting.append((incoming, replied))
        loop.run_in_executor(self._db, self._handle_waiting, loop)
        return await replied

    def _handle_waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        """Group commit (SQLite): the commands waiting for the database run one after another, each in
        its own SAVEPOINT — a rejected or failed one leaves no trace, as before — and commit together.
        Nobody hears back before that commit, so every reply still follows a durable change."""
        with self._lock:
            group = [self._waiting.popleft() for _ in range(min(GROUP, len(self._waiting)))]
        if not group:
            return  # an earlier call took them
        outcomes = self._run_group([incoming for incoming, _ in group])
        for (_, replied), outcome in zip(group, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle_future, replied, outcome)

    def _run_group(self, group: list[Incoming]) -> list[list[Reply] | BaseException]:
        if len(group) > 1:
            try:
                with self.engine.connect() as conn, conn.begin():
                    outcomes = []
                    for incoming in group:
                        outcomes.append(_outcome(self.handle_sync, incoming, conn))
                        if not conn.connection.driver_connection.in_transaction:
                            # SQLite rolled the whole transaction back (disk full, I/O error): what
                            # ran before is gone, and what followed would commit on its own
                            raise GroupLost
                    return outcomes
            except Exception as exc:  # the shared commit failed: nothing of the group stands
                log.warning("a group of %d commands failed to commit (%s): each again alone", len(group),
                            type(exc).__name__)
        return [_outcome(self.handle_sync, incoming) for incoming in group]

    def handle_sync(self, incoming: Incoming, bind: Engine | Connection | None = None, *,
                    now: datetime | None = None) -> list[Reply]:
        """One command, one unit of work: its own transaction, or a SAVEPOINT of `bind`'s.

        A command in its own transaction whose pooled connection turned out dead (the server
        restarted, or ended that backend) runs once more, on a new connection: this is what spares
        it the error, instead of a ping before every transaction (storage/db.py). Running it again
        is safe: its transaction died uncommitted — or, if only the COMMIT's answer was lost, its
        msgId is found and its stored replies are the answer. `now`: the time a command worker was
        handed (bot/command_processes.py); by default the bot's clock."""
        now = now or self.clock.now()
        if bind is not None:
            return self._handle(incoming, bind, now)
        try:
            return self._handle(incoming, self.engine, now, reconnect=True)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("msg %s: its database connection was gone (%s): running it again on a new one",
                        incoming.msg_id, type(exc.orig).__name__)
            return self._handle(incoming, self.engine, now)

    def _handle(self, incoming: Incoming, bind: Engine | Connection, now: datetime,
                reconnect: bool = False) -> list[Reply]:
        incoming = clean_incoming(incoming)
        text = " ".join(incoming.text.split())
        cmd, word, args = split_command(text)
        question = None
        if cmd is None and word and not incoming.asks:
            # perhaps the words a tapped card button asked for (handlers/conversation.py)
            with transaction(bind) as session:
                question = conversation.open_question(session, incoming, now)
                if question is not None and text == conversation.CANCEL:
                    conversation.close(session, incoming)
                    return [render("conversation_cancelled", command=question.command.split()[0],
                                   code=" ".join(question.command.split()[1:2]), now=now)]
            if question is not None:
                text = f"{question.command} {text}"
                cmd, word, args = split_command(text)
        if not word:
            return [render("help_short", now=now)]
        if cmd is None:
            return [render("error_unknown_command", word=word[:20], suggestion=suggest(word), now=now)]
        if len(text) > MAX_MESSAGE:
            return [render("error_too_long", limit=MAX_MESSAGE, now=now)]
        try:
            with transaction(bind) as session:
                # someone who left the roster is a stranger
                processed, sender = guard.processed_and_sender(session, incoming.msg_id, incoming.sender_id)
                if processed:
                    return _unanswered(processed)
                if not may_use(cmd, sender):
                    raise UserError("stranger" if sender is None else "not_allowed", command=cmd.name,
                                    role=sender.role if sender else None)
                if incoming.asks:  # a tapped button whose command needs words: ask for them
                    conversation.ask(session, incoming, text, now)
                    question = render("conversation_ask", command=cmd.name, code=args.split()[0] if args else "",
                                      minutes=int(conversation.QUESTION_LIFETIME.total_seconds() // 60), now=now)
                    if incoming.msg_id:  # a redelivered tap does not ask twice
                        _record(session, incoming.msg_id, now, [question])
                    return [question]
                ctx = Context(session, incoming, sender, now, self.services)
                cmd.handler(ctx, args)
                if question is not None:
                    conversation.close(session, incoming)
                if (cmd.mutates or ctx.sent) and incoming.msg_id:
                    _record(session, incoming.msg_id, now, ctx.replies)
                return ctx.replies
        except UserError as exc:
            return [render(f"error_{exc.name}", cmd=cmd, now=now, **exc.data)]
        except Duplicate:
            log.info("msg %s: concurrent duplicate, rolled back", incoming.msg_id)
            return []
        except IntegrityError:  # e.g. the other instance's rows collided before its msgId did
            if incoming.msg_id and self._already_processed(incoming.msg_id, bind):
                # the same msgId committed by another instance a moment ago: that one answered
                log.info("msg %s: concurrent duplicate, rolled back", incoming.msg_id)
                return []
            log.exception("command %r from %s hit a constraint", word, incoming.sender_id)
            return [render("error_internal", now=now)]
        except Exception as exc:
            if reconnect and isinstance(exc, DBAPIError) and exc.connection_invalidated:
                raise  # handle_sync runs it again on a new connection
            log.exception("command %r from %s failed", word, incoming.sender_id)
            return [render("error_internal", now=now)]

    async def mark_replied(self, incoming: Incoming) -> None:
        """The replies to `incoming` went out: a redelivery of it now answers nothing. Marks made
        within `mark_window` of the first share one commit (group commit: the transaction, not the
        UPDATE, is what a mark costs; in a burst each message had a commit of its own); each
        caller returns once its own mark is committed, and the stream acks its message then."""
        if not incoming.msg_id:
            return
        with self._lock:
            if self._marks is None:
                marks = self._marks = []
                self._marking = asyncio.ensure_future(self._mark_after_window(marks))
                self._marking.add_done_callback(lambda _: self._close_batch(marks))
            self._marks.append(incoming.msg_id)
            marking = self._marking
        await asyncio.shield(marking)

    async def _mark_after_window(self, marks: list[str]) -> None:
        await asyncio.sleep(self.mark_window)
        self._close_batch(marks)  # from here on, new marks start the next batch
        await asyncio.get_running_loop().run_in_executor(self._db, self._mark, marks)

    def _close_batch(self, marks: list[str]) -> None:
        """No more marks join `marks`. Also called when its task ends: one cancelled before its
        commit (even before it started) would otherwise hold every later mark."""
        with self._lock:
            if self._marks is marks:
                self._marks = None

    def _mark(self, ids: list[str]) -> None:
        with transaction(self.engine) as session:
            guard.mark_replied(session, ids, self.clock.now())

    def close(self) -> None:
        """Stop the command workers, once the commands under way are done."""
        if self.processes is not None:
            self.processes.close()

    def _already_processed(self, msg_id: str, bind: Engine | Connection) -> bool:
        with transaction(bind) as session:
            return guard.processed(session, msg_id) is not None

    def tick(self) -> int:
        """Settle every task due now. Returns how many notices were created."""
        return self.escalation.reconcile(self.engine, self.clock.now())


_worker_bot: Bot | None = None  # in a command worker process: its own Bot (bot/command_processes.py)


def _start_worker(settings: Settings) -> None:
    global _worker_bot
    from bot.clock import SystemClock

    # commands only, each bringing its own `now`: this Bot is never asked the time
    _worker_bot = Bot(make_engine(settings.database_url), settings.model_copy(update={"command_processes": 0}),
                      SystemClock(), WorkCalendar.from_file(settings.calendar_overrides))


def _handle_in_worker(incoming: Incoming, now: datetime) -> list[Reply]:
    assert _worker_bot is not None, "not a command worker"
    return _worker_bot.handle_sync(incoming, now=now)


def _outcome(handle, incoming: Incoming, *bind: Connection) -> list[Reply] | BaseException:
    try:
        return handle(incoming, *bind)
    except Exception as exc:  # raised to its own caller, not to the group's
        return exc


def _settle_future(future: asyncio.Future[list[Reply]], outcome: list[Reply] | BaseException) -> None:
    if future.cancelled():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _record(session: Session, msg_id: str, now: datetime, replies: list[Reply]) -> None:
    session.flush()  # the command's own rows first: a constraint they break is theirs, not a duplicate
    if not guard.record(session, msg_id, now, [_stored(reply) for reply in replies]):
        raise Duplicate(msg_id)


def _unanswered(processed: guard.Processed) -> list[Reply]:
    """A redelivered message: its stored replies if they never went out, else nothing."""
    if processed.replies is None or processed.replied_at is not None:
        log.info("msg %s already processed: ignored", processed.msg_id)
        return []
    log.warning("msg %s already processed but its reply never went out: answering again", processed.msg_id)
    return [Reply(title=r["title"], text=r["text"], at_user_ids=tuple(r["at_user_ids"]),
                  actions=tuple(Action(label, command) for label, command in r["actions"]),
                  file_path=r["file_path"]) for r in processed.replies]


def _stored(reply: Reply) -> dict:
    return {"title": reply.title, "text": reply.text, "at_user_ids": list(reply.at_user_ids),
            "actions": [[a.label, a.command] for a in reply.actions], "file_path": reply.file_path}
