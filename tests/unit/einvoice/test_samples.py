"""Every official sample reads exactly as its expected.json says, in each format it comes in.

The expected values were read from the XML independently of billstream (see the fixtures'
SOURCES.md); amounts are the XML's text and are compared as decimals.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.einvoice.model import EInvoice
from adapters.einvoice.reader import EInvoiceRead, read_einvoice
from domain.dext import check_item, find_floats
from domain.tenants import Tenant, parse_tenants
from domain.validation import validate_item

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "einvoices"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())
SAMPLES = sorted(EXPECTED)
BY_FORMAT = {
    fmt: [name for name in SAMPLES if EXPECTED[name]["format"] == fmt]
    for fmt in ("ubl-invoice", "ubl-creditnote", "cii", "facturx-pdf")
}

# A German tenant: decimal comma, day-first dates. XML amounts use a point whatever the
# locale, so this is the tenant most likely to misread them.
TENANT: Tenant = parse_tenants(
    """
[tenants.eu]
locale = "de-DE"
base_currency = "EUR"
currencies = ["EUR", "GBP", "DKK"]
max_invoice_age_days = 5000
[tenants.eu.ledger]
company = "eu"
[tenants.eu.tax_codes]
"0" = "Z0"
"7" = "R7"
"12" = "R12"
"19" = "S19"
"25" = "S25"
"""
).get("eu")


def read(name: str) -> EInvoiceRead:
    return read_einvoice((FIXTURES / name).read_bytes(), name)


def dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def day(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def test_every_format_has_samples() -> None:
    assert all(BY_FORMAT.values()), BY_FORMAT


@pytest.mark.parametrize("name", SAMPLES)
def test_header_as_expected(name: str) -> None:
    want = EXPECTED[name]
    inv: EInvoice = read(name).invoice
    got = {
        "format": inv.format,
        "customization_id": inv.customization_id,
        "type_code": inv.type_code,
        "invoice_number": inv.number,
        "issue_date": inv.issue_date,
        "due_date": inv.due_date,
        "currency": inv.currency,
        "tax_currency": inv.tax_currency,
        "seller_name": inv.seller_name,
        "seller_trading_name": inv.seller_trading_name,
        "seller_vat_id": inv.seller_vat_id,
        "seller_tax_registration": inv.seller_tax_registration,
        "buyer_name": inv.buyer_name,
        "line_count": len(inv.lines),
    }
    expected_format = want.get("embedded_format", want["format"])
    assert got == {
        **{k: want[k] for k in got},
        "format": expected_format,
        "issue_date": day(want["issue_date"]),
        "due_date": day(want["due_date"]),
    }


@pytest.mark.parametrize("name", SAMPLES)
def test_totals_as_expected(name: str) -> None:
    want = EXPECTED[name]
    inv = read(name).invoice
    for key, got in [
        ("sum_of_line_net", inv.sum_of_line_net),
        ("allowance_total", inv.allowance_total),
        ("charge_total", inv.charge_total),
        ("tax_exclusive", inv.tax_exclusive),
        ("tax_total", inv.tax_total),
        ("tax_total_tax_currency", inv.tax_total_tax_currency),
        ("tax_inclusive", inv.tax_inclusive),
        ("prepaid", inv.prepaid),
        ("rounding", inv.rounding),
        ("payable", inv.payable),
    ]:
        assert got == dec(want[key]), key
        assert got is None or isinstance(got, Decimal)
    breakdown = [(b.category, b.rate, b.taxable, b.tax) for b in inv.vat_breakdown]
    assert breakdown == [
        (b["category"], dec(b["rate"]), dec(b["taxable"]), dec(b["tax"]))
        for b in want["vat_breakdown"]
    ]
    charges = [(ac.charge, ac.amount, ac.reason) for ac in inv.allowances_charges]
    assert charges == [
        (ac["charge"], dec(ac["amount"]), ac["reason"])
        for ac in want["document_allowances_charges"]
    ]


@pytest.mark.parametrize("name", SAMPLES)
def test_lines_as_expected(name: str) -> None:
    lines = read(name).invoice.lines
    got = [
        {
            "id": ln.id,
            "name": ln.name,
            "description": ln.description,
            "quantity": ln.quantity,
            "unit_code": ln.unit_code,
            "net_price": ln.net_price,
            "net_amount": ln.net_amount,
            "vat_category": ln.vat_category,
            "vat_rate": ln.vat_rate,
        }
        for ln in lines
    ]
    amounts = ("quantity", "net_price", "net_amount", "vat_rate")
    assert got == [
        {k: dec(v) if k in amounts else v for k, v in want.items()}
        for want in EXPECTED[name]["lines"]
    ]


@pytest.mark.parametrize("name", SAMPLES)
def test_arithmetic_checks_agree_with_expected(name: str) -> None:
    # Every official sample adds up; the reader's EN 16931 checks must say so too.
    assert EXPECTED[name]["all_checks_pass"] is True
    assert read(name).problems == []


@pytest.mark.parametrize("name", SAMPLES)
def test_item_carries_the_invoice(name: str) -> None:
    want = EXPECTED[name]
    result = read(name)
    item = result.item
    assert find_floats(item) == []
    assert check_item(item) == []
    assert item["type"] == ("credit_note" if want["type_code"] == "381" else "invoice")
    assert item["payee"] == want["seller_name"]
    assert item["payee_tax_number"] == (want["seller_vat_id"] or want["seller_tax_registration"])
    assert item["invoice_number"] == want["invoice_number"]
    assert item["date"] == want["issue_date"]
    assert item.get("due_date") == want["due_date"]
    assert item["currency"] == want["currency"]
    assert Decimal(item["total_amount"]) == Decimal(want["tax_inclusive"])
    assert Decimal(item["vat_amount"]) == Decimal(want["tax_total"])
    assert Decimal(item["net_amount"]) == Decimal(want["tax_exclusive"])
    assert Decimal(item["amount_due"]) == Decimal(want["payable"])
    pdf = want["format"] == "facturx-pdf"
    assert item["source_format"] == want["format"]
    assert item["document"] == {
        "filename": name,
        "content_type": "application/pdf" if pdf else "application/xml",
    }
    if pdf:
        assert result.embedded_name == want["embedded_xml_name"]
    lines = [ln for ln in item["line_items"] if "line_id" in ln]
    assert [Decimal(ln["net_amount"]) for ln in lines] == [
        Decimal(ln["net_amount"]) for ln in want["lines"]
    ]
    assert [ln["vat_category"] for ln in lines] == [ln["vat_category"] for ln in want["lines"]]
    # The VAT shared over the lines adds up to the invoice's, to the cent.
    taxes = sum(Decimal(ln["tax_amount"]) for ln in item["line_items"])
    assert taxes == Decimal(want["tax_total"])
    nets = sum(Decimal(ln["net_amount"]) for ln in item["line_items"])
    assert nets == Decimal(want["tax_exclusive"])


@pytest.mark.parametrize("name", SAMPLES)
def test_item_passes_validation_for_a_decimal_comma_tenant(name: str) -> None:
    item = read(name).item
    # E-invoices carry no Dext category: the invoice's category stands in for the tenant's
    # supplier rule; a line's own booking code (BT-133) must be mapped as it is.
    coded = {**item, "category": "Office Supplies"}
    accounts = {"Office Supplies": "7500", "Konteringsstreng": "7510"}
    tenant = TENANT.model_copy(update={"gl_accounts": accounts})
    issued = dt.date.fromisoformat(item["date"])
    result = validate_item(coded, tenant, today=issued + dt.timedelta(days=10))
    assert result.ok, result.problems
    assert result.bill is not None and result.invoice is not None
    want = EXPECTED[name]
    assert result.bill.total == Decimal(want["tax_inclusive"])
    assert result.bill.tax == Decimal(want["tax_total"])
    assert result.bill.credit_note is (want["type_code"] == "381")


def test_the_same_invoice_in_ubl_and_cii_is_one_item() -> None:
    # XRechnung publishes business case 01.01a in both syntaxes: one invoice, one id.
    assert (
        read("01.01a-INVOICE_ubl.xml").item["id"] == read("01.17a-INVOICE_uncefact.xml").item["id"]
    )
    assert read("01.01a-INVOICE_ubl.xml").item["id"].startswith("einv-")


def test_the_buyer_accounting_reference_is_the_line_category_code() -> None:
    # base-example.xml books its first line with cbc:AccountingCost (BT-133).
    first, second = read("base-example.xml").item["line_items"][:2]
    assert first["category_code"] == "Konteringsstreng"
    assert "category_code" not in second
