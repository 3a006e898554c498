"""DingTalk's HTTP APIs: token, robot messages, session-webhook replies, media, the org chart.

Every failure becomes a bot.transport.SendError: transient (worth retrying later: 5xx, 429,
throttling error codes, timeouts, dropped connections) or permanent (anything else); a timeout or
a connection lost after the request went out is also `maybe_delivered` (the outcome is unknown). Retrying is
the outbox's job, not this client's; the one retry here is after refreshing a rejected token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

from bot.dingtalk.http import Answer, Http, path_of
from bot.dingtalk.settings import DingTalkSettings
from bot.transport import SendError

log = logging.getLogger(__name__)

MAX_BATCH_USERS = 20  # oToMessages/batchSend takes at most 20 userIds
TOKEN_REFRESH_MARGIN = 300.0  # seconds before expireIn that we fetch a new token
# oapi.dingtalk.com answers HTTP 200 with an errcode. These mean "later": -1 system busy,
# 90002 the platform-wide per-API limit, 90018/90019 the per-app limits.
TRANSIENT_ERRCODES = {-1, 90002, 90018, 90019}
QUOTA_ERRCODE = 90020  # the organisation's monthly call quota: retry much later, not never
QUOTA_RETRY_SECONDS = 3600.0
CREDENTIALS_RETRY_SECONDS = 300.0  # refused app credentials: look again every few minutes
TOKEN_ERRCODES = {40014, 42001}  # invalid / expired access_token on the oapi host

Auth = Literal["header", "query", "none"]


@dataclass(frozen=True)
class BatchSendResult:
    invalid: tuple[str, ...]  # userIds DingTalk does not know: will never arrive
    flow_controlled: tuple[str, ...]  # userIds DingTalk throttled: try again later
    # the key to ask oToMessages/readStatus who read it. (BatchSendOTOResponseBody has exactly these
    # three fields; there is no `filteredStaffIdList`: refused recipients are invalidStaffIdList.)
    process_query_key: str | None = None


class OpenApiClient:
    def __init__(self, settings: DingTalkSettings, *, http: Http | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._http = http or Http(settings.timeout_seconds)
        self._monotonic = monotonic
        self._token: str | None = None
        self._token_refresh_at = 0.0
        self._token_lock = asyncio.Lock()

    @property
    def robot_code(self) -> str:
        return self._settings.robot_code

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OpenApiClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- token -------------------------------------------------------------------------------

    async def access_token(self) -> str:
        async with self._token_lock:
            if self._token is None or self._monotonic() >= self._token_refresh_at:
                try:
                    body = await self._request(
                        "POST", f"{self._settings.openapi_endpoint}/v1.0/oauth2/accessToken", auth="none",
                        json={"appKey": self._settings.client_id,
                              "appSecret": self._settings.client_secret.get_secret_value()},
                    )
                except SendError as exc:
                    if exc.transient:
                        raise
                    raise _credentials_refused(str(exc)) from exc
                expire_in = float(body["expireIn"])
                self._token = str(body["accessToken"])
                self._token_refresh_at = self._monotonic() + max(expire_in - TOKEN_REFRESH_MARGIN, expire_in / 2)
            return self._token

    def _forget_token(self, token: str) -> None:
        if self._token == token:  # another request may already have fetched a fresh one
            self._token = None

    # -- robot messages ----------------------------------------------------------------------

    async def batch_send_users(self, user_ids: Sequence[str], msg_key: str,
                               msg_param: Mapping[str, Any]) -> BatchSendResult:
        if not 1 <= len(user_ids) <= MAX_BATCH_USERS:
            raise ValueError(f"batchSend takes 1–{MAX_BATCH_USERS} userIds, got {len(user_ids)}")
        body = await self._call(
            "POST", f"{self._settings.openapi_endpoint}/v1.0/robot/oToMessages/batchSend", auth="header",
            json={"robotCode": self._settings.robot_code, "userIds": list(user_ids), "msgKey": msg_key,
                  "msgParam": _param(msg_param)},
        )
        return BatchSendResult(invalid=tuple(body.get("invalidStaffIdList") or ()),
                               flow_controlled=tuple(body.get("flowControlledStaffIdList") or ()),
                               process_query_key=body.get("processQueryKey") or None)

    async def send_group(self, open_conversation_id: str, msg_key: str, msg_param: Mapping[str, Any]) -> str | None:
        """Returns the processQueryKey (groupMessages/query pages who read it)."""
        body = await self._call(
            "POST", f"{self._settings.openapi_endpoint}/v1.0/robot/groupMessages/send", auth="header",
            json={"robotCode": self._settings.robot_code, "openConversationId": open_conversation_id,
                  "msgKey": msg_key, "msgParam": _param(msg_param)},
        )
        return body.get("processQueryKey") or None

    async def api(self, method: str, path: str, *, json: Mapping[str, Any] | None = None,
                  params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Any api.dingtalk.com call with the header token, for the modules beside this one
        (receipts, ding, todo): the same errors, retries of the token and timeouts as above."""
        return await self._call(method, f"{self._settings.openapi_endpoint}{path}", auth="header",
                                json=json, params=params)

    async def create_and_deliver_card(self, body: Mapping[str, Any]) -> None:
        """POST /v1.0/card/instances/createAndDeliver: an interactive card, created and shown at once."""
        await self._call("POST", f"{self._settings.openapi_endpoint}/v1.0/card/instances/createAndDeliver",
                         auth="header", json=dict(body))

    async def update_card(self, out_track_id: str, card_param_map: Mapping[str, str]) -> None:
        """PUT /v1.0/card/instances: new card data, shown in place wherever the card was delivered."""
        await self._call("PUT", f"{self._settings.openapi_endpoint}/v1.0/card/instances", auth="header",
                         json={"outTrackId": out_track_id, "cardData": {"cardParamMap": dict(card_param_map)}})

    async def reply_webhook(self, url: str, title: str, markdown: str, at_user_ids: Sequence[str] = ()) -> None:
        """Answer through a message's sessionWebhook (it carries its own credential)."""
        payload = {"msgtype": "markdown", "markdown": {"title": title, "text": markdown},
                   "at": {"atUserIds": list(at_user_ids), "isAtAll": False}}
        _checked(await self._http.request("POST", url, json_body=payload), url, "none")

    async def upload_media(self, path: Path, kind: Literal["image", "file"]) -> str:
        content = Path(path).read_bytes()  # read once: a retried upload re-sends the same bytes
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = await self._call("POST", f"{self._settings.oapi_endpoint}/media/upload", auth="query",
                                params={"type": kind}, files={"media": (path.name, content, mime)})
        return str(body["media_id"])

    # -- org chart (for roster sync) --------------------------------------------------------

    async def list_sub_departments(self, dept_id: int) -> list[dict[str, Any]]:
        body = await self._call("POST", f"{self._settings.oapi_endpoint}/topapi/v2/department/listsub",
                                auth="query", json={"dept_id": dept_id, "language": "zh_CN"})
        return list(body.get("result") or [])

    async def get_department(self, dept_id: int) -> dict[str, Any]:
        body = await self._call("POST", f"{self._settings.oapi_endpoint}/topapi/v2/department/get",
                                auth="query", json={"dept_id": dept_id, "language": "zh_CN"})
        return dict(body["result"])

    async def get_user(self, user_id: str) -> dict[str, Any]:
        body = await self._call("POST", f"{self._settings.oapi_endpoint}/topapi/v2/user/get",
                                auth="query", json={"userid": user_id, "language": "zh_CN"})
        return dict(body["result"])

    # -- plumbing ----------------------------------------------------------------------------

    async def _call(self, method: str, url: str, *, auth: Auth, **kwargs: Any) -> dict[str, Any]:
        """A request with the access token; a rejected token is refreshed and the call made once more."""
        if auth == "none":
            return await self._request(method, url, auth=auth, **kwargs)
        token = await self.access_token()
        try:
            return await self._request(method, url, auth=auth, token=token, **kwargs)
        except _TokenRejected:
            log.info("dingtalk access token rejected, fetching a new one")
            self._forget_token(token)
        token = await self.access_token()
        try:
            return await self._request(method, url, auth=auth, token=token, **kwargs)
        except _TokenRejected as exc:
            raise _credentials_refused(f"{path_of(url)}: access token rejected twice") from exc

    async def _request(self, method: str, url: str, *, auth: Auth, token: str | None = None,
                       params: Mapping[str, str] | None = None, json: Any = None,
                       files: dict[str, tuple[str, bytes, str]] | None = None) -> dict[str, Any]:
        headers = {"x-acs-dingtalk-access-token": token} if auth == "header" and token else {}
        query = dict(params or {})
        if auth == "query" and token:
            query["access_token"] = token
        answer = await self._http.request(method, url, headers=headers, params=query or None, json_body=json,
                                          files=files)
        return _checked(answer, url, auth)


