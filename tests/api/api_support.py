"""Scripted answers for client unit tests: settings for a fake host, replies, a recording server."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr

from bulkops.api.transport import ApiRequest, ApiResponse
from bulkops.settings import Settings

__all__ = ["BASE", "KEY", "Server", "page", "reply", "settings"]

KEY = "console-unit-test-secret-4242"
BASE = "https://api.test/console/v1"


def settings(key: str = KEY, **overrides: Any) -> Settings:
    """Settings for a fake API host."""
    return Settings(api_key=SecretStr(key), base_url=BASE, **overrides)


def reply(
    status: int = 200, body: Any = None, headers: dict[str, str] | None = None
) -> ApiResponse:
    """A response with a JSON body."""
    content = b"" if body is None else json.dumps(body).encode()
    return ApiResponse(status=status, headers=headers or {}, content=content)


def page(items: list[Any], next_page: str | None) -> ApiResponse:
    """One list envelope."""
    return reply(
        200,
        {"message": "listed", "data": items, "pagination": {"nextPage": next_page}},
    )


class Server:
    """A scripted MockTransport handler: answers in turn, records every request."""

    def __init__(self, answers: Iterable[ApiResponse | Exception] = ()) -> None:
        self.answers = list(answers)
        self.requests: list[ApiRequest] = []

    def __call__(self, request: ApiRequest) -> ApiResponse:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else reply(200, {"message": "ok"})
        if isinstance(answer, Exception):
            raise answer
        return answer
