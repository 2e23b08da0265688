"""A stand-in for an LLM provider's HTTP API, for the integration tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2


class RecordingProvider:
    """An LLM provider's HTTP API stand-in (no provider is reachable here): `reply(body)` builds
    each response and every request body is kept. Give it to a real SDK client as an httpx2
    MockTransport, so the SDK's own parsing runs."""

    def __init__(self, reply: Callable[[dict[str, Any]], httpx2.Response]) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        return self.reply(body)
