"""Reading Dext items off the wire without ever turning an amount into a float."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from domain.models import DocumentRef


class ItemFormatError(ValueError):
    """The bytes are not a Dext item (or a list of them)."""


def loads_items(raw: bytes | str) -> list[dict[str, Any]]:
    """Parse one item or a JSON array of items; numbers keep their exact text as strings."""
    try:
        # NaN and Infinity literals (not JSON, but Python writes them) stay text too, so that
        # validation can name them instead of a float slipping through.
        data = json.loads(raw, parse_float=str, parse_int=str, parse_constant=str)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ItemFormatError(f"not valid JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ItemFormatError(
                f"entry {i} is {_KIND.get(type(item), 'a value')}, not a JSON object (an item)"
            )
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
    value = item.get("id")
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip()


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
