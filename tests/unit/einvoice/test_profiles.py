"""Factur-X's small profiles: BASIC WL has no lines (its VAT breakdown becomes them), MINIMUM
has neither (the item is its header, as a Dext item without lines). Both still validate."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

from adapters.einvoice.reader import read_einvoice
from domain.tenants import parse_tenants
from domain.validation import validate_item

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "einvoices"
TENANT = parse_tenants(
    """
[tenants.fr]
locale = "fr-FR"
base_currency = "EUR"
currencies = ["EUR", "DKK"]
max_invoice_age_days = 5000
[tenants.fr.ledger]
company = "fr"
[tenants.fr.gl_accounts]
"Achats" = "6000"
[tenants.fr.tax_codes]
"12" = "R12"
"19" = "S19"
"25" = "S25"
"""
).get("fr")

MINIMUM = b"""<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice
  xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter>
      <ram:ID>urn:factur-x.eu:1p0:minimum</ram:ID>
    </ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>FA-2026-0010</ram:ID>
    <ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime>
      <udt:DateTimeString format="102">20260305</udt:DateTimeString>
    </ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:ApplicableHeaderTradeAgreement>
      <ram:SellerTradeParty>
        <ram:Name>Au bon moulin</ram:Name>
        <ram:SpecifiedTaxRegistration>
          <ram:ID schemeID="VA">FR11999999998</ram:ID>
        </ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty><ram:Name>Ma jolie boutique</ram:Name></ram:BuyerTradeParty>
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeDelivery/>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:TaxBasisTotalAmount>100.00</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">19.00</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>119.00</ram:GrandTotalAmount>
        <ram:DuePayableAmount>119.00</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"""


def validated(item: dict[str, object]) -> object:
    result = validate_item({**item, "category": "Achats"}, TENANT, today=dt.date(2026, 3, 10))
    assert result.ok, result.problems
    return result.bill


def test_minimum_is_its_header() -> None:
    read = read_einvoice(MINIMUM, "minimum.xml")
    assert read.problems == []
    item = read.item
    assert item["line_items"] == []
    assert (item["payee"], item["payee_tax_number"]) == ("Au bon moulin", "FR11999999998")
    assert (item["total_amount"], item["vat_amount"], item["net_amount"]) == (
        "119.00",
        "19.00",
        "100.00",
    )
    bill = validated(item)
    assert bill.total == Decimal("119.00")  # type: ignore[attr-defined]


def test_basic_wl_gets_a_line_per_vat_rate() -> None:
    # CII_example4 without its lines and their sum: what a BASIC WL invoice carries.
    text = (FIXTURES / "CII_example4.xml").read_text(encoding="utf-8")
    text = re.sub(
        r"<ram:IncludedSupplyChainTradeLineItem>.*?</ram:IncludedSupplyChainTradeLineItem>",
        "",
        text,
        flags=re.DOTALL,
    )
    text = re.sub(r"<ram:LineTotalAmount>[^<]*</ram:LineTotalAmount>", "", text)
    read = read_einvoice(text.encode(), "basic-wl.xml")
    assert read.invoice.lines == [] and read.problems == []
    lines = read.item["line_items"]
    assert [(ln["net_amount"], ln["tax_amount"], ln["tax_rate"]) for ln in lines] == [
        ("1500", "375", "25"),
        ("2500", "300", "12"),
    ]
    bill = validated(read.item)
    assert [ln.tax_code for ln in bill.lines] == ["S25", "R12"]  # type: ignore[attr-defined]
    assert bill.total == Decimal("4675")  # type: ignore[attr-defined]
