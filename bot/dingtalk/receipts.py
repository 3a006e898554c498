"""Who read a robot message, on the wire. Shapes from the official SDK (alibabacloud_dingtalk
robot_1_0): BatchOTOQuery `GET /v1.0/robot/oToMessages/readStatus?robotCode&processQueryKey` →
`{sendStatus, messageReadInfoList: [{name, userId, readStatus, readTimestamp}]}`; OrgGroupQuery
`POST /v1.0/robot/groupMessages/query {robotCode, openConversationId, processQueryKey,
maxResults, nextToken}` → `{sendStatus, hasMore, nextToken, readUserIds, readUsers}` (read users
only, no read time); QueryRobotDingReadStatus `POST /v1.0/robot/ding/readStatuses/query
{robotCode, openDingId}` → `{result: {robotDingReadInfoList: [{userId, readStatus}]}}`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from bot.dingtalk.openapi import OpenApiClient
from storage.tz import to_shanghai

OTO_READ_STATUS = "/v1.0/robot/oToMessages/readStatus"
GROUP_QUERY = "/v1.0/robot/groupMessages/query"
DING_READ_STATUS = "/v1.0/robot/ding/readStatuses/query"
GROUP_PAGE = 200  # groupMessages/query's largest page
READ = "READ"  # readStatus of a read message (the old oapi's docs: READ 已读，UNREAD 未读)

CALLS: Counter[str] = Counter()  # calls made, by endpoint: /metrics


async def read_oto(client: OpenApiClient, key: str) -> dict[str, datetime]:
    """userId -> read time, for those who read the one-to-one message `key`."""
    CALLS[OTO_READ_STATUS] += 1
    body = await client.api("GET", OTO_READ_STATUS, params={"robotCode": client.robot_code, "processQueryKey": key})
    reads = {}
    for info in body.get("messageReadInfoList") or []:
        stamp = info.get("readTimestamp")
        if str(info.get("readStatus", "")).upper() == READ and stamp:
            reads[str(info["userId"])] = to_shanghai(datetime.fromtimestamp(int(stamp) / 1000, tz=UTC))
    return reads


async def read_group(client: OpenApiClient, conversation_id: str, key: str) -> list[str]:
    """The userIds who read the group message `key`, every page."""
    readers: list[str] = []
    token: str | None = None
    while True:
        CALLS[GROUP_QUERY] += 1
        body = {"robotCode": client.robot_code, "openConversationId": conversation_id,
                "processQueryKey": key, "maxResults": GROUP_PAGE}
        if token:
            body["nextToken"] = token
        answer = await client.api("POST", GROUP_QUERY, json=body)
        readers += [str(u) for u in answer.get("readUserIds") or []]
        token = answer.get("nextToken") or None
        if not answer.get("hasMore") or not token:
            return list(dict.fromkeys(readers))


async def read_ding(client: OpenApiClient, open_ding_id: str) -> list[str]:
    """The userIds who read the DING `open_ding_id` (DingTalk gives no read time for a DING)."""
    CALLS[DING_READ_STATUS] += 1
    body = await client.api("POST", DING_READ_STATUS, json={"robotCode": client.robot_code, "openDingId": open_ding_id})
    infos = (body.get("result") or {}).get("robotDingReadInfoList") or []
    return [str(i["userId"]) for i in infos if str(i.get("readStatus", "")).upper() == READ]
