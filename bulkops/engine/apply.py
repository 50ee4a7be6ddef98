"""Executing a mutation: the one place that turns a :class:`Mutation` into a write.

Jobs never write; the runner calls :func:`send_mutation` once per attempt, inside
the quota limiter's slot and after the intent is durable. Nothing here retries:
whether a failed write may be sent again is :mod:`bulkops.api.retry`'s decision.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..api.client import ConsoleClient
from ..api.reviews import DESCRIPTION_HEADER, encode_description
from ..api.transport import ApiRequest, ApiResponse
from .mutations import Mutation

__all__ = ["build_request", "created_id", "send_mutation"]


def build_request(
    client: ConsoleClient, mutation: Mutation, review_description: str | None = None
) -> ApiRequest:
    """The HTTP request for one attempt of ``mutation`` (headers hold the key: never log);
    ``review_description`` describes the review it may open."""
    has_body = mutation.body is not None
    request = client.build_request(
        mutation.method, mutation.path, json=mutation.body, has_body=has_body
    )
    if review_description is None:
        return request
    headers = {**request.headers, DESCRIPTION_HEADER: encode_description(review_description)}
    return dataclasses.replace(request, headers=headers)


async def send_mutation(
    client: ConsoleClient, mutation: Mutation, review_description: str | None = None
) -> ApiResponse:
    """Send one attempt; returns the 2xx response or raises a typed ``ApiError``."""
    return await client.send(build_request(client, mutation, review_description))


def created_id(mutation: Mutation, response: ApiResponse) -> str | None:
    """The id a create's response names (``data.id``), kept for the undo."""
    if mutation.action != "create":
        return None
    try:
        body: Any = response.json()
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    value = data.get("id") if isinstance(data, dict) else None
    return str(value) if value is not None else None
