"""Sage Accounting's answers turned into failure reasons.

Sage reports failures as an array of ``{"$severity", "$dataCode", "$message", "$source"}``
(``$source`` names the field, ``"base"`` or ``""`` for the record). Exact texts for a locked
period, an unknown currency and the like are not documented, so the mapping looks at
``$source`` first and the message only as a fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from domain.errors import LedgerError, Problem, Reason

RECONNECT = "billstream connect sage-accounting --tenant {tenant}"


@dataclass(frozen=True)
class SageIssue:
    severity: str
    data_code: str
    message: str
    source: str

    def problem(self) -> Problem:
        return Problem(code=self.data_code or "sage", field=self.source, message=self.message)


def parse_issues(body: Any) -> list[SageIssue]:
    """Sage's error array; anything else (an HTML gateway page...) gives no issues."""
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    out = []
    for item in items:
        if isinstance(item, dict) and ("$message" in item or "$dataCode" in item):
            out.append(
                SageIssue(
                    severity=str(item.get("$severity", "error")),
                    data_code=str(item.get("$dataCode", "")),
                    message=str(item.get("$message", "")),
                    source=str(item.get("$source", "")),
                )
            )
    return out


_PERIOD_WORDS = re.compile(r"lock|closed|year.?end|vat return|accounts start", re.IGNORECASE)


def _leaf(source: str) -> str:
    return re.split(r"[.\[\]]+", source.strip("."))[-1] if source else ""


def reason_for_422(issues: list[SageIssue]) -> Reason:
    """The one reason for a 422: the most specific issue wins."""
    leaves = {_leaf(i.source) for i in issues}
    if any(i.data_code == "IdempotencyResourceMismatch" for i in issues):
        return Reason.VALIDATION
    if "date" in leaves or any(_PERIOD_WORDS.search(i.message) for i in issues):
        return Reason.PERIOD_CLOSED
    if leaves & {"ledger_account_id", "tax_rate_id"}:
        return Reason.MAPPING_MISSING
    if "currency_id" in leaves or "exchange_rate" in leaves:
        return Reason.CURRENCY_MISMATCH
    if "contact_id" in leaves or "contact" in leaves:
        return Reason.VENDOR_NOT_FOUND
    return Reason.VALIDATION


def describe(issues: list[SageIssue]) -> str:
    if not issues:
        return "no details"
    return "; ".join(
        f"{i.source}: {i.message}" if i.source and i.source != "base" else i.message
        for i in issues[:5]
    )


def from_response(
    status: int,
    body: Any,
    *,
    what: str,
    tenant: str,
    request_id: str | None = None,
    retry_after: float | None = None,
    write: bool = False,
) -> LedgerError:
    """The LedgerError for a non-2xx answer to ``what`` (e.g. "creating bill INV-1")."""
    issues = parse_issues(body)
    detail: dict[str, Any] = {"http_status": status}
    if request_id:
        detail["sage_request_id"] = request_id  # Sage support asks for it
    if issues:
        detail["sage_errors"] = [
            {"dataCode": i.data_code, "source": i.source, "message": i.message} for i in issues
        ]
    problems = [i.problem() for i in issues]
    text = describe(issues)
    if status == 401:
        if any("subscription" in i.message.lower() for i in issues):
            return LedgerError(
                Reason.AUTH,
                f"Sage Accounting refused {what}: the business has no active subscription "
                f"({text}).",
                detail=detail,
            )
        return LedgerError(
            Reason.AUTH,
            f"Sage Accounting refused the credentials for {what} ({text}). Reconnect with "
            f"`{RECONNECT.format(tenant=tenant)}`.",
            detail=detail,
        )
    if status == 403:
        return LedgerError(
            Reason.AUTH,
            f"The connected Sage user may not do {what} ({text}); give the user Restricted or "
            "Full Access to Contacts and Purchases, then replay.",
            detail=detail,
        )
    if status == 429:
        return LedgerError(
            Reason.RATE_LIMITED,
            f"Sage Accounting throttled {what} (HTTP 429).",
            detail=detail,
            retry_after=retry_after,
        )
    if status >= 500:
        return LedgerError(
            Reason.UNAVAILABLE,
            f"Sage Accounting failed {what} (HTTP {status}, {text}).",
            detail=detail,
            retry_after=retry_after,
            # a gateway error after a POST says nothing about whether the write happened
            uncertain=write,
        )
    if status == 422:
        reason = reason_for_422(issues)
        return LedgerError(
            reason, f"Sage Accounting refused {what}: {text}.", problems=problems, detail=detail
        )
    if status == 404:
        return LedgerError(
            Reason.VALIDATION,
            f"Sage Accounting does not know what {what} refers to (HTTP 404, {text}).",
            problems=problems,
            detail=detail,
        )
    return LedgerError(
        Reason.VALIDATION,
        f"Sage Accounting refused {what} (HTTP {status}, {text}).",
        problems=problems,
        detail=detail,
    )
