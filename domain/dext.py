"""Reading Dext items off the wire without ever turning an amount into a float."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

import orjson

from domain.errors import Problem
from domain.limits import MAX_DEPTH, MAX_ID_CHARS, depth_of, item_problems
from domain.models import DocumentRef


class ItemFormatError(ValueError):
    """The bytes are not a Dext item (or a list of them)."""


class ItemRefused(ValueError):
    """An item no source may publish (no usable id, too big, too deep); ``problems`` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems

    @property
    def too_large(self) -> bool:
        return any(p.code in ("item_too_large", "too_many_lines") for p in self.problems)


def check_item(item: Mapping[str, Any]) -> list[Problem]:
    """Every reason the item cannot enter the pipeline at all (empty when it can)."""
    problems = [p for p in (id_problem(item),) if p is not None]
    size = len(orjson.dumps(item, default=str))
    return problems + item_problems(item, size)


def loads_items(raw: bytes | str) -> list[dict[str, Any]]:
    """Parse one item or a JSON array of items; numbers keep their exact text as strings."""
    try:
        # NaN and Infinity literals (not JSON, but Python writes them) stay text too, so that
        # validation can name them instead of a float slipping through.
        data = json.loads(raw, parse_float=str, parse_int=str, parse_constant=str)
    except RecursionError:
        raise ItemFormatError(f"the JSON nests more than {MAX_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ItemFormatError(f"not valid JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ItemFormatError(
                f"entry {i} is {_KIND.get(type(item), 'a value')}, not a JSON object (an item)"
            )
        if depth_of(item) > MAX_DEPTH:
            raise ItemFormatError(f"entry {i} nests more than {MAX_DEPTH} levels deep")
    try:
        # JSON may escape a lone UTF-16 surrogate (\ud800); no UTF-8 text can hold it, so
        # every later step (Kafka, SQLite, Sage) would fail on it: refuse it here.
        orjson.dumps(items)
    except orjson.JSONEncodeError:
        raise ItemFormatError(
            "the JSON holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
        ) from None
    return items


# What a decoded JSON value was; numbers were decoded to their text, hence "string or number".
_KIND: dict[type, str] = {
    list: "an array",
    str: "a string or number",
    bool: "true or false",
    type(None): "null",
}


def find_floats(value: Any, path: str = "") -> list[str]:
    """Paths of float values inside a decoded item; there must be none."""
    if isinstance(value, float):
        return [path or "."]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in find_floats(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in find_floats(v, f"{path}[{i}]")]
    return []


def item_id(item: Mapping[str, Any]) -> str | None:
    """The item's Dext id as every source keys it (deduplication, Kafka key, audit): text or
    a whole number, surrounding spaces stripped; None when it is missing or unusable."""
    return None if id_problem(item) else _normalised_id(item.get("id"))


def _normalised_id(value: Any) -> str:
    return unicodedata.normalize("NFC", str(value)).strip()


def id_problem(item: Mapping[str, Any]) -> Problem | None:
    """Why the item's ``id`` cannot key an item, or None when it can."""
    value = item.get("id")

    def problem(message: str) -> Problem:
        return Problem(code="invalid_id", field="id", message=message)

    if value is None or (isinstance(value, str) and not value.strip()):
        return problem("the item has no Dext id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return problem("the item's Dext id must be text or a whole number")
    text = _normalised_id(value)
    if len(text) > MAX_ID_CHARS:
        return problem(f"the item's Dext id is over {MAX_ID_CHARS} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        return problem("the item's Dext id holds control or unassigned characters")
    return None


def document_ref(item: Mapping[str, Any]) -> DocumentRef | None:
    """The item's original document, from ``document`` or the flat ``image_url`` fields;
    None when there is none or it names no url (text fields only: never a crash)."""
    doc = item.get("document")
    if isinstance(doc, Mapping) and isinstance(doc.get("url"), str) and doc["url"].strip():
        url = doc["url"].strip()
        filename = doc.get("filename")
        content_type = doc.get("content_type")
        return DocumentRef(
            url=url,
            filename=filename.strip()
            if isinstance(filename, str) and filename.strip()
            else _filename(url),
            content_type=content_type if isinstance(content_type, str) else None,
        )
    for key in ("document_url", "image_url", "direct_download_url"):
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return DocumentRef(url=value.strip(), filename=_filename(value.strip()))
    return None


def _filename(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0] or "document"
