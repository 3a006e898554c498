"""Commands, who may use them, and the context a handler works in.

Each command family module registers its commands with `@command`. The role × command matrix is
the `roles` of each registration: dispatch checks it in one place before a handler runs. Checks
that depend on the task (own unit, the assigner, the signer) live in handlers/permissions.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from handlers.incoming import Incoming
from message_templates.render import render
from message_templates.reply import Action, Reply
from reminders.calendar import WorkCalendar
from reminders.engine import Escalation
from reminders.reports import ReportSettings
from storage import audit, queries
from storage.models import AuditEvent, Person, Role
from storage.outbox import enqueue

LEADERS = frozenset({Role.COUNTY_HEAD, Role.EXECUTIVE_DEPUTY, Role.DEPUTY, Role.OFFICE_DIRECTOR})
ASSIGNERS = LEADERS | {Role.SUPERVISOR}
UNIT_STAFF = frozenset({Role.UNIT_HEAD, Role.LIAISON})
APPROVERS = frozenset({Role.OFFICE_DIRECTOR, Role.EXECUTIVE_DEPUTY, Role.COUNTY_HEAD})
SIGNERS = frozenset({Role.EXECUTIVE_DEPUTY, Role.COUNTY_HEAD})
EVERYONE = frozenset(Role)
STRANGERS_TOO = None  # marker: even people not in the roster may use it
_NEW_AUDIT = AuditEvent.__table__.insert()


class UserError(Exception):
    """A rejected command: the transaction rolls back and the sender gets `error_<name>`."""

    def __init__(self, name: str, **data: object) -> None:
        super().__init__(name)
        self.name = name
        self.data = data


class HandlerSettings(ReportSettings, Protocol):
    """The settings the handlers read (bot.settings.Settings has them)."""

    code_prefix: str


@dataclass
class Services:
    settings: HandlerSettings
    calendar: WorkCalendar
    escalation: Escalation


@dataclass
class Context:
    session: Session
    incoming: Incoming
    sender: Person | None
    now: datetime
    services: Services
    replies: list[Reply] = field(default_factory=list)
    sent: bool = False  # something was queued for delivery

    @property
    def rules(self):
        return self.services.settings.rules

    def reply(self, template: str, *, at_user_ids: tuple[str, ...] = (), actions: tuple[Action, ...] = (),
              **data: object) -> None:
        self.replies.append(render(template, at_user_ids=at_user_ids, actions=actions, now=self.now, **data))

    def notify_user(self, user_id: str | None, template: str, *, task_id: int | None = None,
                    actions: tuple[Action, ...] = (), **data: object) -> None:
        """A direct message, through the outbox so it survives a crash. People act at any hour.
        Someone who left the roster is sent nothing: a departed assigner no longer reviews."""
        if user_id and queries.member(self.session, user_id):
            self.send(user_id, render(template, actions=actions, now=self.now, **data), task_id=task_id)

    def send(self, user_id: str, reply: Reply, *, task_id: int | None = None) -> None:
        """Queue `reply` as a direct message. Even a query that sends something (台账 导出) is then
        recorded as processed, so a redelivered message does not send it twice."""
        enqueue(self.session, reply, target="user", recipient=user_id, deliver_after=self.now, now=self.now,
                task_id=task_id)
        self.sent = True

    def audit(self, action: str, task_id: int | None = None, **detail: object) -> None:
        actor = self.sender.user_id if self.sender else self.incoming.sender_id
        # Core: nothing reads the event back as an object. The session flushes what it holds first
        # (events the notices queued among it), so the ids keep the order the events happened in
        self.session.execute(_NEW_AUDIT, audit.values(at=self.now, actor=actor, action=action, task_id=task_id,
                                                      **detail))


Handler = Callable[[Context, str], None]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    roles: frozenset[Role] | None  # None: strangers too
    mutates: bool
    usage: str
    example: str
    summary: str
    aliases: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {}


def command(name: str, *, roles: frozenset[Role] | None, usage: str, example: str, summary: str,
            aliases: tuple[str, ...] = (), mutates: bool = True) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        cmd = Command(name, fn, roles, mutates, usage, example, summary, aliases)
        for word in (name, *aliases):
            if word in COMMANDS:
                raise RuntimeError(f"command word {word!r} registered twice")
            COMMANDS[word] = cmd
        return fn

    return register


def lookup(word: str) -> Command | None:
    return COMMANDS.get(word) or COMMANDS.get(word.lower())


def split_command(text: str) -> tuple[Command | None, str, str]:
    """The command a message starts with, the word as typed, and the rest.

    People often type no space after a Chinese command (签收DB-2026-0042, 交办县住建局 …): the longest
    Chinese command name the first word starts with is taken as the command.
    """
    parts = text.strip().split(maxsplit=1)
    word, rest = (parts + ["", ""])[:2] if parts else ("", "")
    cmd = lookup(word)
    if cmd is None and word:
        glued = [name for name in COMMANDS if len(name) >= 2 and not name.isascii() and word.startswith(name)]
        if glued:
            name = max(glued, key=len)
            cmd, rest = COMMANDS[name], f"{word[len(name):]} {rest}".strip()
    return cmd, word, rest


def may_use(cmd: Command, person: Person | None) -> bool:
    if cmd.roles is STRANGERS_TOO:
        return True
    return person is not None and person.role in cmd.roles


def primary_commands() -> list[Command]:
    return list(dict.fromkeys(COMMANDS.values()))
