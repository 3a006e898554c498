"""The audit trail: who did what to which task, when. `查询 <编号>` reads it back."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from storage.models import AuditEvent

SYSTEM = "system"


def record(session: Session, *, at: datetime, actor: str, action: str, task_id: int | None = None,
           **detail: object) -> None:
    session.add(AuditEvent(task_id=task_id, at=at, actor_id=actor, action=action,
                           detail={k: _plain(v) for k, v in detail.items()}))


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
