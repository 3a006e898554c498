"""DING from the robot, on the wire. Shape from the official SDK (alibabacloud_dingtalk robot_1_0,
RobotSendDing): `POST /v1.0/robot/ding/send {robotCode, remindType (1 in-app, 2 SMS, 3 phone),
receiverUserIdList, content, callVoice?}` → `{openDingId, failedList}`. `failedList` is typed as a
plain map in the SDK; we read every list of userIds in it as recipients not reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.dingtalk.openapi import OpenApiClient

DING_SEND = "/v1.0/robot/ding/send"
REMIND_TYPES = (1, 2, 3)


@dataclass(frozen=True)
class DingResult:
    open_ding_id: str | None
    failed: tuple[str, ...]


async def send_ding(client: OpenApiClient, user_ids: Sequence[str], content: str, remind_type: int) -> DingResult:
    if remind_type not in REMIND_TYPES:
        raise ValueError(f"remindType must be one of {REMIND_TYPES}, got {remind_type}")
    body = await client.api("POST", DING_SEND, json={"robotCode": client.robot_code, "remindType": remind_type,
                                                     "receiverUserIdList": list(user_ids), "content": content})
    failed: list[str] = []
    for value in (body.get("failedList") or {}).values():
        if isinstance(value, list):
            failed += [str(u) for u in value]
    return DingResult(open_ding_id=body.get("openDingId") or None, failed=tuple(dict.fromkeys(failed)))
