"""The stream connection: the SDK's client with our own connection loop.

Frames, handlers and acks are the SDK's (`route_message`, ChatbotHandler, AckMessage). We replace
only `start()`, because the SDK's loop
- opens the connection with blocking `requests` and no timeout, freezing the event loop (and so
  the outbox sender and the health endpoint) while DingTalk is slow;
- swallows CancelledError and sleeps 10 s, so it cannot be stopped cleanly;
- starts a task per frame without keeping it: a burst of a thousand frames became a thousand tasks
  crowding the event loop, and in-flight messages could not be awaited on shutdown;
- reads its URL from a module constant frozen at import; ours comes from DingTalkSettings;
- gives up on failures it did not foresee. Ours retries every failure for ever, with capped
  backoff and jitter, logs one line for each, and keeps the reason for /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any
from urllib.parse import quote_plus

import dingtalk_stream
import websockets
import websockets.exceptions  # explicitly: websockets loads its submodules lazily, on first use
from dingtalk_stream import SystemMessage

from bot.dingtalk.cards import CALLBACK_TOPIC, CardCallbackHandler
from bot.dingtalk.http import Http
from bot.dingtalk.inbound import TOPIC, InboundHandler
from bot.dingtalk.settings import CREDENTIALS_REJECTED, DingTalkSettings
from bot.transport import SendError

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0  # DingTalk closes TCP ~10 s after `disconnect`: in-flight acks fit in that
# Frames handled at once, by this many workers; the rest of a burst waits in a queue, read off the
# socket. Reading never waits for a worker: a socket left unread also leaves the websocket's pong
# unread, and a burst longer than its 20 s keepalive timeout then dropped the connection (and every
# frame read but not yet acked) in the middle of the burst.
MAX_IN_FLIGHT = 32
# Past this many frames waiting, reading does wait (a bound on memory, far above any real burst).
MAX_QUEUED = 10_000


class StreamDown(Exception):
    """Why a connection could not be opened, in words fit for the log and /healthz."""


class CredentialsRejected(StreamDown):
    def __init__(self) -> None:
        super().__init__(CREDENTIALS_REJECTED)


class StreamClient(dingtalk_stream.DingTalkStreamClient):
    def __init__(self, settings: DingTalkSettings, handler: InboundHandler, *,
                 cards: CardCallbackHandler | None = None,
                 http: Http | None = None, rng: random.Random | None = None) -> None:
        credential = dingtalk_stream.Credential(settings.client_id, settings.client_secret.get_secret_value())
        super().__init__(credential, logger=logging.getLogger("dingtalk_stream.client"))
        self.OPEN_CONNECTION_API = f"{settings.openapi_endpoint}/v1.0/gateway/connections/open"
        self.register_callback_handler(TOPIC, handler)
        if cards is not None:  # subscribed only when registered: the SDK's subscriptions follow its handlers
            self.register_callback_handler(CALLBACK_TOPIC, cards)
        self._http = http or Http(settings.timeout_seconds)
        self._timeout = settings.timeout_seconds
        self._backoff = (settings.reconnect_min_seconds, settings.reconnect_max_seconds)
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUED)
        self._workers: list[asyncio.Task[None]] = []
        self.connected = False
        self.connections = 0  # how many times a websocket was established (for tests and metrics)
        self.failures = 0  # failed attempts since the last connection was established
        self.last_failure: str | None = None  # why the last attempt failed; None once connected
        self.attempted = asyncio.Event()  # set once the first attempt has connected or failed

    async def start(self) -> None:
        """Connect, serve frames, reconnect; returns after stop() once in-flight frames are done.
        Every failure, whatever it is, is logged and retried: the stream must never die quietly."""
        self.pre_start()
        self._workers = [asyncio.create_task(self._work()) for _ in range(MAX_IN_FLIGHT)]
        try:
            while not self._stop.is_set():
                try:
                    endpoint = await self._open_connection()
                    async with websockets.connect(endpoint, open_timeout=self._timeout) as ws:
                        self.websocket, self.connected = ws, True
                        self.connections += 1
                        self.failures, self.last_failure = 0, None
                        log.info("stream connected connection=%s", self.connections)
                        self.attempted.set()
                        await self._serve(ws)
                        await self._drain()  # before the socket closes, so their acks still go out
                except Exception as exc:  # anything at all (not cancellation): log it and try again
                    self.connected = False  # now, not in `finally`: /healthz must say so while we wait
                    await self._pause_after(exc)
                finally:
                    self.connected = False
            await self._drain()
        finally:
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
        if left := self._frames.qsize():  # unacked: DingTalk sends them again, and the msgId guard holds
            log.warning("stream stopped with %d frames not handled", left)

    async def _pause_after(self, exc: Exception) -> None:
        self.failures += 1
        self.last_failure = _reason(exc)
        self.attempted.set()
        low, high = self._backoff
        delay = min(low * 2 ** (self.failures - 1), high)
        delay *= self._rng.uniform(0.5, 1.0)  # jitter: instances that lost DingTalk together spread out
        if isinstance(exc, CredentialsRejected):
            log.error("%s（第 %d 次，%.2f 秒后重试）", self.last_failure, self.failures, delay)
        elif isinstance(exc, StreamDown | OSError | TimeoutError | websockets.exceptions.WebSocketException):
            log.warning("stream connection failed: %s; retry %d in %.2fs", self.last_failure, self.failures, delay)
        else:  # not a network failure we know: a bug or a library surprise, so keep the traceback
            log.error("stream connection failed: %s; retry %d in %.2fs", self.last_failure, self.failures, delay,
                      exc_info=exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def stop(self) -> None:
        """Stop taking frames; start() returns once the frames being handled are finished."""
        self._stop.set()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _open_connection(self) -> str:
        try:
            answer = await self._http.request("POST", self.OPEN_CONNECTION_API, json_body={
                "clientId": self.credential.client_id,
                "clientSecret": self.credential.client_secret,
                "subscriptions": [{"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map],
                "ua": "duban/dingtalk-stream-python",
            })
        except SendError as exc:
            raise StreamDown(f"DingTalk unreachable ({exc})") from exc
        body = answer.body if isinstance(answer.body, dict) else {}
        code = str(body.get("code") or "")
        if answer.status in (401, 403) or (
                answer.status == 400 and any(w in code.lower() for w in ("client", "secret", "auth"))):
            raise CredentialsRejected()
        if answer.is_error:
            raise StreamDown(f"connections/open: HTTP {answer.status} {code}".rstrip())
        if not (isinstance(body.get("endpoint"), str) and isinstance(body.get("ticket"), str)):
            raise StreamDown("connections/open: no endpoint and ticket in the answer")
        return f"{body['endpoint']}?ticket={quote_plus(body['ticket'])}"

    async def _serve(self, ws: websockets.ClientConnection) -> None:
        """Read frames until the server says `disconnect`, the socket closes, or stop() is called."""
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(ws.recv())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()  # safe: websockets keeps an unread frame for the next recv()
                    return
                try:
                    frame = json.loads(receiving.result())
                except websockets.exceptions.ConnectionClosedOK:
                    return
                if frame.get("type") == SystemMessage.TYPE:
                    # inline, in order: a `disconnect` must end this connection before anything else
                    if await self.route_message(frame) == self.TAG_DISCONNECT:
                        log.info("stream disconnect requested by the server: reconnecting")
                        return
                else:
                    await self._frames.put(frame)
        finally:
            stopping.cancel()

    async def _work(self) -> None:
        while True:
            frame = await self._frames.get()
            try:
                await self.route_message(frame)
            except Exception as exc:  # e.g. the ack hit a closed socket
                log.error("stream frame failed: %r", exc)
            finally:
                self._frames.task_done()

    async def _drain(self) -> None:
        """Wait (bounded) until every frame read so far is handled and acked."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._frames.join(), DRAIN_SECONDS)


def _reason(exc: Exception) -> str:
    if isinstance(exc, StreamDown):
        return str(exc)
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        return f"connection lost ({exc})"
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        return f"websocket refused: HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
