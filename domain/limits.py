"""The one size and depth limit every way in enforces, and the checks that apply it.

An item must fit in every event it later becomes: the work events carry it parsed, a failure
event carries the event it failed on. Kafka refuses records over about 1 MiB, so an item is
held well below that at every ingress (push, folder, API poller, e-invoices); a stage that
still meets an oversized or unreadable record parks a reference to it, never a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.errors import Problem

# A Dext item is a few kilobytes; 100 lines of text are about 20 KB. 256 KiB leaves room for
# the parsed invoice and draft bill (each line about three times its text) inside one event.
MAX_ITEM_BYTES = 256 * 1024
# Dext items are four levels deep (item, lines, line, tax); 32 leaves room and stays far below
# what any JSON reader on the path (pydantic, the standard library) recurses to.
MAX_DEPTH = 32
MAX_LINES = 500
MAX_ID_CHARS = 200
# What a stage may put on the log: under the broker's and producer's 1 MiB default.
MAX_EVENT_BYTES = 900 * 1024
# How much of an unreadable record a failure event keeps, for the operator to recognise it.
EXCERPT_CHARS = 2048


def depth_of(value: Any) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``[]`` and ``{}`` are 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth  # deep enough to refuse: stop walking
        stack.extend((child, depth) for child in children)
    return deepest


def item_problems(item: Mapping[str, Any], size: int) -> list[Problem]:
    """What makes a decoded item too big or too deep to carry; ``size`` is its JSON length."""
    problems: list[Problem] = []
    if size > MAX_ITEM_BYTES:
        problems.append(
            Problem(
                code="item_too_large",
                field="",
                message=f"the item is {size} bytes; at most {MAX_ITEM_BYTES} bytes are taken",
            )
        )
    depth = depth_of(item)
    if depth > MAX_DEPTH:
        problems.append(
            Problem(
                code="item_too_deep",
                field="",
                message=f"the item nests more than {MAX_DEPTH} levels deep",
            )
        )
    lines = item.get("line_items")
    if isinstance(lines, list) and len(lines) > MAX_LINES:
        problems.append(
            Problem(
                code="too_many_lines",
                field="line_items",
                message=f"the item has {len(lines)} lines; at most {MAX_LINES} are taken",
            )
        )
    return problems


def excerpt(raw: bytes | None) -> str:
    """The start of a record as text (bytes that are not UTF-8 shown as U+FFFD)."""
    if not raw:
        return ""
    text = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS]
