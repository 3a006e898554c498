"""Sign-in to the 督查室 dashboard: single-use links and the sessions they open.

A link carries a random token (256 bits); only its SHA-256 is stored, so the database (or a backup of
it) does not hold a working link or session. A link is used by one atomic UPDATE that succeeds for
the first comer only, so two clicks racing on two instances cannot both sign in. A session is
valid while it has not expired and its person is still on the roster (Person.active): leaving the
roster ends every session at once, with nothing to revoke.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Column, String, delete, update
from sqlmodel import Field, Session, SQLModel

from storage.models import Person
from storage.queries import member
from storage.types import AwareDateTime

LINK_LIFETIME = timedelta(minutes=15)  # long enough to open a DM, short enough to be useless later
SESSION_LIFETIME = timedelta(hours=12)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DashboardLink(SQLModel, table=True):
    """A sign-in link sent by the 看板 command. Single use: `used_at` is set by the first sign-in."""

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: str = Field(foreign_key="person.user_id", index=True)
    created_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(AwareDateTime(), nullable=True))


class DashboardSession(SQLModel, table=True):
    """A browser signed in through a link: its cookie is the token whose hash is stored here."""

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: str = Field(foreign_key="person.user_id", index=True)
    created_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False, index=True))


def issue_link(session: Session, user_id: str, now: datetime) -> str:
    """A fresh single-use sign-in token for `user_id`; expired links and sessions are tidied away."""
    session.exec(delete(DashboardLink).where(DashboardLink.expires_at < now))  # type: ignore[call-overload]
    session.exec(delete(DashboardSession).where(DashboardSession.expires_at < now))  # type: ignore[call-overload]
    token = secrets.token_urlsafe(32)
    session.add(DashboardLink(token_hash=_digest(token), user_id=user_id, created_at=now,
                              expires_at=now + LINK_LIFETIME))
    session.flush()
    return token


def redeem_link(session: Session, token: str, now: datetime) -> str | None:
    """Use a link: a new session token, or None if the link is unknown, expired, already used, or its
    person has left the roster."""
    digest = _digest(token)
    used = session.exec(update(DashboardLink).where(  # type: ignore[call-overload]
        DashboardLink.token_hash == digest, DashboardLink.used_at.is_(None), DashboardLink.expires_at > now,
    ).values(used_at=now))
    if used.rowcount != 1:
        return None
    link = session.get(DashboardLink, digest)
    if link is None or member(session, link.user_id) is None:
        return None
    cookie = secrets.token_urlsafe(32)
    session.add(DashboardSession(token_hash=_digest(cookie), user_id=link.user_id, created_at=now,
                                 expires_at=now + SESSION_LIFETIME))
    session.flush()
    return cookie


def end_sessions(session: Session, user_id: str) -> None:
    """Sign `user_id` out everywhere and void their unused links (they left the roster)."""
    session.exec(delete(DashboardSession).where(DashboardSession.user_id == user_id))  # type: ignore[call-overload]
    session.exec(delete(DashboardLink).where(DashboardLink.user_id == user_id))  # type: ignore[call-overload]


def session_person(session: Session, cookie: str, now: datetime) -> Person | None:
    """Who a session cookie belongs to, while it is valid and they are on the roster."""
    found = session.get(DashboardSession, _digest(cookie))
    if found is None or found.expires_at <= now:
        return None
    return member(session, found.user_id)
