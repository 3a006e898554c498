"""Pieces of the chat language shared by the command families: codes, units, percentages."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

from sqlmodel import Session, select

from handlers.incoming import Incoming
from handlers.registry import UserError
from message_templates.render import drop_invisible
from storage import queries
from storage.models import Notice, Task, Unit

TASK_CODE = re.compile(r"^([A-Za-z]{1,4})[-－—_ ]?(\d{4})[-－—_ ]?(\d{1,5})$")
NOTICE_CODE = re.compile(r"^([A-Za-z]{1,4})[-－—_ ]?(\d{4})[-－—_ ]?(\d{1,5})[-－—_ ]?([ABCPRSYabcprsy])(\d{1,3})$")
PERCENT = re.compile(r"(?<![\d.])(\d{1,3})\s*[%％]\s*$")  # a trailing 60% (also 完成60%) is the progress
LIST_SEPARATORS = re.compile(r"[,，、;；/]+")
CODE_END = re.compile(r"[,，、;；:：。.!！?？]")  # 「办结 DB-2026-0042，排查完毕」: the code ends there


def clean_incoming(incoming: Incoming) -> Incoming:
    """The message with control and invisible characters dropped from everything a person typed,
    once, where it enters (Bot.handle_sync): nothing stored ever holds them — a NUL that PostgreSQL
    refuses, a control character that openpyxl refuses, a bidi override that disguises a title."""
    return replace(incoming, text=drop_invisible(incoming.text), sender_name=drop_invisible(incoming.sender_name),
                   at_names=tuple(map(drop_invisible, incoming.at_names)))


def split_first(text: str) -> tuple[str, str]:
    parts = text.strip().split(maxsplit=1)
    return (parts[0], parts[1].strip()) if len(parts) == 2 else ((parts[0], "") if parts else ("", ""))


def split_code(text: str) -> tuple[str, str]:
    """The first word as a code, and the rest: punctuation typed right after a code ends it."""
    word, rest = split_first(text)
    if cut := CODE_END.search(word, 1):
        return word[:cut.start()], f"{word[cut.end():]} {rest}".strip()
    return word, rest


def normalise_task_code(word: str) -> str | None:
    m = TASK_CODE.match(unicodedata.normalize("NFKC", word).strip())  # ＤＢ－２０２６－１ from a full-width IME
    return f"{m[1].upper()}-{m[2]}-{int(m[3]):04d}" if m else None


def require_task(session: Session, args: str, command: str, *, lock: bool = True) -> tuple[Task, str]:
    """The task named by the first word of `args`, and the rest of the text.

    Locked for the rest of the transaction (storage.queries.locked) unless `lock` is False: every
    check a command makes on the task then sees what a concurrent command committed before it.
    """
    word, rest = split_code(args)
    if not word:
        raise UserError("missing_code", command=command)
    code = normalise_task_code(word)
    if code is None:
        raise UserError("bad_code", command=command, word=word)
    task = queries.task_by_code(session, code, lock=lock)
    if task is None:
        raise UserError("unknown_task", command=command, code=code)
    return task, rest


def require_notice(session: Session, args: str, command: str) -> tuple[Notice, Task, str]:
    """The notice named first in `args`, its task (row locked, as in require_task) and the rest.

    The notice is read again once its task is locked: what was read before may be stale.
    """
    word, rest = split_code(args)
    if not word:
        raise UserError("missing_notice_code", command=command)
    m = NOTICE_CODE.match(unicodedata.normalize("NFKC", word))
    if m is None:
        raise UserError("bad_notice_code", command=command, word=word)
    code = f"{m[1].upper()}-{m[2]}-{int(m[3]):04d}-{m[4].upper()}{int(m[5])}"
    query = select(Notice).where(Notice.code == code)
    notice = session.exec(query).first()
    if notice is None:
        raise UserError("unknown_notice", command=command, code=code)
    task = queries.lock_task(session, notice.task_id)
    return session.exec(query.execution_options(populate_existing=True)).one(), task, rest


def take_percent(text: str) -> tuple[str, int | None]:
    m = PERCENT.search(text)
    if not m:
        return text.strip(), None
    value = int(m[1])
    if value > 100:
        raise UserError("bad_percent", value=value)
    return text[: m.start()].strip(), value


def find_unit(session: Session, word: str) -> Unit | None:
    """Forgiving unit names: 县住建局 / 住建局 / 住建 all name the same unit, if only one fits.

    None when no unit fits; UserError("ambiguous_unit") naming the candidates when several do.
    """
    word = word.strip()
    if not word:
        return None
    units = queries.active_units(session)  # a unit that left the roster can no longer be named
    for unit in units:
        if word == unit.name or word in unit.aliases:
            return unit
    bare = word.removeprefix("县")
    fits = [u for u in units if bare and (bare in u.name or any(bare in a for a in u.aliases))]
    if len(fits) > 1:
        raise UserError("ambiguous_unit", word=word, candidates=[u.name for u in fits])
    return fits[0] if fits else None


def unit_names(session: Session) -> list[str]:
    return [u.name for u in queries.active_units(session)]
