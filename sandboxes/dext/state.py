"""What the Dext sandbox holds: its items, faults, counters, and its cursors.

An item's ``seq`` is its place in the change feed: every change (a new status, an edit)
gives it the next one, so a cursor is simply the last ``seq`` a client has seen.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

DEFAULT_CLIENT_ID = "billstream-sandbox"

DEFAULT_CLIENT_SECRET = "dext-sandbox-secret"

DEFAULT_TOKEN = "dext-sandbox-token"

MAX_PAGE = 200


@dataclass
class SandboxItem:
    account: str
    item: dict[str, Any]
    document_path: Path | None
    status: str
    seq: int


@dataclass
class Window:
    started: float
    used: int = 0


@dataclass
class Faults:
    latency_ms: int = 0
    rate_limit: int = 0  # requests per window and token; 0 = no limit
    rate_window: float = 60.0
    fail_every: int = 0  # every Nth API request answers 503; 0 = never


@dataclass
class Stats:
    requests: int = 0
    rate_limited: int = 0
    failed: int = 0
    tokens_issued: int = 0
    documents: int = 0
    pages: int = 0
    per_path: dict[str, int] = field(default_factory=dict)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor") from exc
    version, _, seq = text.partition(":")
    if version != "v1" or not seq.isdigit():
        raise ValueError("not a cursor")
    return int(seq)


def error(status: int, error: str, description: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )


class DextCore:
    """The state every part of the sandbox shares (``DextSandbox`` sets it up)."""

    client_id: str
    client_secret: str
    static_token: str | None
    token_ttl: float
    url_ttl: float
    faults: Faults
    stats: Stats
    items: dict[tuple[str, str], SandboxItem]
    accounts: list[str]
    _seq: int
    _tokens: dict[str, float]  # access token -> expiry (monotonic)
    _refresh: set[str]
    _windows: dict[str, Window]
    _sign_key: bytes

    def _bump(self, it: SandboxItem) -> None:
        self._seq += 1
        it.seq = self._seq