class _TokenRejected(Exception):
    pass


def _credentials_refused(detail: str) -> SendError:
    """Our app's credentials refused: every message would fail alike, so none is given up on —
    they wait (a few minutes at a time) until the operator fixes the secret."""
    return SendError(f"钉钉拒绝了应用凭据（{detail}）", transient=True, retry_after=CREDENTIALS_RETRY_SECONDS,
                     credentials=True)


def _checked(answer: Answer, url: str, auth: Auth) -> dict[str, Any]:
    """DingTalk's answer: the body, or the SendError it means."""
    status, retry_after_header = answer.status, answer.retry_after
    body = answer.body if isinstance(answer.body, dict) else {}
    code = str(body.get("code") or body.get("errcode") or "")
    detail = " ".join(filter(None, (
        f"{path_of(url)}: HTTP {status}", code, str(body.get("message") or body.get("errmsg") or ""),
    )))
    retry_after = _retry_after(retry_after_header)
    if status == 401 and auth != "none":
        raise _TokenRejected(detail)
    # "QpsLimit…" is the new API's throttling answer (403 Forbidden.AccessDenied.QpsLimitForApi)
    if status == 429 or status >= 500 or (status >= 400 and "QpsLimit" in code):
        raise SendError(detail, transient=True, retry_after=retry_after)
    errcode = body.get("errcode") or 0
    if "ApiCountLimit" in code or errcode == QUOTA_ERRCODE:
        log.error("dingtalk monthly API quota exhausted: sends wait an hour at a time (%s)", detail)
        raise SendError(detail, transient=True, retry_after=QUOTA_RETRY_SECONDS)
    if status >= 400:
        raise SendError(detail, transient=False)
    if errcode in TOKEN_ERRCODES and auth == "query":
        raise _TokenRejected(detail)
    if errcode in TRANSIENT_ERRCODES:
        raise SendError(detail, transient=True, retry_after=retry_after)
    if errcode:
        raise SendError(detail, transient=False)
    return body


def _retry_after(value: str | None) -> float | None:
    """Retry-After is seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _param(msg_param: Mapping[str, Any]) -> str:
    return json.dumps(msg_param, ensure_ascii=False)
