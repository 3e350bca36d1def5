"""Property tests of the money in e-invoices: exact reading, locale-proof writing, VAT shared
over lines to the cent, and the EN 16931 totals rules on invoices built to add up (or not)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adapters.einvoice import arithmetic as A
from adapters.einvoice import errors as E
from adapters.einvoice.arithmetic import check_totals
from adapters.einvoice.item import decimal_text, share_out, to_item
from adapters.einvoice.model import AllowanceCharge, EInvoice, InvoiceLine, VatBreakdown
from adapters.einvoice.xml import decimal_of
from domain.dext import find_floats
from domain.money import parse_amount
from domain.tenants import parse_tenants
from domain.validation import validate_item

CENT = Decimal("0.01")
# Amounts as invoices hold them: up to 15 integer digits and 12 decimals.
decimals = st.decimals(
    min_value=Decimal("-999999999999999"),
    max_value=Decimal("999999999999999"),
    allow_nan=False,
    allow_infinity=False,
    places=None,
).filter(
    lambda d: -d.as_tuple().exponent <= 12 if isinstance(d.as_tuple().exponent, int) else False
)
money = st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=2)
positive_money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)


@given(decimals)
def test_an_xs_decimal_reads_exactly(value: Decimal) -> None:
    text = format(value, "f")
    assume(len(text.lstrip("-").split(".")[0]) <= 15)
    assert decimal_of(text, "x") == value
    assert isinstance(decimal_of(text, "x"), Decimal)


@given(
    st.sampled_from(
        [
            "1,5",
            "1 000",
            "1e3",
            "1E-2",
            "€12",
            "12 EUR",
            "0x10",
            "--1",
            "1.2.3",
            "NaN",
            "Infinity",
            "",
            ".",
            "+",
            "١٢",
        ]
    )
)
def test_what_is_not_an_xs_decimal_is_refused(text: str) -> None:
    with pytest.raises(E.EInvoiceError) as caught:
        decimal_of(text, "x")
    assert caught.value.code == E.INVALID_VALUE


@given(
    st.decimals(min_value=Decimal("-9999999999"), max_value=Decimal("9999999999"), places=3)
    | st.decimals(min_value=Decimal("-9999999999"), max_value=Decimal("9999999999"), places=2)
)
def test_written_amounts_read_the_same_in_every_locale(value: Decimal) -> None:
    text = decimal_text(value)
    assert Decimal(text) == value
    for separator in (".", ",", None):
        # The decimal-comma tenant is the one that would read "1.234" as 1234.
        assert parse_amount(text, decimal=separator, allow_currency=False) == value


@given(st.lists(money, min_size=1, max_size=40), money)
def test_vat_shared_over_lines_adds_up_to_the_cent(nets: list[Decimal], vat: Decimal) -> None:
    shares = share_out(nets, vat, CENT)
    assert sum(shares, Decimal(0)) == vat
    assert all(s == s.quantize(CENT) for s in shares)
    base = sum(nets, Decimal(0))
    if base != 0:
        for net, share in zip(nets, shares, strict=True):
            assert abs(share - vat * net / base) < CENT


@st.composite
def invoices(draw: st.DrawFn) -> EInvoice:
    """An invoice that adds up, as a careful seller's software writes it."""
    rates = draw(
        st.lists(st.sampled_from(["0", "7", "19", "20", "25"]), min_size=1, max_size=3, unique=True)
    )
    lines = [
        InvoiceLine(
            id=str(i),
            name=f"item {i}",
            description=None,
            quantity=Decimal(1),
            unit_code="C62",
            net_price=net,
            base_quantity=None,
            net_amount=net,
            vat_category="S",
            vat_rate=Decimal(rate),
        )
        for i, (net, rate) in enumerate(
            draw(
                st.lists(st.tuples(positive_money, st.sampled_from(rates)), min_size=1, max_size=30)
            )
        )
    ]
    charge = draw(st.sampled_from([Decimal(0), Decimal("12.50")]))
    extras = [AllowanceCharge(True, charge, "Freight", "S", lines[0].vat_rate)] if charge else []
    breakdown = []
    for rate in sorted({ln.vat_rate for ln in lines}, key=str):
        taxable = sum((ln.net_amount for ln in lines if ln.vat_rate == rate), Decimal(0))
        taxable += sum((ac.amount for ac in extras if ac.vat_rate == rate), Decimal(0))
        tax = (taxable * (rate or 0) / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        breakdown.append(VatBreakdown("S", rate, taxable, tax))
    line_sum = sum((ln.net_amount for ln in lines), Decimal(0))
    net = line_sum + charge
    vat = sum((b.tax or Decimal(0) for b in breakdown), Decimal(0))
    prepaid = draw(st.sampled_from([None, Decimal("10.00")]))
    return EInvoice(
        format="ubl-invoice",
        customization_id=None,
        type_code="380",
        number="N-1",
        issue_date=dt.date(2026, 3, 1),
        due_date=None,
        currency="EUR",
        tax_currency=None,
        seller_name="Lieferant GmbH",
        seller_trading_name=None,
        seller_vat_id="DE123456789",
        seller_tax_registration=None,
        buyer_name=None,
        lines=lines,
        allowances_charges=extras,
        sum_of_line_net=line_sum,
        charge_total=charge if extras else None,
        tax_exclusive=net,
        tax_total=vat,
        tax_inclusive=net + vat,
        prepaid=prepaid,
        payable=net + vat - (prepaid or 0),
        vat_breakdown=breakdown,
    )


TENANT = parse_tenants(
    """
[tenants.de]
locale = "de-DE"
base_currency = "EUR"
[tenants.de.ledger]
company = "de"
[tenants.de.gl_accounts]
"Waren" = "3400"
[tenants.de.tax_codes]
"0" = "Z0"
"7" = "R7"
"19" = "S19"
"20" = "S20"
"25" = "S25"
"""
).get("de")


@settings(max_examples=150, deadline=None)
@given(invoices())
def test_an_invoice_that_adds_up_passes_the_rules_and_validation(inv: EInvoice) -> None:
    assert check_totals(inv) == []
    item = to_item(inv, filename="n-1.xml", content_type="application/xml")
    assert find_floats(item) == []
    result = validate_item({**item, "category": "Waren"}, TENANT, today=dt.date(2026, 3, 2))
    assert result.ok, result.problems
    assert result.bill is not None and result.bill.total == inv.tax_inclusive


@settings(max_examples=100, deadline=None)
@given(
    invoices(),
    st.sampled_from(["sum_of_line_net", "tax_exclusive", "tax_total", "tax_inclusive", "payable"]),
    st.sampled_from([Decimal("0.01"), Decimal("-1"), Decimal("100")]),
)
def test_a_total_that_is_off_breaks_its_rule(inv: EInvoice, term: str, delta: Decimal) -> None:
    setattr(inv, term, getattr(inv, term) + delta)
    codes = {p.code for p in check_totals(inv)}
    expected = {
        "sum_of_line_net": A.LINES_SUM,
        "tax_exclusive": A.TAX_EXCLUSIVE,
        "tax_total": A.VAT_BREAKDOWN,
        "tax_inclusive": A.TAX_INCLUSIVE,
        "payable": A.AMOUNT_DUE,
    }[term]
    assert expected in codes
    assert codes <= A.ALL_CODES
