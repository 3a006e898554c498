"""The audit trail: who did what to which task, when. `查询 <编号>` reads it back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.models import AuditEvent

SYSTEM = "system"


def record(session: Session, *, at: datetime, actor: str, action: str, task_id: int | None = None,
           **detail: object) -> None:
    session.add(AuditEvent(**values(at=at, actor=actor, action=action, task_id=task_id, **detail)))


def values(*, at: datetime, actor: str, action: str, task_id: int | None = None, **detail: object) -> dict[str, Any]:
    """An event's columns, for `record` and for the engine's bulk insert."""
    return {"task_id": task_id, "at": at, "actor_id": actor, "action": action,
            "detail": {k: _plain(v) for k, v in detail.items()}}


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
