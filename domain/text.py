"""Quoting what a client sent inside a message: its repr, cut to a readable length.

A problem message is read by a person, stored in the failed event and shown on the operator
page; a 300-digit "date" quoted whole helps nobody and fills all three.
"""

from __future__ import annotations

SHOWN_CHARS = 60


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)``, or its first ``limit`` characters and how long the whole was."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes) else len(text)
    return f"{text[: limit - 1]}… ({size} characters)"
