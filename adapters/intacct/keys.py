"""billstream's conventions inside an Intacct company, shared by the client and the sandbox.

- A bill we create carries its item key in DESCRIPTION as ``[billstream:<item key>]``: the
  one free-text header field every company has, so ``find_bill`` can tell ours from a bill
  another channel posted without a custom field being set up first.
- VENDORID is derived from the normalised supplier name, so two workers racing to create
  the same supplier collide on one id and converge instead of making two vendors.
- The attachment (supdoc) id is derived from the item key, so a retry finds the upload that
  already happened instead of sending the PDF twice.
- Function control ids of writes are derived from what is written, so a repeat of the same
  write is refused by Intacct under ``uniqueid=true``; a changed write (re-dated after a
  closed period, re-coded after a mapping fix) gets a fresh id.
"""

from __future__ import annotations

import hashlib
import re
import uuid

ITEM_TAG = re.compile(r"\[billstream:([^\]\s]+)\]")
MAX_VENDOR_ID = 20  # Intacct's VENDORID limit
MAX_SUPDOC_ID = 20  # SUPDOCID is free text up to 20 characters
MAX_DESCRIPTION = 1000


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def tag_description(memo: str | None, item_key: str) -> str:
    tag = f"[billstream:{item_key}]"
    memo = (memo or "").strip()
    room = MAX_DESCRIPTION - len(tag) - 1
    if len(memo) > room:
        memo = memo[: max(room - 1, 0)].rstrip() + "…"
    return f"{memo} {tag}" if memo else tag


def item_key_of(description: str | None) -> str | None:
    if not description:
        return None
    m = ITEM_TAG.search(description)
    return m.group(1) if m else None


def derived_vendor_id(match_key: str, attempt: int = 0) -> str:
    """Up to 20 characters: readable stem + 6 hex of the match key (+ ``-n`` on a collision)."""
    stem = re.sub(r"[^A-Z0-9]", "", match_key.upper())
    digest = _digest("vendor", match_key)[:6].upper()
    base = f"{stem[:13]}-{digest}" if stem else f"V-{digest}"
    if attempt == 0:
        return base
    suffix = f"-{attempt}"
    return base[: MAX_VENDOR_ID - len(suffix)] + suffix


def supdoc_id(item_key: str | None, bill_id: str) -> str:
    basis = item_key if item_key else f"bill:{bill_id}"
    return "BS" + _digest("supdoc", basis)[: MAX_SUPDOC_ID - 2].upper()


def write_controlid(kind: str, *parts: str) -> str:
    return f"bs-{kind}-{_digest(kind, *parts)[:40]}"


def read_controlid(kind: str) -> str:
    # For reads and idempotent writes: they may repeat freely, so a fresh id keeps them clear
    # of the uniqueid check.
    return f"bs-{kind}-{uuid.uuid4().hex}"
