"""A local channel: type as any roster member and see what the bot says and sends, no DingTalk needed.

The console transport prints outbox messages the way the demo shows them: simulated time, colour,
recipients, text. With cards on, a message with actions is shown as the card DingTalk would show
(title, markdown, buttons), each button numbered: typing its number taps it, as whoever is typing;
a card updated in place is shown again with its new state and buttons.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.app import Bot
from bot.clock import Clock
from bot.outbox import deliver_due
from bot.transport import OutgoingMessage
from handlers.incoming import Incoming
from message_templates.render import weekday
from message_templates.reply import Action, Reply
from storage.models import ChatGroup, Person, Unit

COLOURS = {"🔵": "\033[34m", "🟡": "\033[33m", "🔴": "\033[31m"}
RESET = "\033[0m"


def stamp(clock: Clock) -> str:
    now = clock.now()
    return f"{now:%m-%d} {weekday(now)} {now:%H:%M}"


def paint(text: str, colour: bool) -> str:
    if not colour:
        return text
    for emoji, code in COLOURS.items():
        if emoji in text:
            return f"{code}{text}{RESET}"
    return text


class ConsoleTransport:
    """Implements bot.transport.Transport by printing; records what it sent for the demo's checks."""

    def __init__(self, engine: Engine, clock: Clock, write: Callable[[str], None] = print,
                 colour: bool = sys.stdout.isatty(), full: Callable[[OutgoingMessage], bool] = lambda m: True,
                 cards: bool = False):
        self.engine, self.clock, self.write, self.colour, self.full = engine, clock, write, colour, full
        self.shows_cards = cards  # read by the outbox: fold per card
        self.sent: list[tuple[str, OutgoingMessage]] = []
        self.updates: list[tuple[str, OutgoingMessage]] = []
        self.buttons: dict[int, Action] = {}  # the number typed to tap a button, as printed
        self._numbers = itertools.count(1)

    def who(self, message: OutgoingMessage) -> str:
        return "、".join(self.name(message.target, r) for r in message.recipients)

    def name(self, target: str, recipient: str) -> str:
        with Session(self.engine) as session:
            if target == "group":
                group = session.exec(select(ChatGroup).where(ChatGroup.conversation_id == recipient)).first()
                return f"群「{group.name if group else recipient}」"
            person = session.get(Person, recipient)
            if person is None:
                return recipient
            unit = session.get(Unit, person.unit_id) if person.unit_id else None
            return f"{person.name}（{unit.name if unit else ''}{person.title}）"

    async def send(self, message: OutgoingMessage) -> None:
        if message.card_update:
            if self.shows_cards:
                self.updates.append((stamp(self.clock), message))
                self.write(paint(f"[{stamp(self.clock)}] 🔄 卡片更新 → {self.who(message)}：{message.title}",
                                 self.colour))
                if self.full(message):
                    self.write(indent(message.text))
                self.write(indent(self.button_line(message.actions)))
            return
        self.sent.append((stamp(self.clock), message))
        card = "🃏 " if self.shows_cards and message.actions else ""
        self.write(paint(f"[{stamp(self.clock)}] 📤 → {self.who(message)}：{card}{message.title}", self.colour))
        if self.full(message):
            self.write(indent(message.text))
        if message.actions and (card or self.full(message)):
            self.write(indent(self.button_line(message.actions) if card else
                              "　".join(f"〔{a.label}〕" for a in message.actions)))

    def button_line(self, actions: tuple[Action, ...]) -> str:
        if not actions:
            return "（无可用按钮）"
        numbered = []
        for action in actions:
            number = next(self._numbers)
            self.buttons[number] = action
            numbered.append(f"［{number} {action.label}］")
        return " ".join(numbered) + "　← 输入编号即点按"

    def tap(self, number: int) -> Action | None:
        return self.buttons.get(number)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines() if line.strip())


def show_replies(replies: list[Reply], clock: Clock, write: Callable[[str], None] = print,
                 colour: bool = False) -> None:
    for reply in replies:
        write(paint(f"[{stamp(clock)}] 🤖 回复：{reply.title}", colour))
        write(indent(reply.text))


def repl(bot: Bot, user_id: str, conversation: str, transport: ConsoleTransport) -> None:
    """Read commands from stdin as `user_id`; after each, reconcile and deliver what is due."""
    import asyncio

    counter = itertools.count(1)
    is_group = bool(conversation)
    print(f"以 {user_id} 的身份输入命令（Ctrl-D 退出）。例如：帮助")
    for line in sys.stdin:
        if not line.strip():
            continue
        msg_id = f"console-{bot.clock.now().timestamp()}-{next(counter)}"
        tapped = transport.tap(int(line)) if line.strip().isdigit() else None
        if tapped is not None:  # a card button: its command, tapped by whoever is typing
            incoming = Incoming(msg_id=msg_id, sender_id=user_id, text=tapped.command.strip(),
                                conversation_id=conversation, is_group=is_group,
                                asks=tapped.command.endswith(" "))
        else:
            incoming = Incoming(msg_id=msg_id, sender_id=user_id, text=line.strip(), conversation_id=conversation,
                                is_group=is_group)
        show_replies(bot.handle_sync(incoming), bot.clock, colour=transport.colour)
        bot.tick()
        asyncio.run(deliver_due(bot.engine, transport, bot.clock.now(), "console"))
