"""Intacct's error blocks, mapped to the failure reasons.

Intacct reports failure at three levels (control, authentication, function result) and
often stacks a specific cause before generic wrappers (``BL01001973`` "Could not create …
record!", ``XL03000009`` "rolled back"). The person reading ``ap.failed`` gets the specific
cause in Sage's own words (description2, support id stripped) plus Sage's correction; the
support id and every raw error stay in ``detail`` for logs and support cases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from adapters.intacct.xml import ErrorDetail
from domain.errors import LedgerError, Reason

Level = Literal["control", "authentication", "result", "http"]

AUTH_ERRORNOS = frozenset({"XL03000006", "XMLGW_JPP0002", "UJPP0002", "PL04000055"})
ROLLED_BACK = "XL03000009"
GENERIC_WRAPPERS = frozenset({"BL01001973", ROLLED_BACK})
# The errorno of a repeated function control id under uniqueid=true is not in our reference
# material; the sandbox answers XL03000004 and the text below, and both are recognised.
REPEATED_CONTROLID = "XL03000004"

_CLOSED_PERIOD = re.compile(
    r"period[s]?\b.*\bclosed|closed\b.*\bperiod|date must be on or after", re.IGNORECASE
)
_ALREADY_EXISTS = re.compile(r"already exists", re.IGNORECASE)
_REPEATED = re.compile(r"already been recorded with the control ?id", re.IGNORECASE)
_RATE = re.compile(r"rate limit|too many (concurrent )?requests", re.IGNORECASE)
_OFFLINE = re.compile(r"temporarily off-?line|service unavailable", re.IGNORECASE)
_VENDOR = re.compile(
    r"\bvendor\b.*\b(invalid|not valid)\b|invalid vendor|activate the vendor", re.IGNORECASE
)
_CURRENCY = re.compile(
    r"currenc(y|ies)\b.*\b(not enabled|invalid|not valid|not supported)|multi-?currency",
    re.IGNORECASE,
)
_MAPPING = re.compile(
    r"\b(account|department|location|project|class|dimension|tax detail|detailid)\b"
    r".*\b(is not valid|invalid|not valid|restricted|missing)\b"
    r"|\binvalid (gl )?(account|department|location|project|class)\b"
    r"|missing the \w+ dimension",
    re.IGNORECASE,
)
_PERMISSION = re.compile(r"do not have permission", re.IGNORECASE)


def _joined(errors: Sequence[ErrorDetail]) -> str:
    return " ".join(f"{e.description} {e.text} {e.correction}" for e in errors)


def is_closed_period(errors: Sequence[ErrorDetail]) -> bool:
    return any(_CLOSED_PERIOD.search(f"{e.description} {e.text}") for e in errors)


_VALUE = re.compile(r"with the value '([^']+)' already exists", re.IGNORECASE)


def clashing_value(errors: Sequence[ErrorDetail]) -> str | None:
    """The value an "already exists" answer names ("Another record with the value 'X'
    already exists."), if it names one."""
    for e in errors:
        found = _VALUE.search(_joined([e]))
        if found:
            return found.group(1)
    return None


def is_already_exists(errors: Sequence[ErrorDetail]) -> bool:
    return any(
        e.errorno in {"BL34000061", "PL05000104"} or _ALREADY_EXISTS.search(_joined([e]))
        for e in errors
    )


def is_repeated_controlid(errors: Sequence[ErrorDetail]) -> bool:
    return any(e.errorno == REPEATED_CONTROLID or _REPEATED.search(_joined([e])) for e in errors)


def is_rolled_back_only(errors: Sequence[ErrorDetail]) -> bool:
    """An ``aborted`` function: it failed only because another one in its transaction did."""
    return bool(errors) and all(e.errorno == ROLLED_BACK for e in errors)


def classify(errors: Sequence[ErrorDetail], level: Level = "result") -> Reason:
    text = _joined(errors)
    numbers = {e.errorno for e in errors}
    if level in {"control", "http"} and any(n.startswith("GW-0010") for n in numbers):
        return Reason.RATE_LIMITED
    if _RATE.search(text):
        return Reason.RATE_LIMITED
    if _OFFLINE.search(text) or any(n.startswith("GW-") for n in numbers):
        return Reason.UNAVAILABLE
    if level in {"control", "authentication"} and numbers & AUTH_ERRORNOS:
        return Reason.AUTH
    if _PERMISSION.search(text):
        return Reason.AUTH
    if is_closed_period(errors):
        return Reason.PERIOD_CLOSED
    if _VENDOR.search(text):
        return Reason.VENDOR_NOT_FOUND
    if _CURRENCY.search(text):
        return Reason.CURRENCY_MISMATCH
    if _MAPPING.search(text):
        return Reason.MAPPING_MISSING
    if is_already_exists(errors):
        return Reason.DUPLICATE
    if level == "authentication":
        return Reason.AUTH
    # BL… business validation and anything unrecognised: permanent, shown in Sage's words.
    return Reason.VALIDATION


def _specific(errors: Sequence[ErrorDetail]) -> list[ErrorDetail]:
    """Errors worth showing: the generic wrappers only when nothing more specific exists."""
    specific = [
        e for e in errors if e.errorno not in GENERIC_WRAPPERS or _CLOSED_PERIOD.search(e.text)
    ]
    if specific:
        return specific
    informative = [e for e in errors if e.errorno != ROLLED_BACK]
    return informative or list(errors)


def explain(errors: Sequence[ErrorDetail]) -> str:
    """Sage's own words, specific cause first, with its correction."""
    parts: list[str] = []
    for err in _specific(errors):
        sentence = err.text or err.errorno
        if err.correction and err.correction not in sentence:
            sentence = f"{sentence.rstrip('.')}. {err.correction}"
        if sentence not in parts:
            parts.append(sentence)
    return " ".join(parts) if parts else "no error text"


def support_id(errors: Sequence[ErrorDetail]) -> str | None:
    return next((e.support_id for e in errors if e.support_id), None)


def ledger_error(
    errors: Sequence[ErrorDetail],
    *,
    what: str,
    level: Level = "result",
    reason: Reason | None = None,
    uncertain: bool = False,
    retry_after: float | None = None,
    extra: dict[str, Any] | None = None,
) -> LedgerError:
    """One ``LedgerError`` for an Intacct failure, message for people, detail for logs."""
    reason = reason or classify(errors, level)
    detail: dict[str, Any] = {
        "system": "intacct",
        "level": level,
        "errors": [e.as_dict() for e in errors],
    }
    sid = support_id(errors)
    if sid:
        detail["support_id"] = sid
    if extra:
        detail.update(extra)
    codes = ", ".join(dict.fromkeys(e.errorno for e in errors if e.errorno))
    message = f"Sage Intacct refused {what}: {explain(errors)}"
    if codes:
        message += f" ({codes})"
    return LedgerError(reason, message, detail=detail, uncertain=uncertain, retry_after=retry_after)
