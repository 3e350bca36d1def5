"""The vendored Swagger subset and the strict validators built on it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sage_accounting.schema import (
    SUBSET_PATH,
    SchemaViolation,
    check_request,
    check_response,
    extract_subset,
    spec,
)

REFERENCE = (
    Path(__file__).resolve().parents[4]
    / "shared"
    / "reference"
    / ("sage-accounting-v3.1.swagger.json")
)


@pytest.mark.skipif(
    not REFERENCE.exists(), reason="Sage's full Swagger file is not beside the repo"
)
def test_vendored_subset_is_sages_file() -> None:
    full = json.loads(REFERENCE.read_text(encoding="utf-8"))
    vendored = json.loads(SUBSET_PATH.read_text(encoding="utf-8"))
    assert vendored == json.loads(json.dumps(extract_subset(full)))


def invoice(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "contact_id": "c1",
        "date": "2026-10-15",
        "due_date": "2026-11-14",
        "idempotency_id": "0" * 32,
        "invoice_lines": [
            {
                "description": "Paper",
                "ledger_account_id": "la1",
                "quantity": Decimal(2),
                "unit_price": Decimal("50.00"),
                "tax_rate_id": "GB_STANDARD",
                "tax_amount": Decimal("20.00"),
            }
        ],
    }
    doc.update(overrides)
    return {"purchase_invoice": doc}


def test_a_good_invoice_passes() -> None:
    check_request("postPurchaseInvoices", invoice())


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (invoice(vendor_ref="typo"), "vendor_ref"),
        (invoice(date="15/10/2026"), "is not a 'date'"),
        (invoice(date="20261015"), "is not a 'date'"),  # ISO basic: Python takes it, Sage not
        (invoice(idempotency_id="not-hex"), "idempotency_id"),
        (
            invoice(invoice_lines=[{"ledger_account_id": "x", "quantity": 1, "unit_price": 1}]),
            "description",
        ),
        (invoice(net_amount="132.60"), "net_amount"),
        ({"purchase_invoice": {"date": "2026-10-15"}}, "contact_id"),
    ],
)
def test_strict_validation_catches_mistakes(body: dict[str, object], needle: str) -> None:
    with pytest.raises(SchemaViolation) as err:
        check_request("postPurchaseInvoices", body)
    assert needle in str(err.value)


def test_attachments_take_no_idempotency_id_and_cap_the_size() -> None:
    ok = {"file": "JVBERg==", "file_name": "a.pdf", "mime_type": "application/pdf", "file_size": 4}
    check_request("postAttachments", {"attachment": ok})
    with pytest.raises(SchemaViolation):
        check_request("postAttachments", {"attachment": {**ok, "idempotency_id": "0" * 32}})
    with pytest.raises(SchemaViolation):
        check_request("postAttachments", {"attachment": {**ok, "file_size": 2_621_441}})


def test_query_parameters_are_checked() -> None:
    check_request("getContacts", query={"contact_type_id": "VENDOR", "items_per_page": "200"})
    errors = spec().request_errors(
        "getContacts", query={"items_per_page": "201", "contact_type_ids": "VENDOR"}
    )
    assert any("201 > 200" in e for e in errors)
    assert any("contact_type_ids" in e for e in errors)


def test_list_responses_are_the_items_envelope() -> None:
    page = {
        "$total": 1,
        "$page": 1,
        "$next": None,
        "$back": None,
        "$itemsPerPage": 20,
        "$items": [{"id": "x", "displayed_as": "X", "$path": "/contacts/x", "name": "X"}],
    }
    check_response("getContacts", 200, page)
    with pytest.raises(SchemaViolation):
        check_response("getContacts", 200, page["$items"])  # what the Swagger file claims
    with pytest.raises(SchemaViolation):
        check_response("getContacts", 200, {**page, "$items": [{"id": "x", "nme": "typo"}]})


def test_errors_are_sages_array() -> None:
    check_response(
        "postContacts",
        422,
        [
            {
                "$severity": "error",
                "$dataCode": "RecordInvalid",
                "$message": "bad",
                "$source": "name",
            }
        ],
    )
    with pytest.raises(SchemaViolation):
        check_response("postContacts", 422, {"error": "bad"})


def test_undocumented_status_is_a_violation() -> None:
    with pytest.raises(SchemaViolation):
        check_response("postContacts", 200, {"id": "x"})  # Sage answers 201 to a create
