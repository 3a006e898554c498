"""The short conversation a card button starts when its command needs words.

Tapping 汇报进展 (or 申请延期, 办结, 退回, 驳回延期, 暂缓 …) asks for exactly what is missing; that
person's next message in that chat within QUESTION_LIFETIME is taken as the rest of the command,
and `取消` ends the question. A typed full command works at any time, question or not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from handlers.incoming import Incoming
from storage.models import PendingQuestion

QUESTION_LIFETIME = timedelta(minutes=10)
CANCEL = "取消"


def _chat(incoming: Incoming) -> tuple[str, str]:
    """The key of a question: its person and chat — "" for the one-to-one chat with the robot, which
    a tap (IM_ROBOT space) and a typed message (its own conversationId) name differently."""
    return incoming.sender_id, incoming.conversation_id if incoming.is_group else ""


def ask(session: Session, incoming: Incoming, command: str, now: datetime) -> None:
    """Remember the question (a newer tap in the same chat replaces an older one)."""
    user_id, chat = _chat(incoming)
    question = session.get(PendingQuestion, (user_id, chat))
    if question is None:
        question = PendingQuestion(user_id=user_id, conversation_id=chat, command=command, asked_at=now)
    question.command, question.asked_at = command, now
    session.add(question)


def open_question(session: Session, incoming: Incoming, now: datetime) -> PendingQuestion | None:
    """The question this message may answer: asked of its sender, in its chat, not yet expired."""
    question = session.get(PendingQuestion, _chat(incoming))
    if question is None or now - question.asked_at > QUESTION_LIFETIME:
        return None
    return question


def close(session: Session, incoming: Incoming) -> None:
    question = session.get(PendingQuestion, _chat(incoming))
    if question is not None:
        session.delete(question)
