"""JSON as Sage speaks it, with money kept exact.

Sage's amounts are JSON numbers (``format: double``). We never go through ``float``: a Decimal
is written with its own digits (``Decimal("132.60")`` becomes ``132.60``), and numbers read
back become Decimal (``parse_float=Decimal``). orjson cannot do either, hence this module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

_encode_str = json.JSONEncoder(ensure_ascii=False).encode


def _parts(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite amount ({value}) to Sage")
        # 'f' keeps the scale and never uses an exponent: 1E+2 -> "100", 0.10 -> "0.10"
        out.append(format(value, "f"))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        raise TypeError("floats never go on the wire; use Decimal for amounts")
    elif isinstance(value, dt.date):  # datetime included
        out.append(_encode_str(value.isoformat()))
    elif isinstance(value, dict):
        _object(value, out)
    elif isinstance(value, list | tuple):
        _array(value, out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _object(value: dict[Any, Any], out: list[str]) -> None:
    out.append("{")
    first = True
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
        if not first:
            out.append(",")
        first = False
        out.append(_encode_str(key))
        out.append(":")
        _parts(item, out)
    out.append("}")


def _array(value: list[Any] | tuple[Any, ...], out: list[str]) -> None:
    out.append("[")
    for i, item in enumerate(value):
        if i:
            out.append(",")
        _parts(item, out)
    out.append("]")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; Decimal as a number with its exact digits, float refused."""
    out: list[str] = []
    _parts(value, out)
    return "".join(out).encode()


def loads(data: bytes | str) -> Any:
    """JSON with every non-integer number as Decimal."""
    return json.loads(data, parse_float=Decimal)


def idempotency_id(*parts: str) -> str:
    """Sage's ``idempotency_id``: 32 lowercase hex characters, stable for the same parts."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def created_at(data: Mapping[str, Any]) -> dt.datetime | None:
    """When Sage says a resource was created (``created_at``), timezone-aware; None if not."""
    return moment(data.get("created_at"))


def moment(raw: Any) -> dt.datetime | None:
    """A Sage date-time field, timezone-aware (UTC when it gives no offset); None if not one."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
