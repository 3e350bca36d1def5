# ruff: noqa: E501  (the table keeps one case per line, so each reads as one sentence)
"""Tricky real-world items and what validation must make of them, one line each.

Each case is a small change to a clean item (``make_item``), the tenant it is read for, and
the outcome: ``OK`` or exactly the set of (code, field) problems. Exact sets, so a case also
fails when validation reports something it should not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import Reason
from domain.tenants import parse_tenants
from domain.validation import ValidationResult, validate_item
from tests.unit.conftest import TENANTS_FILE, TODAY, make_item

D = Decimal
OK: frozenset[tuple[str, str]] = frozenset()

TENANTS = parse_tenants(
    TENANTS_FILE.read_text(encoding="utf-8")
    + """
[tenants.de]
locale = "de-DE"
base_currency = "EUR"
ledger = { company = "de" }
gl_accounts = { "Office Supplies" = "4930" }
tax_codes = { "19" = "VSt19", "7" = "VSt7" }

[tenants.nolocale]
base_currency = "GBP"
ledger = { company = "nolocale" }
gl_accounts = { "Office Supplies" = "7500" }

[tenants.jp]
locale = "ja-JP"
base_currency = "JPY"
ledger = { company = "jp" }
gl_accounts = { "Office Supplies" = "500" }

