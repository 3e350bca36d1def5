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
        data = json.loads(raw, parse_float=str, parse_int=str)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ItemFormatError(f"not valid JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ItemFormatError(f"entry {i} is a {type(item).__name__}, not a JSON object")
    return items


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
    """The item's original document, from ``document`` or the flat ``image_url`` fields."""
    doc = item.get("document")
    if isinstance(doc, Mapping) and doc.get("url"):
        url = str(doc["url"])
        return DocumentRef(
            url=url,
            filename=str(doc.get("filename") or url.rsplit("/", 1)[-1].split("?", 1)[0]),
            content_type=doc.get("content_type"),
        )
    for key in ("document_url", "image_url", "direct_download_url"):
        if item.get(key):
            url = str(item[key])
            return DocumentRef(url=url, filename=url.rsplit("/", 1)[-1].split("?", 1)[0])
    return None
