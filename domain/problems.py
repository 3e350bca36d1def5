"""The stable problem codes of validation, and the collector that gathers every one of them.

Codes are part of the contract: the pipeline, the CLI's JSON and people's filters rely on
them, so a code is never renamed, only added. ``CONFIG_CODES`` are the ones a tenants-file
change fixes; every other code means the item itself must be corrected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from domain.errors import Problem, Reason

# Reading the item.
MISSING: Final = "missing"  # a required field is absent or empty
INVALID: Final = "invalid"  # wrong shape: not an object, not a list, not text
INVALID_AMOUNT: Final = "invalid_amount"  # garbage, NaN, infinity, a float, absurdly large
AMBIGUOUS_AMOUNT: Final = "ambiguous_amount"  # "1.234" with no way to tell 1.234 from 1234
INVALID_QUANTITY: Final = "invalid_quantity"  # zero or not a number
INVALID_TAX_RATE: Final = "invalid_tax_rate"  # negative, over 100 or unreadable
INVALID_DATE: Final = "invalid_date"  # unreadable or impossible (31 April)
AMBIGUOUS_DATE: Final = "ambiguous_date"  # 03/04/2026 and the tenant has no locale
INVALID_CURRENCY: Final = "invalid_currency"  # not an ISO 4217 code
CURRENCY_CONFLICT: Final = "currency_conflict"  # "€12.00" on a GBP item
UNSUPPORTED_TYPE: Final = "unsupported_type"  # a statement or delivery note is not a bill
BASE_CURRENCY_MISMATCH: Final = "base_currency_mismatch"  # item from another company's books

# Arithmetic.
LINE_ARITHMETIC: Final = "line_arithmetic"  # line net + tax != line total
LINE_QUANTITY_PRICE: Final = "line_quantity_price"  # quantity x unit price != line net
TAX_RATE_MISMATCH: Final = "tax_rate_mismatch"  # tax amount is not net x rate
LINES_TOTAL: Final = "lines_total"  # line totals do not add up to the invoice total
LINES_TAX: Final = "lines_tax"  # line taxes do not add up to the invoice tax
HEADER_ARITHMETIC: Final = "header_arithmetic"  # invoice net + tax != total
ZERO_TOTAL: Final = "zero_total"  # nothing to post (also a total that rounds to zero)
TAX_EXCEEDS_TOTAL: Final = "tax_exceeds_total"  # 150 tax on a total of 100
NEGATIVE_TAX: Final = "negative_tax"  # tax below zero on an ordinary invoice

# Dates.
FUTURE_DATE: Final = "future_date"
TOO_OLD: Final = "too_old"
DUE_BEFORE_DATE: Final = "due_before_date"
DUE_TOO_FAR: Final = "due_too_far"  # terms over a year: a misread year ("31/12/99")

# Tenant configuration (the item is fine; the tenants file needs a change).
CURRENCY_MISMATCH: Final = "currency_mismatch"
MAPPING_MISSING: Final = "mapping_missing"

# Safety net: validation itself failed on this input. Tests prove it never happens.
INTERNAL: Final = "internal_error"

CONFIG_CODES: Final = frozenset({CURRENCY_MISMATCH, MAPPING_MISSING})

ALL_CODES: Final = frozenset(
    {
        MISSING,
        INVALID,
        INVALID_AMOUNT,
        AMBIGUOUS_AMOUNT,
        INVALID_QUANTITY,
        INVALID_TAX_RATE,
        INVALID_DATE,
        AMBIGUOUS_DATE,
        INVALID_CURRENCY,
        CURRENCY_CONFLICT,
        UNSUPPORTED_TYPE,
        BASE_CURRENCY_MISMATCH,
        LINE_ARITHMETIC,
        LINE_QUANTITY_PRICE,
        TAX_RATE_MISMATCH,
        LINES_TOTAL,
        LINES_TAX,
        HEADER_ARITHMETIC,
        ZERO_TOTAL,
        TAX_EXCEEDS_TOTAL,
        NEGATIVE_TAX,
        FUTURE_DATE,
        TOO_OLD,
        DUE_BEFORE_DATE,
        DUE_TOO_FAR,
        CURRENCY_MISMATCH,
        MAPPING_MISSING,
        INTERNAL,
    }
)


class Problems:
    """Collects problems in the order they are found; one item gets all of them at once."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, code: str, field: str, message: str) -> None:
        self.items.append(Problem(code=code, field=field, message=message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def has(self, field: str) -> bool:
        """Whether some problem is already reported on ``field`` (or inside it)."""
        return any(p.field == field or p.field.startswith((f"{field}.", f"{field}[")) for p in self)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.items)


def reason_of(problems: list[Problem]) -> Reason | None:
    """Item problems outrank configuration ones: fixing the config would not make it postable."""
    if not problems:
        return None
    codes = {p.code for p in problems}
    if codes - CONFIG_CODES:
        return Reason.VALIDATION
    if CURRENCY_MISMATCH in codes:
        return Reason.CURRENCY_MISMATCH
    return Reason.MAPPING_MISSING
