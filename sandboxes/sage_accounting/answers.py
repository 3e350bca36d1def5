"""How the Sage Accounting sandbox answers: Sage's JSON, its error array, its links.

API answers go out on Sage's wire (``adapters.sage_accounting.wire``: decimals as JSON
numbers); an error is a list of ``$severity``/``$dataCode``/``$message``/``$source``
issues; a related record is a ``{"id", "displayed_as", "$path"}`` link. Admin answers are
plain JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from aiohttp import web

from adapters.sage_accounting import wire


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


def base_object(kind: str, id_: str, shown: str) -> dict[str, Any]:
    return {"id": id_, "displayed_as": shown, "$path": f"/{kind}/{id_}"}


def issue(source: str, message: str, code: str = "RecordInvalid") -> dict[str, str]:
    return {"$severity": "error", "$dataCode": code, "$message": message, "$source": source}


class ApiError(Exception):
    def __init__(
        self, status: int, issues: list[dict[str, str]], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.issues = issues
        self.headers = headers or {}


def sage_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=wire.dumps(body), status=status, content_type="application/json", headers=headers
    )


def plain_json(body: Any, status: int = 200) -> web.Response:
    """Admin answers: ordinary JSON (not Sage's wire, so floats are fine)."""
    return web.Response(
        text=json.dumps(body, default=str), status=status, content_type="application/json"
    )
