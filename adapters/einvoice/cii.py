"""UN/CEFACT Cross Industry Invoice (XRechnung CII, Factur-X / ZUGFeRD XML) into ``EInvoice``.

The same EN 16931 terms as UBL at CII's paths. Dates are format 102 (``YYYYMMDD``); every
Factur-X profile from MINIMUM to EXTENDED uses these paths, the small ones just leave the
lines (and more) out.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from xml.etree.ElementTree import Element

from adapters.einvoice import errors as E
from adapters.einvoice.model import AllowanceCharge, EInvoice, InvoiceLine, VatBreakdown
from adapters.einvoice.xml import date_of, decimal_of, required, text_of

CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
NS = {
    "rsm": CII_NS,
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
_TRADE = "rsm:SupplyChainTradeTransaction"
_SETTLEMENT = f"{_TRADE}/ram:ApplicableHeaderTradeSettlement"
_SELLER = f"{_TRADE}/ram:ApplicableHeaderTradeAgreement/ram:SellerTradeParty"
_ACCOUNT = "ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"


def _text(element: Element | None, path: str) -> str | None:
    return None if element is None else text_of(element.find(path, NS))


def _amount(element: Element | None, path: str, what: str) -> Decimal | None:
    return decimal_of(_text(element, path), what)


def _date(element: Element | None, path: str, what: str) -> dt.date | None:
    found = None if element is None else element.find(f"{path}/udt:DateTimeString", NS)
    if found is not None and found.get("format", "102") != "102":
        raise E.EInvoiceError(
            E.INVALID_VALUE, f"{what} is in date format {found.get('format')!r}, not 102"
        )
    return date_of(text_of(found), what, compact=True)


def read_cii(root: Element) -> EInvoice:
    """The invoice in a ``CrossIndustryInvoice`` root (the caller checked the namespace)."""
    settlement = root.find(_SETTLEMENT, NS)
    totals = root.find(f"{_SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    currency = _text(settlement, "ram:InvoiceCurrencyCode")
    vat_id, tax_registration = _tax_ids(root.find(_SELLER, NS))
    tax_total, tax_total_tax_currency = _tax_totals(totals, currency)
    document = root.find("rsm:ExchangedDocument", NS)
    return EInvoice(
        format="cii",
        customization_id=_text(
            root,
            "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID",
        ),
        type_code=_text(document, "ram:TypeCode"),
        number=_text(document, "ram:ID"),
        issue_date=_date(document, "ram:IssueDateTime", "the issue date (BT-2)"),
        due_date=_date(
            settlement, "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime", "the due date (BT-9)"
        ),
        currency=currency,
        tax_currency=_text(settlement, "ram:TaxCurrencyCode"),
        seller_name=_text(root, f"{_SELLER}/ram:Name"),
        seller_trading_name=_text(
            root, f"{_SELLER}/ram:SpecifiedLegalOrganization/ram:TradingBusinessName"
        ),
        seller_vat_id=vat_id,
        seller_tax_registration=tax_registration,
        buyer_name=_text(
            root, f"{_TRADE}/ram:ApplicableHeaderTradeAgreement/ram:BuyerTradeParty/ram:Name"
        ),
        accounting_ref=_text(settlement, _ACCOUNT),
        lines=[
            _line(el) for el in root.findall(f"{_TRADE}/ram:IncludedSupplyChainTradeLineItem", NS)
        ],
        allowances_charges=_allowances_charges(settlement),
        sum_of_line_net=_amount(totals, "ram:LineTotalAmount", "the sum of lines (BT-106)"),
        allowance_total=_amount(totals, "ram:AllowanceTotalAmount", "the allowances (BT-107)"),
        charge_total=_amount(totals, "ram:ChargeTotalAmount", "the charges (BT-108)"),
        tax_exclusive=_amount(totals, "ram:TaxBasisTotalAmount", "the net total (BT-109)"),
        tax_total=tax_total,
        tax_total_tax_currency=tax_total_tax_currency,
        tax_inclusive=_amount(totals, "ram:GrandTotalAmount", "the gross total (BT-112)"),
        prepaid=_amount(totals, "ram:TotalPrepaidAmount", "the prepaid amount (BT-113)"),
        rounding=_amount(totals, "ram:RoundingAmount", "the rounding amount (BT-114)"),
        payable=_amount(totals, "ram:DuePayableAmount", "the amount due (BT-115)"),
        vat_breakdown=[
            _breakdown(el)
            for el in (
                [] if settlement is None else settlement.findall("ram:ApplicableTradeTax", NS)
            )
        ],
    )


def _tax_ids(party: Element | None) -> tuple[str | None, str | None]:
    """BT-31 (scheme VA) and BT-32 (scheme FC)."""
    vat_id = tax_registration = None
    for element in (
        [] if party is None else party.findall("ram:SpecifiedTaxRegistration/ram:ID", NS)
    ):
        scheme = element.get("schemeID")
        if scheme == "VA":
            vat_id = vat_id or text_of(element)
        elif scheme == "FC":
            tax_registration = tax_registration or text_of(element)
    return vat_id, tax_registration


def _tax_totals(
    totals: Element | None, currency: str | None
) -> tuple[Decimal | None, Decimal | None]:
    """BT-110 and BT-111: TaxTotalAmount once per currency, told apart by currencyID."""
    in_invoice = in_tax = None
    for element in [] if totals is None else totals.findall("ram:TaxTotalAmount", NS):
        amount = decimal_of(text_of(element), "the tax total (BT-110)")
        if element.get("currencyID") in (None, currency) and in_invoice is None:
            in_invoice = amount
        else:
            in_tax = amount
    return in_invoice, in_tax


def _breakdown(element: Element) -> VatBreakdown:
    return VatBreakdown(
        category=_text(element, "ram:CategoryCode"),
        rate=_amount(element, "ram:RateApplicablePercent", "a VAT rate (BT-119)"),
        taxable=_amount(element, "ram:BasisAmount", "a VAT taxable amount (BT-116)"),
        tax=_amount(element, "ram:CalculatedAmount", "a VAT amount (BT-117)"),
    )


def _allowances_charges(settlement: Element | None) -> list[AllowanceCharge]:
    """BG-20 and BG-21, and the EXTENDED profile's logistics service charges (freight,
    packing), which its ChargeTotalAmount counts with the others."""
    if settlement is None:
        return []
    found = [
        _allowance_charge(el) for el in settlement.findall("ram:SpecifiedTradeAllowanceCharge", NS)
    ]
    for element in settlement.findall("ram:SpecifiedLogisticsServiceCharge", NS):
        what = "a logistics service charge"
        found.append(
            AllowanceCharge(
                charge=True,
                amount=required(_amount(element, "ram:AppliedAmount", what), what),
                reason=_text(element, "ram:Description"),
                vat_category=_text(element, "ram:AppliedTradeTax/ram:CategoryCode"),
                vat_rate=_amount(
                    element, "ram:AppliedTradeTax/ram:RateApplicablePercent", "a VAT rate"
                ),
            )
        )
    return found


def _allowance_charge(element: Element) -> AllowanceCharge:
    charge = (_text(element, "ram:ChargeIndicator/udt:Indicator") or "").lower() == "true"
    what = "a document charge (BT-99)" if charge else "a document allowance (BT-92)"
    return AllowanceCharge(
        charge=charge,
        amount=required(_amount(element, "ram:ActualAmount", what), what),
        reason=_text(element, "ram:Reason"),
        vat_category=_text(element, "ram:CategoryTradeTax/ram:CategoryCode"),
        vat_rate=_amount(element, "ram:CategoryTradeTax/ram:RateApplicablePercent", "a VAT rate"),
    )


def _line(element: Element) -> InvoiceLine:
    line_id = _text(element, "ram:AssociatedDocumentLineDocument/ram:LineID")
    where = f"line {line_id}" if line_id else "a line"
    price = element.find("ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice", NS)
    quantity = element.find("ram:SpecifiedLineTradeDelivery/ram:BilledQuantity", NS)
    settlement = element.find("ram:SpecifiedLineTradeSettlement", NS)
    net_what = f"the net of {where} (BT-131)"
    return InvoiceLine(
        id=line_id,
        name=_text(element, "ram:SpecifiedTradeProduct/ram:Name"),
        description=_text(element, "ram:SpecifiedTradeProduct/ram:Description"),
        quantity=decimal_of(text_of(quantity), f"the quantity of {where} (BT-129)"),
        unit_code=None if quantity is None else quantity.get("unitCode"),
        net_price=_amount(price, "ram:ChargeAmount", f"the price of {where} (BT-146)"),
        base_quantity=_amount(price, "ram:BasisQuantity", f"the base quantity of {where}"),
        net_amount=required(
            _amount(
                settlement,
                "ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount",
                net_what,
            ),
            net_what,
        ),
        vat_category=_text(settlement, "ram:ApplicableTradeTax/ram:CategoryCode"),
        vat_rate=_amount(
            settlement,
            "ram:ApplicableTradeTax/ram:RateApplicablePercent",
            f"the VAT rate of {where}",
        ),
        accounting_ref=_text(settlement, _ACCOUNT),
        adjusted=settlement is not None
        and settlement.find("ram:SpecifiedTradeAllowanceCharge", NS) is not None,
    )
