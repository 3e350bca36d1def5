"""Intacct errors mapped to failure reasons, explained in Sage's words, support id kept."""

from __future__ import annotations

import pytest

from adapters.intacct.errors import (
    classify,
    explain,
    is_already_exists,
    is_repeated_controlid,
    is_rolled_back_only,
    ledger_error,
)
from adapters.intacct.xml import ErrorDetail
from domain.errors import Reason

WRAPPER = ErrorDetail("BL01001973", "Could not create APBill record!")
ROLLED = ErrorDetail(
    "XL03000009", "The entire transaction in this operation has been rolled back due to an error."
)


def test_sender_not_authorised_is_auth_with_the_correction() -> None:
    err = ledger_error(
        [
            ErrorDetail(
                "XL03000006",
                "Invalid Web Services Authorization",
                "The sender ID 'acme' is not authorized to make Web Services requests to company "
                "ID 'GLOBEX'.",
                "Contact the company administrator to grant Web Services authorization to this "
                "sender ID.",
            )
        ],
        what="the sign-in",
        level="authentication",
    )
    assert err.reason is Reason.AUTH
    assert not err.transient
    assert "not authorized to make Web Services requests to company ID 'GLOBEX'" in err.message
    assert "Contact the company administrator to grant Web Services authorization" in err.message
    assert "XL03000006" in err.message
    assert err.detail["level"] == "authentication"


@pytest.mark.parametrize(
    ("errorno", "text"),
    [
        ("XL03000006", "Incorrect Intacct XML Partner ID or password."),
        ("XMLGW_JPP0002", "Sign-in information is incorrect. Please check your request."),
        ("PL04000055", "This company is a demo company and has expired."),
    ],
)
def test_control_level_sign_in_problems_are_auth(errorno: str, text: str) -> None:
    assert classify([ErrorDetail(errorno, "", text)], "control") is Reason.AUTH


def test_closed_period_is_period_closed_and_shown_plainly() -> None:
    errors = [
        ErrorDetail(
            "BL01001973",
            "Could not create Document record!",
            "Periods are closed. Your transaction date (03/10/2026) is within a period that's "
            "been closed. You can add, modify, or delete a transaction only if the date of the "
            "transaction is within a period that's open. [Support ID: Qx1%7EZz2]",
            "Change the transaction date to one in an open period, or reopen the period.",
        ),
        WRAPPER,
    ]
    err = ledger_error(errors, what="bill P-1")
    assert err.reason is Reason.PERIOD_CLOSED
    assert "Periods are closed. Your transaction date (03/10/2026)" in err.message
    assert "Support ID" not in err.message
    assert err.detail["support_id"] == "Qx1~Zz2"


def test_fyle_style_date_text_is_period_closed() -> None:
    text = "Date must be on or after 04/01/2026"
    assert classify([ErrorDetail("BL01001973", "", text)]) is Reason.PERIOD_CLOSED


def test_business_validation_is_permanent_with_description2_and_support_id() -> None:
    errors = [
        ErrorDetail(
            "BL03000018",
            "Illegal format",
            "Illegal format for Contactversion : Primary Email Address x@ [Support ID: abc%7Edef]",
            "Enter a valid email address.",
        ),
        ErrorDetail("BL01001973", "Could not create Vendor record!"),
    ]
    err = ledger_error(errors, what="the new vendor 'X'")
    assert err.reason is Reason.VALIDATION
    assert not err.transient and not err.uncertain
    assert err.message == (
        "Sage Intacct refused the new vendor 'X': Illegal format for Contactversion : Primary "
        "Email Address x@. Enter a valid email address. (BL03000018, BL01001973)"
    )
    assert err.detail["support_id"] == "abc~def"
    assert [e["errorno"] for e in err.detail["errors"]] == ["BL03000018", "BL01001973"]
    assert err.detail["errors"][0]["description2"].endswith("[Support ID: abc~def]")


def test_generic_wrapper_is_shown_only_when_nothing_more_specific_exists() -> None:
    assert explain([WRAPPER]) == "Could not create APBill record!"
    assert explain([ErrorDetail("BL1", "", "The location '600' is invalid."), WRAPPER]) == (
        "The location '600' is invalid."
    )
    assert explain([ROLLED]) == ROLLED.description


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Vendor 'V99' specified is not valid.", Reason.VENDOR_NOT_FOUND),
        ("Invalid Vendor 'V99' specified.", Reason.VENDOR_NOT_FOUND),
        ("Activate the vendor VM, then try again.", Reason.VENDOR_NOT_FOUND),
        ("Account 16200 is not valid", Reason.MAPPING_MISSING),
        (
            "This transaction is missing the Department dimension for the Account 16200",
            Reason.MAPPING_MISSING,
        ),
        ("The location '600' is invalid.", Reason.MAPPING_MISSING),
        ("Invalid Project '10064' specified.", Reason.MAPPING_MISSING),
        ("Currency EUR is not enabled for this company", Reason.CURRENCY_MISMATCH),
        (
            "You do not have permission for API operation create on objects of type APBILL",
            Reason.AUTH,
        ),
        ("API rate limit exceeded", Reason.RATE_LIMITED),
        ("The Service is Temporarily Off-line", Reason.UNAVAILABLE),
        ("Another record with the value 'V1' already exists.", Reason.DUPLICATE),
        ("Something nobody has seen before", Reason.VALIDATION),
    ],
)
def test_result_texts_map_to_reasons(text: str, reason: Reason) -> None:
    assert classify([ErrorDetail("BL01001973", "", text), WRAPPER]) is reason


def test_gateway_throttle_and_outage() -> None:
    assert (
        classify([ErrorDetail("GW-0010", "Rate limit exceeded")], "control") is Reason.RATE_LIMITED
    )
    assert classify([ErrorDetail("GW-0011", "Invalid Request [Request ID: x]")], "control") is (
        Reason.UNAVAILABLE
    )
    err = ledger_error(
        [ErrorDetail("GW-0010", "Rate limit exceeded")],
        what="the request",
        level="http",
        retry_after=2.0,
    )
    assert err.reason is Reason.RATE_LIMITED and err.transient and err.retry_after == 2.0


def test_unknown_authentication_failure_is_still_auth() -> None:
    assert classify([ErrorDetail("XYZ", "Something odd")], "authentication") is Reason.AUTH


def test_already_exists_repeat_and_rollback_detection() -> None:
    exists = ErrorDetail("BL34000061", "Another Vendor with the given value(s) already exists")
    assert is_already_exists([exists])
    assert is_already_exists(
        [ErrorDetail("X", "", "Another record with the value 'A' already exists.")]
    )
    assert not is_already_exists([WRAPPER])
    repeated = ErrorDetail(
        "XL03000004",
        "Duplicate control id",
        "A successful transaction has already been recorded with the control id 'bs-1'.",
    )
    assert is_repeated_controlid([repeated])
    assert is_repeated_controlid([ErrorDetail("??", "", repeated.description2)])
    assert not is_repeated_controlid([exists])
    assert is_rolled_back_only([ROLLED])
    assert not is_rolled_back_only([WRAPPER, ROLLED])
    assert not is_rolled_back_only([])
