"""An ``EInvoice`` as the Dext item the pipeline reads (``domain.validation`` checks it).

The mapping, where EN 16931 and Dext's item differ:

- ``total_amount`` is the gross total (BT-112), ``vat_amount`` the VAT (BT-110) and
  ``net_amount`` the net total (BT-109): what the bill is posted with. What is left to pay
  (BT-115, after prepaid amounts and rounding) is kept as ``amount_due``.
- Document allowances and charges become lines of their own (negative and positive nets), so
  the lines add up to the net total as validation expects.
- The buyer's accounting reference (BT-19, per line BT-133) is the ``category_code``: it is
  where the buyer asked the seller to say the bill is booked. Without one, a supplier rule
  in the tenants file codes the bill, or validation parks it for its missing category.
- EN 16931 gives VAT per category and rate, not per line: each category's VAT (BT-117) is
  shared over its lines in proportion to their nets (``share_out``), so the lines' VAT adds
  up to the invoice's exactly.
- The id is derived (``einv-`` + a hash of seller, number, type and date): the same invoice
  sent twice gets the same id, so the pipeline receives it once.

Amounts are written as plain decimal text, never floats.
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, Inexact, localcontext
from typing import Any

from adapters.einvoice import errors as E
from adapters.einvoice.model import EInvoice, InvoiceLine
from domain.money import ISO_4217, quantum


def decimal_text(value: Decimal) -> str:
    """``value`` as plain text that reads as the same number in every tenant locale.

    Validation reads amounts by the tenant's decimal separator, and for a decimal-comma
    tenant "1.234" is ambiguous (1.234 or 1234?). XML decimals always use a point, so a value
    with exactly three decimals gets a fourth zero: "1.2340" can only be one number.
    """
    text = format(value, "f")
    _, point, fraction = text.partition(".")
    return text + "0" if point and len(fraction) == 3 else text


def einvoice_id(inv: EInvoice) -> str:
    seller = inv.seller_vat_id or inv.seller_tax_registration or inv.seller_name or ""
    parts = [
        # "DE 123456789" and "de123456789" are one VAT id: suppliers write it both ways.
        "".join(seller.split()).upper(),
        inv.number or "",
        "credit" if inv.credit_note else "invoice",
        inv.issue_date.isoformat() if inv.issue_date else "",
    ]
    return "einv-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def to_item(inv: EInvoice, *, filename: str, content_type: str) -> dict[str, Any]:
    """The Dext item of ``inv``; ``filename`` and ``content_type`` describe its document."""
    if inv.tax_inclusive is None:
        raise E.EInvoiceError(E.MISSING_FIELD, "the invoice total with VAT (BT-112) is missing")
    item: dict[str, Any] = {
        "id": einvoice_id(inv),
        "type": "credit_note" if inv.credit_note else "invoice",
        "payee": inv.seller_name or inv.seller_trading_name,
        "payee_tax_number": inv.seller_vat_id or inv.seller_tax_registration,
        "invoice_number": inv.number,
        "date": inv.issue_date.isoformat() if inv.issue_date else None,
        "due_date": inv.due_date.isoformat() if inv.due_date else None,
        "currency": inv.currency,
        "category_code": inv.accounting_ref,
        "total_amount": decimal_text(inv.tax_inclusive),
        "vat_amount": decimal_text(inv.tax_total if inv.tax_total is not None else Decimal(0)),
        "net_amount": None if inv.tax_exclusive is None else decimal_text(inv.tax_exclusive),
        "amount_due": None if inv.payable is None else decimal_text(inv.payable),
        "line_items": _lines(inv),
        "document": {"filename": filename, "content_type": content_type},
        "source_format": inv.format,
        "einvoice": {
            "type_code": inv.type_code,
            "customization_id": inv.customization_id,
            "seller_trading_name": inv.seller_trading_name,
            "buyer_name": inv.buyer_name,
            "tax_currency": inv.tax_currency,
            "prepaid": None if inv.prepaid is None else decimal_text(inv.prepaid),
            "rounding": None if inv.rounding is None else decimal_text(inv.rounding),
            "third_party": None if inv.third_party is None else decimal_text(inv.third_party),
        },
    }
    return {k: v for k, v in item.items() if v is not None}


def _lines(inv: EInvoice) -> list[dict[str, Any]]:
    """The invoice lines, then one line per document allowance or charge, VAT shared out;
    without lines (Factur-X BASIC WL), one line per VAT category of the breakdown."""
    if not inv.lines:
        return _breakdown_lines(inv)
    rows: list[dict[str, Any]] = []
    for ln in inv.lines:
        rows.append(_line(ln))
    # A zero allowance or charge (XRechnung's samples have them) would be an empty bill line.
    for ac in (ac for ac in inv.allowances_charges if ac.amount != 0):
        net = ac.amount if ac.charge else -ac.amount
        kind = "Charge" if ac.charge else "Allowance"
        rows.append(
            {
                "description": f"{kind}: {ac.reason}" if ac.reason else kind,
                "quantity": "1",
                "net_amount": net,
                "tax_rate": ac.vat_rate,
                "vat_category": ac.vat_category,
            }
        )
    _share_vat(inv, rows)
    for row in rows:
        for key in ("net_amount", "tax_amount", "total_amount", "tax_rate"):
            if isinstance(row.get(key), Decimal):
                row[key] = decimal_text(row[key])
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def _breakdown_lines(inv: EInvoice) -> list[dict[str, Any]]:
    """A line per VAT category and rate: its taxable amount (allowances and charges already
    in it) and its VAT. Nothing when there is no breakdown either (Factur-X MINIMUM): the
    item is then its header alone, as a Dext item without lines."""
    rows = []
    for b in inv.vat_breakdown:
        if b.taxable is None or b.tax is None or (b.taxable == 0 and b.tax == 0):
            continue
        rate = "" if b.rate is None else f" {b.rate.normalize():f}%"
        row = {
            "description": f"VAT {b.category or ''}{rate}".strip(),
            "quantity": "1",
            "net_amount": decimal_text(b.taxable),
            "tax_amount": decimal_text(b.tax),
            "total_amount": decimal_text(b.taxable + b.tax),
            "tax_rate": None if b.rate is None else decimal_text(b.rate),
            "vat_category": b.category,
        }
        rows.append({k: v for k, v in row.items() if v is not None})
    return rows


def _line(ln: InvoiceLine) -> dict[str, Any]:
    return {
        "description": ln.name or ln.description or (f"Line {ln.id}" if ln.id else None),
        "quantity": None if ln.quantity is None else decimal_text(ln.quantity),
        "unit_price": _unit_price(ln),
        "net_amount": ln.net_amount,
        "tax_rate": ln.vat_rate,
        "category_code": ln.accounting_ref,
        "vat_category": ln.vat_category,
        "unit_code": ln.unit_code,
        "net_price": None if ln.net_price is None else decimal_text(ln.net_price),
        "base_quantity": None if ln.base_quantity is None else decimal_text(ln.base_quantity),
        "line_id": ln.id,
        "item_description": ln.description if ln.name else None,
    }


def _unit_price(ln: InvoiceLine) -> str | None:
    """The price of one unit, when quantity x it is the line's net (to the cent).

    EN 16931 makes the line net (BT-131) the amount that counts; price x quantity is not one
    of its rules, and official samples break it (a base quantity of 3.96, a surcharge line
    priced as its percentage). Validation checks price x quantity against the net, so a
    price that does not give the net is left out (it stays in ``net_price``), as is one with
    line allowances or charges, or without an exact per-unit figure."""
    if ln.adjusted or ln.net_price is None or ln.quantity is None:
        return None
    base = ln.base_quantity if ln.base_quantity not in (None, Decimal(0)) else Decimal(1)
    assert base is not None
    with localcontext() as ctx:
        ctx.prec = 28
        ctx.traps[Inexact] = True
        try:
            unit = ln.net_price / base
        except Inexact:
            return None
    exponent = unit.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        return None
    if abs(ln.quantity * unit - ln.net_amount) > Decimal("0.01"):
        return None
    return decimal_text(unit if base == 1 else unit.normalize())


def _share_vat(inv: EInvoice, rows: list[dict[str, Any]]) -> None:
    """Each row's ``tax_amount`` and ``total_amount``: its category's VAT by its share of the
    net, so that the rows' VAT sums to the breakdown's exactly."""
    groups: dict[tuple[str | None, Decimal | None], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row.get("vat_category"), _rate(row.get("tax_rate")))
        groups.setdefault(key, []).append(row)
    # An unknown currency is validation's to report; cents meanwhile.
    unit = quantum(inv.currency) if inv.currency in ISO_4217 else Decimal("0.01")
    for key, members in groups.items():
        vat = _category_vat(inv, key)
        if vat is None:
            # No breakdown entry for the category: the rate alone says what each line's VAT is.
            for row in members:
                rate = _rate(row.get("tax_rate")) or Decimal(0)
                row["tax_amount"] = (row["net_amount"] * rate / 100).quantize(
                    unit, rounding=ROUND_HALF_UP
                )
        else:
            _allocate(members, vat, unit)
        for row in members:
            row["total_amount"] = row["net_amount"] + row["tax_amount"]


def _rate(value: Any) -> Decimal | None:
    return value.normalize() if isinstance(value, Decimal) else None


def _category_vat(inv: EInvoice, key: tuple[str | None, Decimal | None]) -> Decimal | None:
    category, rate = key
    found = [
        b.tax
        for b in inv.vat_breakdown
        if b.category == category and (b.rate.normalize() if b.rate is not None else None) == rate
    ]
    return sum((t for t in found if t is not None), Decimal(0)) if found else None


def share_out(nets: list[Decimal], vat: Decimal, unit: Decimal) -> list[Decimal]:
    """``vat`` shared over ``nets`` in proportion, in whole ``unit``s, summing to ``vat``.

    The largest-remainder method: each share is its exact proportion rounded down, and the
    units left go to the largest remainders, so no share is a unit or more from its exact
    proportion. Validation checks each line's VAT against its rate within the tenant's
    tolerance plus half a unit; handing the whole rounding difference to one line could
    exceed that on an invoice with many lines.
    """
    base = sum(nets, Decimal(0))
    if not nets:
        return []
    if base == 0:
        # Nets that cancel out have no proportion: the VAT (zero on a sound invoice) goes to
        # the largest line, where validation will question it if it is not zero.
        largest = max(range(len(nets)), key=lambda i: abs(nets[i]))
        return [vat if i == largest else Decimal(0) for i in range(len(nets))]
    exact = [vat * net / base for net in nets]
    shares = [x.quantize(unit, rounding=ROUND_FLOOR) for x in exact]
    left = int((vat - sum(shares, Decimal(0))) / unit)
    by_remainder = sorted(range(len(nets)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[:left]:
        shares[i] += unit
    return shares


def _allocate(rows: list[dict[str, Any]], vat: Decimal, unit: Decimal) -> None:
    shares = share_out([row["net_amount"] for row in rows], vat, unit)
    for row, share in zip(rows, shares, strict=True):
        row["tax_amount"] = share
