"""Sage's answers mapped to failure reasons."""

from __future__ import annotations

import pytest

from adapters.sage_accounting.errors import from_response
from domain.errors import Reason


def issue(source: str, message: str = "is invalid", code: str = "RecordInvalid") -> dict[str, str]:
    return {"$severity": "error", "$dataCode": code, "$message": message, "$source": source}


@pytest.mark.parametrize(
    ("issues", "reason"),
    [
        ([issue("date", "must be after the lock date")], Reason.PERIOD_CLOSED),
        ([issue("base", "The period is locked")], Reason.PERIOD_CLOSED),
        ([issue("invoice_lines[0].ledger_account_id")], Reason.MAPPING_MISSING),
        ([issue("line_items.tax_rate_id", "This field is required.")], Reason.MAPPING_MISSING),
        ([issue("currency_id", "Currency EUR is not enabled")], Reason.CURRENCY_MISMATCH),
        ([issue("contact_id")], Reason.VENDOR_NOT_FOUND),
        ([issue("vendor_reference", "is too long")], Reason.VALIDATION),
        (
            [issue("idempotency_id", "Entity type mismatch", "IdempotencyResourceMismatch")],
            Reason.VALIDATION,
        ),
    ],
)
def test_422_reasons(issues: list[dict[str, str]], reason: Reason) -> None:
    err = from_response(422, issues, what="creating bill X", tenant="acme")
    assert err.reason is reason
    assert [p.field for p in err.problems] == [i["$source"] for i in issues]
    assert not err.transient


def test_every_problem_is_kept() -> None:
    err = from_response(
        422,
        [issue("name", "is required"), issue("tax_number", "is invalid")],
        what="creating supplier",
        tenant="acme",
    )
    assert {p.field for p in err.problems} == {"name", "tax_number"}
    assert "is required" in err.message and "is invalid" in err.message


def test_401_says_how_to_reconnect() -> None:
    err = from_response(
        401, [issue("", "token expired", "AuthenticationFailure")], what="reading", tenant="acme-uk"
    )
    assert err.reason is Reason.AUTH
    assert "billstream connect sage-accounting --tenant acme-uk" in err.message


def test_no_subscription_is_auth_without_reconnect_advice() -> None:
    err = from_response(
        401,
        [issue("", "No active subscription. (MSE)", "AuthorizationFailure")],
        what="reading",
        tenant="acme",
    )
    assert err.reason is Reason.AUTH and "subscription" in err.message


def test_429_carries_retry_after() -> None:
    err = from_response(429, None, what="x", tenant="t", retry_after=7.0)
    assert err.reason is Reason.RATE_LIMITED and err.retry_after == 7.0 and err.transient


def test_5xx_after_a_write_is_uncertain() -> None:
    assert from_response(502, None, what="x", tenant="t", write=True).uncertain
    read = from_response(503, None, what="x", tenant="t", write=False)
    assert read.reason is Reason.UNAVAILABLE and not read.uncertain


def test_request_id_is_kept_for_support() -> None:
    err = from_response(
        500,
        [issue("", "Unexpected", "UnexpectedError")],
        what="x",
        tenant="t",
        request_id="req-123",
    )
    assert err.detail["sage_request_id"] == "req-123"
