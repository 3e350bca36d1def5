"""The failure taxonomy: one machine-readable reason per way an item can stop.

The table of reasons, and what each means for retry, is in docs/architecture.md ("Failures").
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class Reason(StrEnum):
    VALIDATION = "validation"
    MAPPING_MISSING = "mapping_missing"
    CURRENCY_MISMATCH = "currency_mismatch"
    VENDOR_NOT_FOUND = "vendor_not_found"
    PERIOD_CLOSED = "period_closed"
    DUPLICATE = "duplicate"
    POSSIBLE_DUPLICATE = "possible_duplicate"  # held for a person: release or reject
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    DOCUMENT_UNAVAILABLE = "document_unavailable"
    ATTACHMENT_FAILED = "attachment_failed"
    ATTACHMENT_TOO_LARGE = "attachment_too_large"  # over the ledger's limit even re-encoded
    ATTACHMENT_TYPE = "attachment_type"  # a file type the ledger refuses, not convertible
    UNREADABLE = "unreadable"  # a record no stage can read or carry: parked by reference


class Retry(StrEnum):
    """How an item that failed for a reason can move again."""

    AUTOMATIC = "automatic"  # retried in place with backoff; parked only when the budget runs out
    REPLAY = "replay"  # replay as soon as the cause is gone (period reopened, document back)
    AFTER_FIX = "after_fix"  # the item itself must be corrected in Dext first
    AFTER_CONFIG = "after_config"  # the tenants file or credentials must change first
    NEVER = "never"


RETRY_OF: dict[Reason, Retry] = {
    Reason.VALIDATION: Retry.AFTER_FIX,
    Reason.MAPPING_MISSING: Retry.AFTER_CONFIG,
    Reason.CURRENCY_MISMATCH: Retry.AFTER_CONFIG,
    Reason.VENDOR_NOT_FOUND: Retry.AFTER_CONFIG,
    Reason.PERIOD_CLOSED: Retry.REPLAY,
    Reason.DUPLICATE: Retry.NEVER,
    # Never by replay: a person releases it (it goes on, once) or rejects it (duplicate).
    Reason.POSSIBLE_DUPLICATE: Retry.NEVER,
    Reason.AUTH: Retry.AFTER_CONFIG,
    Reason.RATE_LIMITED: Retry.AUTOMATIC,
    Reason.UNAVAILABLE: Retry.AUTOMATIC,
    Reason.DOCUMENT_UNAVAILABLE: Retry.REPLAY,
    Reason.ATTACHMENT_FAILED: Retry.REPLAY,
    Reason.ATTACHMENT_TOO_LARGE: Retry.AFTER_FIX,
    Reason.ATTACHMENT_TYPE: Retry.AFTER_FIX,
    Reason.UNREADABLE: Retry.NEVER,
}

# What a person should do about each reason, in plain words (CLI, notifications, operator page).
ADVICE: dict[Reason, str] = {
    Reason.VALIDATION: "Correct the item in Dext (or its extracted fields), then replay it.",
    Reason.MAPPING_MISSING: "Add the category or tax rate to the tenant's GL mapping, then replay.",
    Reason.CURRENCY_MISMATCH: "Enable the currency for the company (tenants file), then replay.",
    Reason.VENDOR_NOT_FOUND: "Create the supplier in Sage or turn on auto-create, then replay.",
    Reason.PERIOD_CLOSED: "Reopen the period in Sage (or set policy 'redate'), then replay.",
    Reason.DUPLICATE: "A bill with this supplier and invoice number already exists; nothing to do "
    "unless it is wrong.",
    Reason.POSSIBLE_DUPLICATE: "It looks like an earlier invoice (named with the rule that "
    "matched): compare them, then release it (`billstream duplicates release`) or reject it.",
    Reason.AUTH: "Fix the Sage credentials or reconnect the company, then replay.",
    Reason.RATE_LIMITED: "Sage throttled us past the retry budget; replay once the load drops.",
    Reason.UNAVAILABLE: "Sage or the network was unavailable past the retry budget; replay later.",
    Reason.DOCUMENT_UNAVAILABLE: "The original document could not be fetched; check the source, "
    "then replay.",
    Reason.ATTACHMENT_FAILED: "The bill exists; only the attachment failed. Replay to attach it.",
    Reason.ATTACHMENT_TOO_LARGE: "The bill exists; its document is over the ledger's size limit "
    "even compressed. Attach a smaller scan in Dext (or by hand in Sage), then replay.",
    Reason.ATTACHMENT_TYPE: "The bill exists; the ledger does not take this kind of file. Save "
    "it as PDF, JPEG or PNG in Dext (or attach it by hand in Sage), then replay.",
    Reason.UNREADABLE: "The record could not be read or was too large to carry; find it by its "
    "topic and offset, then send the invoice again through a source (they check size and depth).",
}


def is_transient(reason: Reason) -> bool:
    return RETRY_OF[reason] is Retry.AUTOMATIC


class Problem(BaseModel):
    """One thing wrong with an item: stable ``code``, the ``field`` path, and what to fix."""

    code: str
    field: str
    message: str


class StageError(Exception):
    """A stage could not do its work. ``detail`` is for logs (support ids), never secrets."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        problems: list[Problem] | None = None,
        detail: dict[str, Any] | None = None,
        uncertain: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.problems = problems or []
        self.detail = detail or {}
        # The write may have happened (timeout, HTTP 524): look before writing again.
        self.uncertain = uncertain
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return is_transient(self.reason)

    def __repr__(self) -> str:
        return f"StageError({self.reason.value!r}, {self.message!r})"


class LedgerError(StageError):
    """Raised by a ledger adapter; the reason is already mapped to a ``Reason``."""
