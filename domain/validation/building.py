"""Step 5, only when nothing is wrong: round to the currency's minor unit, put any rounding
difference on the largest line so the bill adds up to the penny, and build the clean invoice
and the coded draft bill."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from domain.coding import dimensions_for
from domain.dates import resolve_due_date
from domain.models import BillLine, DraftBill, Invoice, InvoiceLine, item_key
from domain.money import round_money
from domain.normalize import vendor_match_key
from domain.tenants import SupplierRule, Tenant
from domain.validation.coding import Coded
from domain.validation.fields import KNOWN_FIELDS, Fields
from domain.validation.lines import Line
from domain.validation.reading import flag


def build(
    item: Mapping[str, Any],
    f: Fields,
    tenant: Tenant,
    rule: SupplierRule | None,
    coded: list[Coded],
    tax_h: Decimal,
) -> tuple[Invoice, DraftBill]:
    """The invoice and the bill of an item that passed every check; ``tax_h`` is the
    header's tax, ``coded`` each line's GL account, tax code and rate."""
    dext_id, supplier, number, issued, currency, total = (
        f.dext_id,
        f.supplier,
        f.number,
        f.issued,
        f.currency,
        f.total,
    )
    assert dext_id and supplier and number and issued and currency and total is not None
    total_r = round_money(total, currency)
    tax_r = round_money(tax_h, currency)
    for ln in f.lines:
        ln.net, ln.tax = round_money(ln.net, currency), round_money(ln.tax, currency)
        ln.total = ln.net + ln.tax
    allocate(f.lines, total_r - tax_r, tax_r)
    due_date, _ = resolve_due_date(
        f.due,
        issued,
        supplier_terms_days=rule.terms_days if rule else None,
        default_terms_days=tenant.default_terms_days,
    )
    invoice_lines, bill_lines = _lines(f.lines, coded, rule, currency)
    invoice = Invoice(
        dext_id=dext_id,
        supplier=supplier,
        supplier_tax_number=f.tax_number,
        number=number,
        date=issued,
        due_date=due_date,
        currency=currency,
        net=total_r - tax_r,
        tax=tax_r,
        total=total_r,
        credit_note=f.credit,
        description=f.header.description,
        category=f.header.category,
        payment_method=f.payment_method,
        paid=flag(item.get("paid")),
        lines=invoice_lines,
        document=f.document,
        extra={k: v for k, v in item.items() if k not in KNOWN_FIELDS},
    )
    return invoice, _bill(tenant, invoice, due_date, f.header.description, bill_lines)


def _bill(
    tenant: Tenant,
    invoice: Invoice,
    due_date: dt.date,
    memo: str | None,
    lines: list[BillLine],
) -> DraftBill:
    return DraftBill(
        item_key=item_key(tenant.id, invoice.dext_id),
        vendor_name=invoice.supplier,
        vendor_match_key=vendor_match_key(invoice.supplier),
        vendor_tax_number=invoice.supplier_tax_number,
        number=invoice.number,
        date=invoice.date,
        due_date=due_date,
        currency=invoice.currency,
        credit_note=invoice.credit_note,
        net=invoice.net,
        tax=invoice.tax,
        total=invoice.total,
        memo=memo,
        lines=lines,
    )


def _lines(
    lines: list[Line], coded: list[Coded], rule: SupplierRule | None, currency: str
) -> tuple[list[InvoiceLine], list[BillLine]]:
    invoice_lines: list[InvoiceLine] = []
    bill_lines: list[BillLine] = []
    for ln, (account, tax_code, rate) in zip(lines, coded, strict=True):
        quantity = abs(ln.quantity)
        if ln.unit_price is not None:
            price = abs(ln.unit_price) if ln.net >= 0 else -abs(ln.unit_price)
        else:
            price = ln.net / quantity
        price = unit_price(price, currency)
        invoice_lines.append(
            InvoiceLine(
                description=ln.description,
                category=ln.category,
                category_code=ln.category_code,
                quantity=quantity,
                unit_price=price,
                net=ln.net,
                tax=ln.tax,
                total=ln.total,
                tax_rate=ln.tax_rate,
                extra=ln.extra,
            )
        )
        assert account is not None  # every uncoded line was reported as a problem
        bill_lines.append(
            BillLine(
                description=ln.description,
                gl_account=account,
                quantity=quantity,
                unit_price=price,
                net=ln.net,
                tax=ln.tax,
                total=ln.total,
                tax_code=tax_code,
                tax_rate=rate,
                dimensions=dimensions_for(
                    rule, department=ln.department, location=ln.location, project=ln.project
                ),
            )
        )
    return invoice_lines, bill_lines


def allocate(lines: list[Line], net: Decimal, tax: Decimal) -> None:
    """Put the rounding difference between the header and the rounded lines on the largest
    line, so that the bill's lines add up to its header to the last minor unit."""
    if not lines:
        return
    tax_gap = tax - sum((ln.tax for ln in lines), Decimal(0))
    if tax_gap:
        target = max(lines, key=lambda ln: (abs(ln.tax), abs(ln.total)))
        target.tax += tax_gap
    net_gap = net - sum((ln.net for ln in lines), Decimal(0))
    if net_gap:
        target = max(lines, key=lambda ln: abs(ln.net))
        target.net += net_gap
    for ln in lines:
        ln.total = ln.net + ln.tax


def unit_price(value: Decimal, currency: str) -> Decimal:
    """A unit price keeps the currency's minor unit unless that would lose a real fraction
    (0.125 per screw), in which case up to six decimals are kept."""
    rounded = round_money(value, currency)
    if rounded == value:
        return rounded
    return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).normalize()
