"""Where DingTalk lives and who we are there. Every DingTalk URL in the code derives from these."""

from __future__ import annotations

import os

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.transport import DEFAULT_RATE_PER_SECOND
from reminders.rules import ENV_FILE

# DingTalk refused the app's Client ID / Secret: the one sentence the log and the CLI give for it
CREDENTIALS_REJECTED = "钉钉拒绝了应用凭据，请检查 DUBAN_DINGTALK_CLIENT_ID / CLIENT_SECRET"
CREDENTIALS_MISSING = "缺少 DUBAN_DINGTALK_CLIENT_ID / DUBAN_DINGTALK_CLIENT_SECRET，见 docs/deploy.md"


class DingTalkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUBAN_DINGTALK_", env_file=ENV_FILE, extra="ignore")

    client_id: str = ""  # the app's Client ID (旧称 AppKey)
    client_secret: SecretStr = SecretStr("")  # Client Secret (旧称 AppSecret)
    robot_code: str = ""  # an internal app's robot code equals its Client ID: left empty, that is used
    robot_name: str = ""  # the robot's display name, to strip "@督办助手" if a client leaves it in the text
    # The SDK's own variable, so one setting points both our client and any SDK code at a test server.
    openapi_endpoint: str = Field(
        default_factory=lambda: os.environ.get("DINGTALK_OPENAPI_ENDPOINT", "https://api.dingtalk.com")
    )
    oapi_endpoint: str = "https://oapi.dingtalk.com"  # the old host: media upload and the org chart
    # interactive cards (DingTalk's public markdown-with-buttons template); "off" falls back to
    # markdown with dtmd:// links, for editions without interactive cards
    cards: bool = True
    rate_per_second: float = DEFAULT_RATE_PER_SECOND  # sends per second, all recipients together
    timeout_seconds: float = 10.0  # per HTTP request; a timeout is a transient failure, retried later
    # the stream's reconnect backoff: doubling from min to max (each wait jittered down to half)
    reconnect_min_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0
    # a DingTalk 待办 per task for the lead unit's head (needs the 待办 permissions: docs/deploy.md)
    todo: bool = True
    todo_liaisons: bool = False  # and one for each of the unit's liaisons (联络员) too

    @model_validator(mode="after")
    def _defaults(self) -> DingTalkSettings:
        self.openapi_endpoint = self.openapi_endpoint.rstrip("/")
        self.oapi_endpoint = self.oapi_endpoint.rstrip("/")
        if not self.robot_code:
            self.robot_code = self.client_id
        return self
