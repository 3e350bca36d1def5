"""UBL 2.1 Invoice and CreditNote (Peppol BIS Billing 3.0, XRechnung UBL) into ``EInvoice``.

Elements are found by namespace URI, never by prefix: samples use ``cbc:``, ``ubl:`` or a
default namespace for the same thing. Only EN 16931's paths are read; extensions are ignored.
"""

from __future__ import annotations

from decimal import Decimal
from xml.etree.ElementTree import Element

from adapters.einvoice.model import AllowanceCharge, EInvoice, InvoiceLine, VatBreakdown
from adapters.einvoice.xml import date_of, decimal_of, local_name, required, text_of

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


def _text(element: Element | None, path: str) -> str | None:
    return None if element is None else text_of(element.find(path, NS))


def _amount(element: Element | None, path: str, what: str) -> Decimal | None:
    return decimal_of(_text(element, path), what)


def read_ubl(root: Element) -> EInvoice:
    """The invoice in a UBL ``Invoice`` or ``CreditNote`` root (the caller checked which)."""
    credit = local_name(root) == "CreditNote"
    kind = "CreditNote" if credit else "Invoice"
    supplier = root.find("cac:AccountingSupplierParty/cac:Party", NS)
    vat_id, tax_registration = _tax_ids(supplier)
    due = _text(root, "cbc:DueDate") or _text(root, "cac:PaymentMeans/cbc:PaymentDueDate")
    totals = root.find("cac:LegalMonetaryTotal", NS)
    currency = _text(root, "cbc:DocumentCurrencyCode")
    tax_total, tax_total_tax_currency, breakdown = _tax(root, currency)
    return EInvoice(
        format="ubl-creditnote" if credit else "ubl-invoice",
        customization_id=_text(root, "cbc:CustomizationID"),
        type_code=_text(root, f"cbc:{kind}TypeCode"),
        number=_text(root, "cbc:ID"),
        issue_date=date_of(_text(root, "cbc:IssueDate"), "the issue date (BT-2)"),
        due_date=date_of(due, "the due date (BT-9)"),
        currency=currency,
        tax_currency=_text(root, "cbc:TaxCurrencyCode"),
        seller_name=_text(supplier, "cac:PartyLegalEntity/cbc:RegistrationName"),
        seller_trading_name=_text(supplier, "cac:PartyName/cbc:Name"),
        seller_vat_id=vat_id,
        seller_tax_registration=tax_registration,
        buyer_name=_text(
            root, "cac:AccountingCustomerParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName"
        ),
        accounting_ref=_text(root, "cbc:AccountingCost"),
        lines=[_line(el, kind) for el in root.findall(f"cac:{kind}Line", NS)],
        allowances_charges=[
            _allowance_charge(el) for el in root.findall("cac:AllowanceCharge", NS)
        ],
        sum_of_line_net=_amount(totals, "cbc:LineExtensionAmount", "the sum of lines (BT-106)"),
        allowance_total=_amount(totals, "cbc:AllowanceTotalAmount", "the allowances (BT-107)"),
        charge_total=_amount(totals, "cbc:ChargeTotalAmount", "the charges (BT-108)"),
        tax_exclusive=_amount(totals, "cbc:TaxExclusiveAmount", "the net total (BT-109)"),
        tax_total=tax_total,
        tax_total_tax_currency=tax_total_tax_currency,
        tax_inclusive=_amount(totals, "cbc:TaxInclusiveAmount", "the gross total (BT-112)"),
        prepaid=_amount(totals, "cbc:PrepaidAmount", "the prepaid amount (BT-113)"),
        rounding=_amount(totals, "cbc:PayableRoundingAmount", "the rounding amount (BT-114)"),
        payable=_amount(totals, "cbc:PayableAmount", "the amount due (BT-115)"),
        vat_breakdown=breakdown,
        third_party=_third_party(root),
    )


def _third_party(root: Element) -> Decimal | None:
    """The sum of XRechnung's third-party payments (BG-DEX-09), None without any."""
    paid = [
        _amount(el, "cbc:PaidAmount", "a third-party payment (BT-DEX-002)")
        for el in root.findall("cac:PrepaidPayment", NS)
    ]
    amounts = [a for a in paid if a is not None]
    return sum(amounts, Decimal(0)) if amounts else None