[tenants.bh]
locale = "en-GB"
base_currency = "BHD"
ledger = { company = "bh" }
gl_accounts = { "Office Supplies" = "500" }
""",
    "cases.toml",
)


def header_only(
    total_amount: Any = "180.00", vat_amount: Any = "30.00", **changes: Any
) -> dict[str, Any]:
    """An item with no line items: validation makes one line from the header."""
    return make_item(line_items=[], total_amount=total_amount, vat_amount=vat_amount, **changes)


def for_tenant(currency: str, **changes: Any) -> dict[str, Any]:
    return header_only(currency=currency, base_currency=currency, **changes)


def with_line(index: int, **changes: Any) -> dict[str, Any]:
    item = make_item()
    item["line_items"][index].update(changes)
    return item


def edit(item: dict[str, Any], fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    fn(item)
    return item


def us_item(**changes: Any) -> dict[str, Any]:
    item = make_item(
        payee="Staples, Inc.",
        currency="USD",
        base_currency="USD",
        total_amount="162.00",
        vat_amount="12.00",
        **changes,
    )
    for line, (net, tax) in zip(
        item["line_items"], [("100.00", "8.00"), ("50.00", "4.00")], strict=True
    ):
        line.update(net_amount=net, tax_amount=tax, total_amount=str(D(net) + D(tax)), tax_rate="8")
        line.pop("unit_price")
    return item


def negate_all(item: dict[str, Any]) -> None:
    for holder in [item, *item["line_items"]]:
        for key in ("total_amount", "vat_amount", "net_amount", "tax_amount"):
            if key in holder:
                holder[key] = f"-{holder[key]}"


def negate_lines(item: dict[str, Any]) -> None:
    for line in item["line_items"]:
        for key in ("net_amount", "tax_amount", "total_amount"):
            line[key] = f"-{line[key]}"


def clear_categories(item: dict[str, Any]) -> None:
    item.pop("category")
    item.pop("category_code")
    for line in item["line_items"]:
        line.pop("category")


def categorise(name: str) -> Callable[[dict[str, Any]], None]:
    def apply(item: dict[str, Any]) -> None:
        item["category"], item["category_code"] = name, None
        for line in item["line_items"]:
            line["category"] = name

    return apply


def code_only(code: str) -> Callable[[dict[str, Any]], None]:
    def apply(item: dict[str, Any]) -> None:
        for line in item["line_items"]:
            line.pop("category")
            line["category_code"] = code

    return apply


def drop_line_categories(item: dict[str, Any]) -> None:
    for line in item["line_items"]:
        line.pop("category")


def quantity_price_rate_only(item: dict[str, Any]) -> None:
    for line in item["line_items"]:
        for key in ("net_amount", "tax_amount", "total_amount"):
            line.pop(key)


def discount(item: dict[str, Any]) -> None:
    item["line_items"][1].update(net_amount="-10.00", tax_amount="-2.00", total_amount="-12.00")
    item["line_items"][1].pop("unit_price")
    item.update(total_amount="108.00", vat_amount="18.00")


def totals_and_tax_only(item: dict[str, Any]) -> None:
    for line in item["line_items"]:
        for key in ("net_amount", "quantity", "unit_price", "tax_rate"):
            line.pop(key)


def bill_total(expected: str) -> Callable[[ValidationResult], None]:
    def check(result: ValidationResult) -> None:
        assert result.bill is not None and str(result.bill.total) == expected

    return check


def credit_of(expected: str) -> Callable[[ValidationResult], None]:
    def check(result: ValidationResult) -> None:
        bill = result.bill
        assert bill is not None and bill.credit_note and str(bill.total) == expected
        assert all(ln.total > 0 for ln in bill.lines)

    return check


def dated(expected: dt.date, due: dt.date | None = None) -> Callable[[ValidationResult], None]:
    def check(result: ValidationResult) -> None:
        assert result.invoice is not None and result.invoice.date == expected
        if due is not None:
            assert result.invoice.due_date == due

    return check


def coded(*accounts: str, tax: str | None = None) -> Callable[[ValidationResult], None]:
    def check(result: ValidationResult) -> None:
        assert result.bill is not None
        assert tuple(ln.gl_account for ln in result.bill.lines) == accounts
        if tax is not None:
            assert {ln.tax_code for ln in result.bill.lines} == {tax}

    return check


def reason(expected: Reason) -> Callable[[ValidationResult], None]:
    def check(result: ValidationResult) -> None:
        assert result.reason is expected

    return check


def p(*pairs: tuple[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(pairs)


def case(
    case_id: str,
    item: dict[str, Any],
    expected: frozenset[tuple[str, str]],
    check: Callable[[ValidationResult], object] | None = None,
    tenant: str = "acme-uk",
) -> Any:
    return pytest.param(tenant, item, expected, check, id=case_id)


# fmt: off
CASES = [
    # Amounts, as people and OCR write them
    case("uk-clean-two-line-invoice", make_item(), OK, coded("7500", "7500", tax="S20")),
    case("uk-total-with-thousands-comma", header_only("1,234.56", "205.76"), OK, bill_total("1234.56")),
    case("uk-total-with-pound-sign", header_only("£180.00", "£30.00"), OK, bill_total("180.00")),
    case("de-decimal-comma-and-dot-groups", for_tenant("EUR", total_amount="1.190,00", vat_amount="190,00"), OK, coded("4930", tax="VSt19"), tenant="de"),
    case("de-space-grouped-amount-with-euro-sign", for_tenant("EUR", total_amount="1 190,00 €", vat_amount="190,00"), OK, bill_total("1190.00"), tenant="de"),
    case("de-json-number-text-still-read-exactly", for_tenant("EUR", total_amount="1190.00", vat_amount="190.00"), OK, bill_total("1190.00"), tenant="de"),
    case("de-three-decimals-is-ambiguous", for_tenant("EUR", total_amount="1.190", vat_amount="0"), p(("ambiguous_amount", "total_amount")), tenant="de"),
    case("uk-decimal-comma-refused", header_only("180,00", "30.00"), p(("invalid_amount", "total_amount"))),
    case("no-locale-thousands-comma-is-ambiguous", header_only("1,200", "200"), p(("ambiguous_amount", "total_amount")), tenant="nolocale"),
    case("euro-sign-on-a-gbp-item", header_only("€180.00", "30.00"), p(("currency_conflict", "total_amount"))),
    case("nan-total", header_only("NaN", "0"), p(("invalid_amount", "total_amount"))),
    case("infinite-vat", header_only("180.00", "Infinity"), p(("invalid_amount", "vat_amount"))),
    case("empty-total", header_only("  ", "0"), p(("missing", "total_amount"))),
    case("float-total-refused", header_only(180.0, "30.00"), p(("invalid_amount", "total_amount"))),
    case("integer-total-accepted", header_only(180, 30), OK, bill_total("180.00")),
    case("absurdly-large-total", header_only("99999999999999.00", "0"), p(("invalid_amount", "total_amount"))),
    case("garbage-line-net", with_line(0, net_amount="one hundred"), p(("invalid_amount", "line_items[0].net_amount"))),
    case("zero-total", header_only("0.00", "0.00"), p(("zero_total", "total_amount"))),
    case("jpy-rounds-half-up-to-whole-yen", for_tenant("JPY", total_amount="1500.5", vat_amount="0"), OK, bill_total("1501"), tenant="jp"),
    case("bhd-keeps-three-decimals", for_tenant("BHD", total_amount="12.3456", vat_amount="0"), OK, bill_total("12.346"), tenant="bh"),
    # Credit notes
    case("bracketed-total-is-a-credit-note", header_only("(120.00)", "(20.00)"), OK, credit_of("120.00")),
    case("negative-invoice-is-a-credit-note", edit(make_item(), negate_all), OK, credit_of("180.00")),
    case("credit-note-type-with-positive-amounts", make_item(type="credit_note"), OK, credit_of("180.00")),
    case("credit-note-positive-header-negative-lines", edit(make_item(type="Credit Note/Refund"), negate_lines), OK, credit_of("180.00")),
    case("credit-note-negative-total-positive-vat", header_only("-120.00", "20.00", type="refund"), OK, credit_of("120.00")),
    case("discount-line-keeps-its-minus-sign", edit(make_item(), discount), OK, lambda r: r.bill is not None and r.bill.lines[1].net == D("-10.00") and not r.bill.credit_note),
    # Dates
    case("iso-datetime-with-zone-keeps-paper-date", make_item(date="2026-10-01T23:30:00-05:00"), OK, dated(dt.date(2026, 10, 1))),
    case("uk-date-is-day-first", make_item(date="03/10/2026"), OK, dated(dt.date(2026, 10, 3))),
    case("us-date-is-month-first", us_item(date="10/03/2026"), OK, dated(dt.date(2026, 10, 3)), tenant="globex-us"),
    case("us-tenant-refuses-day-first-date", us_item(date="13/10/2026"), p(("invalid_date", "date")), tenant="globex-us"),
    case("no-locale-ambiguous-date", header_only(date="03/10/2026"), p(("ambiguous_date", "date")), tenant="nolocale"),
    case("no-locale-unambiguous-date", header_only(date="13/10/2026"), OK, dated(dt.date(2026, 10, 13)), tenant="nolocale"),
    case("february-30-refused", make_item(date="2026-02-30"), p(("invalid_date", "date"))),
    case("month-name-date", make_item(date="1st Oct 2026"), OK, dated(dt.date(2026, 10, 1))),
    case("missing-date", make_item(date=None), p(("missing", "date"))),
    case("future-dated-invoice", make_item(date="2027-03-01", due_date="2027-03-31"), p(("future_date", "date"))),
    case("ten-year-old-invoice", make_item(date="2015-01-01", due_date="2015-01-31"), p(("too_old", "date"))),
    case("due-before-invoice-date", make_item(due_date="2026-09-01"), p(("due_before_date", "due_date"))),
    case("due-date-from-tenant-default-terms", make_item(due_date=None), OK, dated(dt.date(2026, 10, 1), due=dt.date(2026, 10, 31))),
    case("due-date-from-supplier-terms", make_item(payee="Smith & Jones Accountants LLP", due_date=None), OK, dated(dt.date(2026, 10, 1), due=dt.date(2026, 10, 15))),
    # Arithmetic
    case("line-net-plus-tax-is-not-its-total", with_line(0, total_amount="130.00"), p(("line_arithmetic", "line_items[0]"), ("lines_total", "line_items"))),
    case("lines-do-not-add-up-to-the-total", make_item(total_amount="190.00"), p(("lines_total", "line_items"))),
    case("lines-tax-is-not-the-invoice-tax", make_item(vat_amount="35.00"), p(("lines_tax", "line_items"))),
    case("header-net-plus-tax-is-not-total", make_item(net_amount="160.00"), p(("header_arithmetic", "net_amount"))),
    case("penny-rounding-within-tolerance-absorbed", with_line(0, tax_amount="20.01", total_amount="120.01"), OK, bill_total("180.00")),
    case("quantity-times-price-is-not-net", with_line(0, unit_price="55.00"), p(("line_quantity_price", "line_items[0].unit_price"))),
    case("tax-is-not-the-stated-rate", with_line(0, tax_rate="5"), p(("tax_rate_mismatch", "line_items[0].tax_amount"))),
    case("zero-quantity", with_line(0, quantity="0"), p(("invalid_quantity", "line_items[0].quantity"))),
    case("dext-auto-lines-have-total-and-tax-only", edit(make_item(), totals_and_tax_only), OK, coded("7500", "7500", tax="S20")),
    case("manual-line-with-quantity-price-and-rate-only", edit(make_item(), quantity_price_rate_only), OK, coded("7500", "7500", tax="S20")),
    case("header-only-with-rate-and-gross-total", header_only("120.00", None, tax_rate="20"), OK, lambda r: r.bill is not None and (r.bill.net, r.bill.tax) == (D("100.00"), D("20.00"))),
    case("header-only-gets-one-line-and-inferred-tax-code", header_only("180.00", "30.00"), OK, coded("7500", tax="S20")),
    case("line-items-not-a-list", make_item(line_items={"0": {}}), p(("invalid", "line_items"))),
    # Currency
    case("lowercase-currency-code", make_item(currency="gbp"), OK),
    case("currency-symbol-instead-of-code", make_item(currency="£"), p(("invalid_currency", "currency"))),
    case("not-an-iso-4217-code", make_item(currency="XYZ"), p(("invalid_currency", "currency"))),
    case("missing-currency", make_item(currency=None), p(("missing", "currency"))),
    case("currency-not-enabled-for-company", make_item(currency="CHF"), p(("currency_mismatch", "currency")), reason(Reason.CURRENCY_MISMATCH)),
    case("item-from-another-companys-books", make_item(base_currency="USD"), p(("base_currency_mismatch", "base_currency"))),
    # Coding
    case("category-by-nominal-code-only", edit(make_item(), code_only("7600")), OK, coded("7600", "7600")),
    case("dext-combined-code-and-name-category", edit(make_item(), categorise("7400 - Travel")), OK, coded("7400", "7400")),
    case("lines-without-category-use-the-header", edit(make_item(), drop_line_categories), OK, coded("7500", "7500")),
    case("no-category-anywhere", edit(make_item(), clear_categories), p(("missing", "line_items[0].category"))),
    case("unmapped-category-named-once-for-all-lines", edit(make_item(), categorise("Entertainment")), p(("mapping_missing", "line_items[0].category")), reason(Reason.MAPPING_MISSING)),
    case("tax-rate-written-as-percent", with_line(0, tax_rate="20.0%"), OK, coded("7500", "7500", tax="S20")),
    case("tax-rate-with-no-tax-code", with_line(0, tax_rate="17.5", tax_amount="17.50", total_amount="117.50") | {"total_amount": "177.50", "vat_amount": "27.50"}, p(("mapping_missing", "line_items[0].tax_rate")), reason(Reason.MAPPING_MISSING)),
    case("named-tax-rate-with-no-tax-code", with_line(0, tax_rate="Exempt", tax_amount="0.00", total_amount="100.00") | {"total_amount": "160.00", "vat_amount": "10.00"}, p(("mapping_missing", "line_items[0].tax_rate"))),
    case("supplier-spelt-differently-still-gets-its-rule", make_item(payee="SMITH AND JONES ACCOUNTANTS"), OK, coded("7710", "7710")),
    # Document type and identity
    case("statement-is-not-a-bill", make_item(type="statement"), p(("unsupported_type", "type"))),
    case("delivery-note-is-not-a-bill", make_item(type="Delivery note"), p(("unsupported_type", "type"))),
    case("sales-invoice-is-not-a-bill", make_item(type="sales_invoice"), p(("unsupported_type", "type"))),
    case("unknown-document-type", make_item(type="banana"), p(("unsupported_type", "type"))),
    case("receipt-is-a-bill", make_item(type="Receipt"), OK),
    case("missing-supplier", make_item(payee=None), p(("missing", "payee"))),
    case("missing-invoice-number", make_item(invoice_number="   "), p(("missing", "invoice_number"))),
    case("numeric-invoice-number-kept-as-text", make_item(invoice_number=12345), OK, lambda r: r.bill is not None and r.bill.number == "12345"),
    case("placeholder-invoice-number", make_item(invoice_number="N/A"), p(("missing", "invoice_number"))),
    case("supplier-that-is-only-punctuation", make_item(payee="--"), p(("invalid", "payee"))),
    case("missing-dext-id", make_item(id=None), p(("missing", "id"))),
    case("supplier-name-that-is-not-text", make_item(payee={"name": "Viking"}), p(("invalid", "payee"))),
    case("paid-flag-as-text", make_item(paid="yes"), OK, lambda r: r.invoice is not None and r.invoice.paid is True),
]
# fmt: on


@pytest.mark.parametrize(("tenant_id", "item", "expected", "check"), CASES)
def test_case(
    tenant_id: str,
    item: dict[str, Any],
    expected: frozenset[tuple[str, str]],
    check: Callable[[ValidationResult], Any] | None,
) -> None:
    result = validate_item(item, TENANTS.get(tenant_id), today=TODAY)
    found = {(p.code, p.field) for p in result.problems}
    assert found == expected, [p.message for p in result.problems]
    assert result.ok == (expected == OK)
    if check is not None:
        outcome = check(result)
        assert outcome is None or outcome is True


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40
