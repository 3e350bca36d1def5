"""How a tenant's documents write dates and amounts, from its locale (``en-GB``, ``de-DE``...).

A small explicit table rather than CLDR: billstream only needs two facts per locale (the order
of day and month, and the decimal separator), and a wrong guess here posts 1,234.56 as
1.23456 or books a March invoice in April. A locale not in the table is refused by the
tenants file unless ``date_order`` and ``decimal_separator`` are set explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

DecimalSeparator = Literal[".", ","]


class DateOrder(StrEnum):
    DMY = "DMY"  # 03/04/2026 is 3 April
    MDY = "MDY"  # 03/04/2026 is 4 March
    YMD = "YMD"  # 2026/04/03


@dataclass(frozen=True)
class Conventions:
    date_order: DateOrder | None
    decimal: DecimalSeparator | None
    indian_grouping: bool = False  # 1,23,456.78

    @property
    def label(self) -> str:
        example = {".": "1,234.56", ",": "1.234,56", None: "1234.56"}[self.decimal]
        order = {
            DateOrder.DMY: "DD/MM/YYYY",
            DateOrder.MDY: "MM/DD/YYYY",
            DateOrder.YMD: "YYYY/MM/DD",
            None: "YYYY-MM-DD",
        }[self.date_order]
        return f"dates {order}, amounts {example}"


# No locale at all: only unambiguous forms are read (ISO dates, "1,234.56", "1234,5").
UNKNOWN = Conventions(date_order=None, decimal=None)

_D, _M, _Y = DateOrder.DMY, DateOrder.MDY, DateOrder.YMD

# Exact tags first, then the language alone. Regions that genuinely mix orders (en-CA) are
# absent on purpose: such a tenant must say which order its suppliers use.
_TABLE: dict[str, tuple[DateOrder, DecimalSeparator]] = {
    "en-gb": (_D, "."),
    "en-ie": (_D, "."),
    "en-au": (_D, "."),
    "en-nz": (_D, "."),
    "en-in": (_D, "."),
    "en-sg": (_D, "."),
    "en-hk": (_D, "."),
    "en-za": (_Y, ","),
    "en-us": (_M, "."),
    "en-ph": (_M, "."),
    "es-us": (_M, "."),
    "fr-ca": (_Y, ","),
    "de-de": (_D, ","),
    "de-at": (_D, ","),
    "de-ch": (_D, "."),
    "fr-fr": (_D, ","),
    "fr-be": (_D, ","),
    "fr-ch": (_D, "."),
    "it-it": (_D, ","),
    "it-ch": (_D, "."),
    "nl-nl": (_D, ","),
    "nl-be": (_D, ","),
    "es-es": (_D, ","),
    "es-mx": (_D, "."),
    "pt-pt": (_D, ","),
    "pt-br": (_D, ","),
    "pl-pl": (_D, ","),
    "cs-cz": (_D, ","),
    "sk-sk": (_D, ","),
    "hu-hu": (_Y, ","),
    "ro-ro": (_D, ","),
    "sv-se": (_Y, ","),
    "da-dk": (_D, ","),
    "nb-no": (_D, ","),
    "fi-fi": (_D, ","),
    "lt-lt": (_Y, ","),
    "ja-jp": (_Y, "."),
    "zh-cn": (_Y, "."),
    "ko-kr": (_Y, "."),
    "he-il": (_D, "."),
    "ar-ae": (_D, "."),
    "tr-tr": (_D, ","),
}
_LANGUAGE_DEFAULT: dict[str, tuple[DateOrder, DecimalSeparator]] = {
    "de": (_D, ","),
    "fr": (_D, ","),
    "it": (_D, ","),
    "nl": (_D, ","),
    "es": (_D, ","),
    "pt": (_D, ","),
    "pl": (_D, ","),
    "cs": (_D, ","),
    "da": (_D, ","),
    "nb": (_D, ","),
    "fi": (_D, ","),
    "sv": (_Y, ","),
    "ja": (_Y, "."),
    "zh": (_Y, "."),
}
_INDIAN = frozenset({"en-in", "hi-in"})
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


def canonical(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def known_locales() -> list[str]:
    return sorted(f"{t[:2]}-{t[3:].upper()}" for t in _TABLE)


def conventions(
    locale: str | None,
    *,
    date_order: DateOrder | None = None,
    decimal: DecimalSeparator | None = None,
) -> Conventions | None:
    """The conventions of ``locale``, explicit settings winning; None if they cannot be known."""
    if locale is None:
        return Conventions(date_order=date_order, decimal=decimal)
    tag = canonical(locale)
    if not _TAG.match(tag):
        return None
    parts = tag.split("-")
    found = _TABLE.get(f"{parts[0]}-{parts[-1]}") if len(parts) > 1 else None
    found = found or _TABLE.get(tag) or _LANGUAGE_DEFAULT.get(parts[0])
    if found is None and (date_order is None or decimal is None):
        return None
    order, sep = found if found else (date_order, decimal)
    return Conventions(
        date_order=date_order or order,
        decimal=decimal or sep,
        indian_grouping=f"{parts[0]}-{parts[-1]}" in _INDIAN,
    )
