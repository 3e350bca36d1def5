"""Which duplicate rules a tenant holds items for, and their thresholds.

In the tenants file (every key optional)::

    [tenants.acme-uk.duplicates]
    rules = ["same_number", "number_variant", "same_document", "same_total_near_date"]
    window_days = 7          # same supplier and total: dates at most this many days apart
    amount_tolerance = "0"   # totals this close are "the same total"
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class Rule(StrEnum):
    """What made an item look like one seen before, strongest first."""

    SAME_NUMBER = "same_number"  # the same invoice number, as written, from the same supplier
    NUMBER_VARIANT = "number_variant"  # the same number once normalised ("INV-0042" and "42")
    SAME_DOCUMENT = "same_document"  # the same file (SHA-256), under any supplier or number
    SAME_TOTAL_NEAR_DATE = "same_total_near_date"  # same supplier and total, dates close


ALL_RULES: frozenset[Rule] = frozenset(Rule)
_KEYS = ("rules", "window_days", "amount_tolerance")
MAX_WINDOW_DAYS = 366


def _rules_of(value: Any) -> frozenset[Rule]:
    if not isinstance(value, list | tuple | frozenset | set):
        raise ValueError("rules must be a list of rule names")
    out: set[Rule] = set()
    for name in value:
        try:
            out.add(Rule(str(name).strip()))
        except ValueError:
            close = difflib.get_close_matches(str(name), [r.value for r in Rule], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown duplicate rule {name!r}{hint} (rules: {', '.join(r.value for r in Rule)})"
            ) from None
    return frozenset(out)


def _window_of(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("window_days must be a whole number of days")
    try:
        days = int(value)
    except ValueError:
        raise ValueError(f"window_days {value!r} is not a whole number") from None
    if not 0 <= days <= MAX_WINDOW_DAYS:
        raise ValueError(f"window_days must be 0 to {MAX_WINDOW_DAYS} (got {days})")
    return days


def _tolerance_of(value: Any) -> Decimal:
    # TOML floats arrive as Decimal (the tenants file is parsed with parse_float=Decimal).
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError('amount_tolerance must be a number such as "0.05"')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"amount_tolerance {value!r} is not a number") from None
    if not amount.is_finite() or not Decimal(0) <= amount <= Decimal(100):
        raise ValueError(f"amount_tolerance must be 0 to 100 (got {value})")
    return amount


@dataclass(frozen=True)
class DuplicateRules:
    """A tenant's duplicate check: the rules that hold an item, and their thresholds."""

    rules: frozenset[Rule] = field(default=ALL_RULES)
    window_days: int = 7
    amount_tolerance: Decimal = Decimal(0)

    def holds(self, rule: Rule) -> bool:
        return rule in self.rules

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DuplicateRules:
        """From a tenants-file table; a ValueError names the first key that is wrong."""
        unknown = [k for k in data if k not in _KEYS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], _KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown key {unknown[0]!r} in duplicates{hint} (allowed: {', '.join(_KEYS)})"
            )
        return cls(
            rules=_rules_of(data["rules"]) if "rules" in data else ALL_RULES,
            window_days=_window_of(data["window_days"]) if "window_days" in data else 7,
            amount_tolerance=(
                _tolerance_of(data["amount_tolerance"])
                if "amount_tolerance" in data
                else Decimal(0)
            ),
        )

    def to_mapping(self) -> dict[str, Any]:
        """The tenants-file table of these settings (``from_mapping`` reads it back)."""
        return {
            "rules": sorted(r.value for r in self.rules),
            "window_days": self.window_days,
            "amount_tolerance": str(self.amount_tolerance),
        }
