"""EN 16931's totals rules (BR-CO-10 to BR-CO-16) on an invoice as written.

The standard demands exact equality: every amount is already rounded to two decimals by the
seller, so the sums hold to the cent or the invoice is wrong. A rule is checked when the
invoice states its terms (Factur-X MINIMUM, for one, has no lines to add up). Each failure is
a ``Problem`` with a stable code, named after the rule, and the invoice is not turned into an
item: the numbers the bill would be posted with are the ones that disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Final

from adapters.einvoice.model import EInvoice
from domain.errors import Problem

LINES_SUM: Final = "en16931_lines_sum"  # BR-CO-10: BT-106 = sum of BT-131
ALLOWANCES_SUM: Final = "en16931_allowances_sum"  # BR-CO-11: BT-107 = sum of BT-92
CHARGES_SUM: Final = "en16931_charges_sum"  # BR-CO-12: BT-108 = sum of BT-99
TAX_EXCLUSIVE: Final = "en16931_tax_exclusive"  # BR-CO-13: BT-109 = BT-106 - BT-107 + BT-108
VAT_BREAKDOWN: Final = "en16931_vat_breakdown"  # BR-CO-14: BT-110 = sum of BT-117
TAX_INCLUSIVE: Final = "en16931_tax_inclusive"  # BR-CO-15: BT-112 = BT-109 + BT-110
AMOUNT_DUE: Final = "en16931_amount_due"  # BR-CO-16: BT-115 = BT-112 - BT-113 + BT-114

ALL_CODES: Final = frozenset(
    {
        LINES_SUM,
        ALLOWANCES_SUM,
        CHARGES_SUM,
        TAX_EXCLUSIVE,
        VAT_BREAKDOWN,
        TAX_INCLUSIVE,
        AMOUNT_DUE,
    }
)

_ZERO = Decimal(0)


def _sum(amounts: Iterable[Decimal | None]) -> Decimal:
    return sum((a for a in amounts if a is not None), _ZERO)


def _or_zero(amount: Decimal | None) -> Decimal:
    return _ZERO if amount is None else amount


def check_totals(inv: EInvoice) -> list[Problem]:
    """Every totals rule the invoice breaks, in the order of the standard."""
    problems: list[Problem] = []

    def expect(code: str, term: str, stated: Decimal, computed: Decimal, how: str) -> None:
        if stated != computed:
            problems.append(
                Problem(
                    code=code,
                    field=term,
                    message=f"{term} is {stated}, but {how} gives {computed}; the invoice's "
                    "totals do not add up (EN 16931), ask the supplier for a corrected one",
                )
            )

    allowances = [ac.amount for ac in inv.allowances_charges if not ac.charge]
    charges = [ac.amount for ac in inv.allowances_charges if ac.charge]
    if inv.sum_of_line_net is not None and inv.lines:
        expect(
            LINES_SUM,
            "BT-106",
            inv.sum_of_line_net,
            _sum(ln.net_amount for ln in inv.lines),
            "the sum of the line nets (BR-CO-10)",
        )
    if inv.allowance_total is not None or allowances:
        expect(
            ALLOWANCES_SUM,
            "BT-107",
            _or_zero(inv.allowance_total),
            _sum(allowances),
            "the sum of the document allowances (BR-CO-11)",
        )
    if inv.charge_total is not None or charges:
        expect(
            CHARGES_SUM,
            "BT-108",
            _or_zero(inv.charge_total),
            _sum(charges),
            "the sum of the document charges (BR-CO-12)",
        )
    if inv.tax_exclusive is not None and inv.sum_of_line_net is not None:
        expect(
            TAX_EXCLUSIVE,
            "BT-109",
            inv.tax_exclusive,
            inv.sum_of_line_net - _or_zero(inv.allowance_total) + _or_zero(inv.charge_total),
            "the sum of lines - allowances + charges (BR-CO-13)",
        )
    if inv.vat_breakdown:
        expect(
            VAT_BREAKDOWN,
            "BT-110",
            _or_zero(inv.tax_total),
            _sum(b.tax for b in inv.vat_breakdown),
            "the sum of the VAT breakdown (BR-CO-14)",
        )
    if inv.tax_inclusive is not None and inv.tax_exclusive is not None:
        expect(
            TAX_INCLUSIVE,
            "BT-112",
            inv.tax_inclusive,
            inv.tax_exclusive + _or_zero(inv.tax_total),
            "the net total + VAT (BR-CO-15)",
        )
    # Factur-X MINIMUM has no element for prepaid amounts (BT-113), so its amount due may be
    # less than its total with nothing to say why: the rule cannot be checked there.
    minimum = (inv.customization_id or "").lower().endswith(":minimum")
    if inv.payable is not None and inv.tax_inclusive is not None and not minimum:
        expect(
            AMOUNT_DUE,
            "BT-115",
            inv.payable,
            inv.tax_inclusive
            - _or_zero(inv.prepaid)
            + _or_zero(inv.rounding)
            + _or_zero(inv.third_party),
            "the gross total - prepaid + rounding (BR-CO-16)"
            + (" + third-party payments (BR-DEX-09)" if inv.third_party is not None else ""),
        )
    return problems
