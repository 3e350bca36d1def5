"""What real invoices do beyond the official samples: a price that does not give the line
net, ZUGFeRD EXTENDED's logistics charges, XRechnung's third-party payments, MINIMUM's
amount due without a prepaid amount."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from adapters.einvoice import arithmetic as A
from adapters.einvoice.reader import read_einvoice
from domain.tenants import parse_tenants
from domain.validation import validate_item
from tests.unit.einvoice.test_profiles import MINIMUM

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "einvoices"
UBL = (FIXTURES / "01.01a-INVOICE_ubl.xml").read_bytes()
CII = (FIXTURES / "CII_example4.xml").read_bytes()
TENANT = parse_tenants(
    """
[tenants.dk]
locale = "da-DK"
base_currency = "DKK"
currencies = ["DKK", "EUR"]
max_invoice_age_days = 5000
[tenants.dk.ledger]
company = "dk"
[tenants.dk.gl_accounts]
"Varer" = "2000"
[tenants.dk.tax_codes]
"7" = "R7"
"12" = "R12"
"25" = "S25"
"""
).get("dk")


def valid(item: dict[str, object]) -> bool:
    issued = dt.date.fromisoformat(str(item["date"]))
    result = validate_item({**item, "category": "Varer"}, TENANT, today=issued)
    assert result.ok, result.problems
    return result.ok


def test_a_price_that_does_not_give_the_net_is_kept_but_not_checked() -> None:
    # Official samples do this (a base quantity of 3.96; a surcharge priced as its percent):
    # EN 16931 takes the line net (BT-131) as the amount, so validation must not park it.
    data = UBL.replace(
        b'<cbc:PriceAmount currencyID="EUR">288.79<', b'<cbc:PriceAmount currencyID="EUR">300<'
    )
    read = read_einvoice(data, "price.xml")
    first = read.item["line_items"][0]
    assert "unit_price" not in first and first["net_price"] == "300"
    assert first["net_amount"] == "288.79"
    assert read.problems == [] and valid(read.item)
    # A price that does give the net is passed on, for validation to check.
    assert read_einvoice(UBL, "x.xml").item["line_items"][0]["unit_price"] == "288.79"


LOGISTICS = b"""<ram:SpecifiedLogisticsServiceCharge>
                <ram:Description>Freight</ram:Description>
                <ram:AppliedAmount>100</ram:AppliedAmount>
                <ram:AppliedTradeTax>
                    <ram:TypeCode>VAT</ram:TypeCode>
                    <ram:CategoryCode>S</ram:CategoryCode>
                    <ram:RateApplicablePercent>25</ram:RateApplicablePercent>
                </ram:AppliedTradeTax>
            </ram:SpecifiedLogisticsServiceCharge>
            """
# Before the header's VAT breakdown (the lines have an ApplicableTradeTax of their own).
BREAKDOWN = b"<ram:ApplicableTradeTax>\n                <ram:CalculatedAmount>375<"


def with_freight() -> bytes:
    """CII_example4 with 100 DKK freight at 25 %, its totals updated to match."""
    assert BREAKDOWN in CII
    data = CII.replace(BREAKDOWN, LOGISTICS + BREAKDOWN, 1)
    for old, new in [
        (b"<ram:CalculatedAmount>375<", b"<ram:CalculatedAmount>400<"),
        (b"<ram:BasisAmount>1500<", b"<ram:BasisAmount>1600<"),
        (
            b"<ram:TaxBasisTotalAmount>4000<",
            b"<ram:ChargeTotalAmount>100</ram:ChargeTotalAmount><ram:TaxBasisTotalAmount>4100<",
        ),
        (
            b'<ram:TaxTotalAmount currencyID="DKK">675<',
            b'<ram:TaxTotalAmount currencyID="DKK">700<',
        ),
        (b"<ram:GrandTotalAmount>4675<", b"<ram:GrandTotalAmount>4800<"),
        (b"<ram:DuePayableAmount>4675<", b"<ram:DuePayableAmount>4800<"),
    ]:
        assert old in data, old
        data = data.replace(old, new, 1)
    return data


def test_logistics_service_charges_are_charges() -> None:
    read = read_einvoice(with_freight(), "freight.xml")
    assert read.problems == []
    (charge,) = read.invoice.allowances_charges
    assert (charge.charge, charge.amount, charge.reason) == (True, Decimal(100), "Freight")
    freight = read.item["line_items"][-1]
    assert (freight["description"], freight["net_amount"], freight["tax_amount"]) == (
        "Charge: Freight",
        "100",
        "25.00",
    )
    assert valid(read.item)
    # Without reading them the charges total would not add up: BR-CO-12 would say so.
    missing = with_freight().replace(LOGISTICS, b"")
    assert A.CHARGES_SUM in {p.code for p in read_einvoice(missing, "x.xml").problems}


PREPAID = b"""<cac:PrepaidPayment>
        <cbc:ID>MobilesBezahlen</cbc:ID>
        <cbc:PaidAmount currencyID="EUR">10.00</cbc:PaidAmount>
    </cac:PrepaidPayment>
    <cac:TaxTotal>"""


def test_xrechnung_third_party_payments_count_in_the_amount_due() -> None:
    due = UBL.replace(
        b'<cbc:PayableAmount currencyID="EUR">336.9<', b'<cbc:PayableAmount currencyID="EUR">346.9<'
    )
    read = read_einvoice(due.replace(b"<cac:TaxTotal>", PREPAID, 1), "dex.xml")
    assert read.problems == []
    assert read.item["amount_due"] == "346.9" and read.item["total_amount"] == "336.9"
    assert read.item["einvoice"]["third_party"] == "10.00"
    assert {p.code for p in read_einvoice(due, "x.xml").problems} == {A.AMOUNT_DUE}


def test_minimum_may_owe_less_than_its_total_without_saying_why() -> None:
    # MINIMUM has no element for a prepaid amount (BT-113); official samples owe less.
    data = MINIMUM.replace(b"<ram:DuePayableAmount>119.00<", b"<ram:DuePayableAmount>19.00<")
    read = read_einvoice(data, "minimum.xml")
    assert read.problems == []
    assert read.item["amount_due"] == "19.00" and read.item["total_amount"] == "119.00"
    en16931 = data.replace(b"urn:factur-x.eu:1p0:minimum", b"urn:cen.eu:en16931:2017")
    assert {p.code for p in read_einvoice(en16931, "x.xml").problems} == {A.AMOUNT_DUE}
