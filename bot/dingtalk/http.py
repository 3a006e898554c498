"""One HTTP client for every call to DingTalk: the OpenAPI, session-webhook replies, and the stream's
connections/open.

aiohttp, because the SDK needs it anyway (so it costs no import), and its POST costs about a sixth of
httpx's CPU (measured for issue 12: 0.12 ms against 0.76 ms a request) — on the inbound path a reply
per message, and under a burst a card update per change. Every transport failure is sorted here, in
one place, into "DingTalk saw nothing" and "the request may have reached it".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.transport import SendError

# Failures before a byte of the request reached DingTalk. Every other transport failure (a read
# timeout, a reset, a connection closed without an answer) leaves the outcome unknown.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL)


@dataclass(frozen=True)
class Answer:
    status: int
    body: object  # the JSON body, or None when it was not JSON
    retry_after: str | None

    @property
    def is_error(self) -> bool:
        return self.status >= 400


class Http:
    """The pool is made on first use: an aiohttp session belongs to the event loop it was made in."""

    def __init__(self, timeout_seconds: float) -> None:
        # per step, as a deadline per request would cut off a slow upload that is still moving: at
        # most this long to connect (a free connection included), and between bytes of the answer
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout_seconds, sock_read=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      params: dict[str, str] | None = None, json_body: Any = None,
                      files: dict[str, tuple[str, bytes, str]] | None = None) -> Answer:
        """The answer, whatever its status; a SendError (transient) when there was none."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        data = None
        if files:
            data = aiohttp.FormData(quote_fields=False)  # the file name as UTF-8, as DingTalk shows it
            for field, (name, content, mime) in files.items():
                data.add_field(field, content, filename=name, content_type=mime)
        try:
            async with self._session.request(method, url, headers=headers, params=params,
                                             json=json_body, data=data) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except _NOT_SENT as exc:  # refused, or never connected: DingTalk saw nothing
            # an InvalidURL's text is the URL, query and all (a session key, a token): never shown
            detail = "" if isinstance(exc, aiohttp.InvalidURL) else f" {exc}"
            raise SendError(f"{path_of(url)}: not sent ({type(exc).__name__}{detail})", transient=True) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:  # after the request left: DingTalk may have acted
            raise SendError(f"{path_of(url)}: no answer ({type(exc).__name__} {exc})", transient=True,
                            maybe_delivered=True) from exc
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        return Answer(status, body, retry_after)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def path_of(url: str) -> str:
    """The URL without its query: error messages must never carry a token or a session key."""
    return urlsplit(url).path