def _tax_ids(party: Element | None) -> tuple[str | None, str | None]:
    """The seller's VAT id (BT-31, tax scheme VAT) and other tax registration (BT-32)."""
    vat_id = tax_registration = None
    for scheme in [] if party is None else party.findall("cac:PartyTaxScheme", NS):
        company_id = _text(scheme, "cbc:CompanyID")
        if _text(scheme, "cac:TaxScheme/cbc:ID") == "VAT":
            vat_id = vat_id or company_id
        else:
            tax_registration = tax_registration or company_id
    return vat_id, tax_registration


def _tax(
    root: Element, currency: str | None
) -> tuple[Decimal | None, Decimal | None, list[VatBreakdown]]:
    """BT-110, BT-111 and the VAT breakdown: one TaxTotal per currency, the breakdown in the
    one of the invoice's currency."""
    tax_total = in_tax_currency = None
    breakdown: list[VatBreakdown] = []
    for total in root.findall("cac:TaxTotal", NS):
        element = total.find("cbc:TaxAmount", NS)
        amount = decimal_of(text_of(element), "the tax total (BT-110)")
        in_invoice_currency = element is None or element.get("currencyID") in (None, currency)
        if in_invoice_currency and tax_total is None:
            tax_total = amount
            breakdown = [_subtotal(el) for el in total.findall("cac:TaxSubtotal", NS)]
        elif not in_invoice_currency:
            in_tax_currency = amount
    return tax_total, in_tax_currency, breakdown


def _subtotal(element: Element) -> VatBreakdown:
    return VatBreakdown(
        category=_text(element, "cac:TaxCategory/cbc:ID"),
        rate=_amount(element, "cac:TaxCategory/cbc:Percent", "a VAT rate (BT-119)"),
        taxable=_amount(element, "cbc:TaxableAmount", "a VAT taxable amount (BT-116)"),
        tax=_amount(element, "cbc:TaxAmount", "a VAT amount (BT-117)"),
    )


def _allowance_charge(element: Element) -> AllowanceCharge:
    charge = (_text(element, "cbc:ChargeIndicator") or "").lower() == "true"
    what = "a document charge (BT-99)" if charge else "a document allowance (BT-92)"
    return AllowanceCharge(
        charge=charge,
        amount=required(_amount(element, "cbc:Amount", what), what),
        reason=_text(element, "cbc:AllowanceChargeReason"),
        vat_category=_text(element, "cac:TaxCategory/cbc:ID"),
        vat_rate=_amount(element, "cac:TaxCategory/cbc:Percent", "a VAT rate"),
    )


def _line(element: Element, kind: str) -> InvoiceLine:
    quantity = element.find(
        "cbc:InvoicedQuantity" if kind == "Invoice" else "cbc:CreditedQuantity", NS
    )
    line_id = _text(element, "cbc:ID")
    where = f"line {line_id}" if line_id else "a line"
    return InvoiceLine(
        id=line_id,
        name=_text(element, "cac:Item/cbc:Name"),
        description=_text(element, "cac:Item/cbc:Description"),
        quantity=decimal_of(text_of(quantity), f"the quantity of {where} (BT-129)"),
        unit_code=None if quantity is None else quantity.get("unitCode"),
        net_price=_amount(element, "cac:Price/cbc:PriceAmount", f"the price of {where} (BT-146)"),
        base_quantity=_amount(
            element, "cac:Price/cbc:BaseQuantity", f"the base quantity of {where}"
        ),
        net_amount=required(
            _amount(element, "cbc:LineExtensionAmount", f"the net of {where} (BT-131)"),
            f"the net of {where} (BT-131)",
        ),
        vat_category=_text(element, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID"),
        vat_rate=_amount(
            element, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent", f"the VAT rate of {where}"
        ),
        accounting_ref=_text(element, "cbc:AccountingCost"),
        adjusted=element.find("cac:AllowanceCharge", NS) is not None,
    )
