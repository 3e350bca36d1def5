"""How the Sage Accounting sandbox answers: Sage's JSON, its error array, its links.

API answers go out on Sage's wire (``adapters.sage_accounting.wire``: decimals as JSON
numbers); an error is a list of ``$severity``/``$dataCode``/``$message``/``$source``
issues; a related record is a ``{"id", "displayed_as", "$path"}`` link. Admin answers are
plain JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from adapters.sage_accounting import wire


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def moment(text: str) -> dt.datetime:
    """A timestamp the sandbox wrote (``now_iso``) as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# The two forms the Swagger gives for ``*_since``: a date with an offset (midnight there),
# or a date-time with an offset; ``Z`` is taken for ``+00:00``.
_DAY_AT_OFFSET = re.compile(r"(\d{4}-\d{2}-\d{2})T([+-]\d{2}:\d{2})")


def query_moment(query: Mapping[str, str], name: str) -> dt.datetime | None:
    """A ``*_since`` query parameter, or None when absent; 422 when it is neither form."""
    raw = query.get(name)
    if raw is None:
        return None
    text = raw.strip().replace(" ", "+")  # a '+' left unencoded arrives as a space
    day = _DAY_AT_OFFSET.fullmatch(text)
    if day:
        text = f"{day.group(1)}T00:00:00{day.group(2)}"
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ApiError(
            422,
            [
                issue(
                    name,
                    "must be YYYY-MM-DDT(+|-)hh:mm or YYYY-MM-DDThh:mm:ss(+|-)hh:mm",
                    "InvalidParameter",
                )
            ],
        )
    return parsed


def query_day(query: Mapping[str, str], name: str) -> dt.date | None:
    """A ``from_date``/``to_date`` query parameter (a date, or the date of a date-time)."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise ApiError(
            422, [issue(name, "must be a date, YYYY-MM-DD", "InvalidParameter")]
        ) from None


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
