"""Steps 2 and 3: the document's direction, then the arithmetic on the amounts as written
(line net + tax = total, quantity x price, tax at the stated rate, lines against the header),
within the tenant's tolerance."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from domain import problems as P
from domain.money import round_money
from domain.tenants import rate_key
from domain.validation.fields import Fields
from domain.validation.lines import Line, header_line


def orient(f: Fields, out: P.Problems, cur: str, tol: Decimal) -> Decimal:
    """Turn a credit note (by type or by a negative total) positive and mark it, so ledgers
    post it as a credit note; make the single line of an invoice without lines. Returns the
    header's tax (zero when there is no total, and nothing else is done)."""
    if f.total is None:
        return Decimal(0)
    # Sage posts in minor units: 0.001 is a bill of 0.00, as empty as a zero.
    if round_money(f.total, cur) == 0:
        out.add(
            P.ZERO_TOTAL,
            "total_amount",
            "The total is zero, so there is nothing to post; check the total in Dext or "
            "archive the item.",
        )
    if f.total < 0:
        f.credit = True
        f.total = -f.total
        f.vat = -f.vat if f.vat is not None else None
        f.net = -f.net if f.net is not None else None
        for ln in f.lines:
            ln.flip()
    if f.credit:
        # Credit notes come written every way: a positive header over negative lines,
        # or a negative total with a positive VAT figure. The total's sign is the truth.
        if f.vat is not None and f.vat < 0:
            f.vat = -f.vat
        line_sum = sum((ln.total for ln in f.lines), Decimal(0))
        if f.lines and line_sum < 0 and abs(line_sum + f.total) <= tol:
            for ln in f.lines:
                ln.flip()
    if f.raw_lines == []:
        f.lines = [header_line(f.header, f.net, f.vat, f.total, f.rate, f.rate_name, f.currency)]
    tax = f.vat if f.vat is not None else sum((ln.tax for ln in f.lines), Decimal(0))
    check_tax(tax, f.total, f.credit, out, tol)
    return tax


def check_tax(tax: Decimal, total: Decimal, credit: bool, out: P.Problems, tol: Decimal) -> None:
    """Tax is part of the total: never more than it, never below zero (a credit note's amounts
    are already turned positive here, so a negative tax is wrong on either kind)."""
    if tax > total + tol:
        out.add(
            P.TAX_EXCEEDS_TOTAL,
            "vat_amount",
            f"The tax {tax} is more than the total {total}; correct the tax or the total in Dext.",
        )
    if tax < -tol:
        kind = "a credit note" if credit else "an invoice"
        out.add(
            P.NEGATIVE_TAX,
            "vat_amount",
            f"The tax {tax} is below zero on {kind}; correct its sign in Dext (a refund is "
            "a credit note).",
        )


def check_amounts(
    f: Fields, tax: Decimal, out: P.Problems, cur: str, tol: Decimal, unit: Decimal
) -> None:
    """Step 3: the header, each line, and the lines against the header (nothing without a
    total). ``tax`` is the header's tax from ``orient``; ``unit`` the currency's minor unit."""
    if f.total is None:
        return
    if f.net is not None and abs(f.net + tax - f.total) > tol:
        out.add(
            P.HEADER_ARITHMETIC,
            "net_amount",
            f"Net {f.net} + tax {tax} = {f.net + tax}, not the total {f.total}; "
            "correct the amounts in Dext.",
        )
    for ln in f.lines:
        if ln.index is not None:
            check_line(ln, out, tol)
        check_rate(ln, out, tol + unit / 2)
    if f.raw_lines and f.complete:
        _check_lines_add_up(f.lines, f.total, f.vat, out, cur, tol)


def _check_lines_add_up(
    lines: list[Line],
    total: Decimal,
    vat: Decimal | None,
    out: P.Problems,
    cur: str,
    tol: Decimal,
) -> None:
    line_total = sum((ln.total for ln in lines), Decimal(0))
    if abs(line_total - total) > tol:
        out.add(
            P.LINES_TOTAL,
            "line_items",
            f"The lines add up to {_money_text(line_total, cur)}, but the invoice total "
            f"is {_money_text(total, cur)}; correct the lines or the total in Dext.",
        )
    line_tax = sum((ln.tax for ln in lines), Decimal(0))
    if vat is not None and abs(line_tax - vat) > tol:
        out.add(
            P.LINES_TAX,
            "line_items",
            f"The lines' tax adds up to {_money_text(line_tax, cur)}, but the invoice tax "
            f"is {_money_text(vat, cur)}; correct the lines or the tax in Dext.",
        )


def check_line(line: Line, out: P.Problems, tol: Decimal) -> None:
    n = (line.index or 0) + 1
    if abs(line.net + line.tax - line.total) > tol:
        out.add(
            P.LINE_ARITHMETIC,
            line.path,
            f"Line {n}: net {line.net} + tax {line.tax} = {line.net + line.tax}, not the line "
            f"total {line.total}; correct the line in Dext.",
        )
    if line.unit_price is not None and line.quantity != 0:
        expected = line.quantity * line.unit_price
        # A unit price is itself rounded: allow half its last digit per unit.
        exponent = line.unit_price.as_tuple().exponent
        slack = abs(line.quantity) * Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
        if abs(abs(expected) - abs(line.net)) > tol + slack / 2:
            out.add(
                P.LINE_QUANTITY_PRICE,
                line.at("unit_price"),
                f"Line {n}: quantity {line.quantity} x unit price {line.unit_price} = "
                f"{expected.normalize():f}, not the line net {line.net}; correct the "
                "quantity, unit price or net in Dext.",
            )


def check_rate(line: Line, out: P.Problems, tol: Decimal) -> None:
    if line.tax_rate is None:
        return
    expected = line.net * line.tax_rate / 100
    if abs(expected - line.tax) > tol:
        where = "The invoice" if line.index is None else f"Line {line.index + 1}"
        out.add(
            P.TAX_RATE_MISMATCH,
            line.at("tax_amount", "vat_amount"),
            f"{where}: tax {line.tax} is not {rate_key(line.tax_rate)}% of the net {line.net} "
            f"(that would be {expected.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}); "
            "correct the tax amount or the tax rate.",
        )


def _money_text(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,}"
