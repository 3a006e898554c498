"""The stream connection: the SDK's client with our own connection loop.

Frames, handlers and acks are the SDK's (`route_message`, ChatbotHandler, AckMessage). We replace
only `start()`, because the SDK's loop
- opens the connection with blocking `requests` and no timeout, freezing the event loop (and so
  the outbox sender and the health endpoint) while DingTalk is slow;
- swallows CancelledError and sleeps 10 s, so it cannot be stopped cleanly;
- starts frame tasks without keeping them, so in-flight messages cannot be awaited on shutdown;
- reads its URL from a module constant frozen at import; ours comes from DingTalkSettings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote_plus

import dingtalk_stream
import httpx
import websockets
from dingtalk_stream import SystemMessage

from bot.dingtalk.inbound import TOPIC, InboundHandler
from bot.dingtalk.settings import DingTalkSettings
from bot.outbox import SendError

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
DRAIN_SECONDS = 10.0  # DingTalk closes TCP ~10 s after `disconnect`: in-flight acks fit in that


class StreamClient(dingtalk_stream.DingTalkStreamClient):
    def __init__(self, settings: DingTalkSettings, handler: InboundHandler, *,
                 http: httpx.AsyncClient | None = None) -> None:
        credential = dingtalk_stream.Credential(settings.client_id, settings.client_secret.get_secret_value())
        super().__init__(credential, logger=logging.getLogger("dingtalk_stream.client"))
        self.OPEN_CONNECTION_API = f"{settings.openapi_endpoint}/v1.0/gateway/connections/open"
        self.register_callback_handler(TOPIC, handler)
        self._http = http or httpx.AsyncClient(timeout=settings.timeout_seconds)
        self._timeout = settings.timeout_seconds
        self._stop = asyncio.Event()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self.connected = False
        self.connections = 0  # how many times a websocket was established (for tests and metrics)

    async def start(self) -> None:
        """Connect, serve frames, reconnect; returns after stop() once in-flight frames are done."""
        self.pre_start()
        delay = RECONNECT_MIN_SECONDS
        while not self._stop.is_set():
            try:
                endpoint = await self._open_connection()
                async with websockets.connect(endpoint, open_timeout=self._timeout) as ws:
                    self.websocket, self.connected = ws, True
                    self.connections += 1
                    delay = RECONNECT_MIN_SECONDS
                    log.info("stream connected connection=%s", self.connections)
                    await self._serve(ws)
                    await self._drain()  # before the socket closes, so their acks still go out
            except (OSError, TimeoutError, SendError, websockets.exceptions.WebSocketException) as exc:
                log.warning("stream connection failed: %s; retrying in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
            finally:
                self.connected = False
        await self._drain()

    async def stop(self) -> None:
        """Stop taking frames; start() returns once the frames being handled are finished."""
        self._stop.set()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _open_connection(self) -> str:
        try:
            response = await self._http.post(self.OPEN_CONNECTION_API, json={
                "clientId": self.credential.client_id,
                "clientSecret": self.credential.client_secret,
                "subscriptions": [{"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map],
                "ua": "duban/dingtalk-stream-python",
            })
            response.raise_for_status()
            body = response.json()
            return f"{body['endpoint']}?ticket={quote_plus(body['ticket'])}"
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise SendError(f"connections/open: {exc!r}", transient=True) from exc

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
                    self._spawn(self.route_message(frame))
        finally:
            stopping.cancel()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stream frame failed: %r", task.exception())  # e.g. the ack hit a closed socket

    async def _drain(self) -> None:
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=DRAIN_SECONDS)
