"""The shape shared by the Sage Accounting sandbox's parts: its state, pages, idempotency.

Each family of endpoints (OAuth, reference data, contacts, bills, attachments, admin) is a
mixin over ``SageCore``. Every list answers in Sage's ``$items`` pages with
``attributes`` projection; a create that carries an ``idempotency_id`` seen within 7 days
answers what it answered the first time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sandboxes.sage_accounting.answers import ApiError, issue, sage_json
from sandboxes.sage_accounting.state import (
    FAIL_MODES,
    IDEMPOTENCY_WINDOW,
    Business,
    Grant,
    SandboxOptions,
)


def empty_stats() -> dict[str, Any]:
    return {
        "requests": 0,
        "by_route": {},
        "by_business": {},
        "by_status": {},
        "throttled": 0,
        "faults": dict.fromkeys(FAIL_MODES, 0),
        "schema_violations": 0,
        "token_requests": 0,
        "token_refreshes": 0,
        "token_failures": 0,
    }


class SageCore:
    """The state every part of the sandbox shares (``SageSandbox`` sets it up)."""

    options: SandboxOptions
    random: random.Random
    businesses: dict[str, Business]
    codes: dict[str, tuple[str, str, float]]  # code -> client, redirect, expiry
    access_tokens: dict[str, float]
    refresh_tokens: dict[str, Grant]
    ready_tokens: dict[str, str]  # business id -> refresh token for the ready line
    stats: dict[str, Any]
    _dirty: bool

    _BASE_KEYS = ("id", "displayed_as", "$path")

    @classmethod
    def _project(cls, item: dict[str, Any], attributes: str | None) -> dict[str, Any]:
        if attributes == "all":
            return dict(item)
        wanted = {a.strip() for a in (attributes or "").split(",") if a.strip()}
        return {k: v for k, v in item.items() if k in cls._BASE_KEYS or k in wanted}

    def _page(
        self,
        request: web.Request,
        path: str,
        items: list[dict[str, Any]],
        extra: Callable[[dict[str, Any], str | None], dict[str, Any]] | None = None,
    ) -> web.Response:
        per_page = int(request.query.get("items_per_page", "20"))
        page = max(1, int(request.query.get("page", "1")))
        total = len(items)
        chunk = items[(page - 1) * per_page : page * per_page]
        attributes = request.query.get("attributes")
        shown = [extra(i, attributes) if extra else self._project(i, attributes) for i in chunk]
        others = {k: v for k, v in request.query.items() if k != "page"}

        def link(n: int) -> str:
            return f"{path}?{urlencode({**others, 'page': n})}"

        return sage_json(
            {
                "$total": total,
                "$page": page,
                "$next": link(page + 1) if page * per_page < total else None,
                "$back": link(page - 1) if page > 1 else None,
                "$itemsPerPage": per_page,
                "$items": shown,
            }
        )

    def _kind(self, request: web.Request) -> str:
        return request.match_info.route.resource.canonical.strip("/").split("/")[1]  # type: ignore[union-attr]

    def _replay(self, biz: Business, kind: str, resource: dict[str, Any]) -> web.Response | None:
        key = resource.get("idempotency_id")
        if not key:
            return None
        entry = biz.idempotency.get(key)
        if entry is None or time.time() - float(entry["at"]) > IDEMPOTENCY_WINDOW:
            return None
        if entry["type"] != kind:
            raise ApiError(
                422,
                [issue("idempotency_id", "Entity type mismatch", "IdempotencyResourceMismatch")],
            )
        return sage_json(entry["body"], int(entry["status"]))

    def _remember(
        self, biz: Business, kind: str, resource: dict[str, Any], status: int, body: dict[str, Any]
    ) -> None:
        key = resource.get("idempotency_id")
        if key:
            biz.idempotency[key] = {
                "type": kind,
                "status": status,
                "body": body,
                "at": Decimal(repr(time.time())),
            }
