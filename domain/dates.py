"""Reading invoice dates as suppliers and OCR write them, and working out the due date.

A document date is a calendar date, never an instant: "2026-10-01T23:30:00-05:00" is
1 October whatever the time zone, because that is what the paper says. Numeric dates are read
by the tenant's order (day-first or month-first); with no known order, "03/04/2026" is a
problem rather than a coin toss. Output is always a ``datetime.date`` (ISO 8601 on the wire).
"""

from __future__ import annotations

import datetime as dt
import re

from domain.locales import DateOrder
from domain.text import shown

# Years outside this range are typos or OCR noise ("0226", "20026"), not old invoices.
MIN_YEAR, MAX_YEAR = 1900, 2199

_MONTH_NAMES_BY_NUMBER: list[tuple[str, ...]] = [
    ("january", "jan"),
    ("february", "feb"),
    ("march", "mar"),
    ("april", "apr"),
    ("may",),
    ("june", "jun"),
    ("july", "jul"),
    ("august", "aug"),
    ("september", "sep", "sept"),
    ("october", "oct"),
    ("november", "nov"),
    ("december", "dec"),
]
_MONTHS: dict[str, int] = {
    name: number for number, names in enumerate(_MONTH_NAMES_BY_NUMBER, start=1) for name in names
}

_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
    re.IGNORECASE,
)
_COMPACT = re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})")
_NUMERIC = re.compile(r"(?P<a>\d{1,4})(?P<s>[/.\- ])(?P<b>\d{1,2})(?P=s)(?P<c>\d{1,4})\.?")
_WEEKDAY = r"(?:(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?,?\s+)?"
_DAY_MONTH = re.compile(
    _WEEKDAY + r"(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?[\s\-/.]+(?P<m>[a-z]+)\.?,?[\s\-/.]+"
    r"(?P<y>\d{4}|\d{2})",
    re.IGNORECASE,
)
_MONTH_DAY = re.compile(
    _WEEKDAY + r"(?P<m>[a-z]+)\.?[\s\-/.]+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?[\s\-/.]+"
    r"(?P<y>\d{4})",
    re.IGNORECASE,
)
_ORDER_LABEL = {
    DateOrder.DMY: "day-first (DD/MM/YYYY)",
    DateOrder.MDY: "month-first (MM/DD/YYYY)",
    DateOrder.YMD: "year-first (YYYY/MM/DD)",
}


class DateError(ValueError):
    """A date that cannot be read; ``code`` is a stable problem code (domain.problems)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _make(year: int, month: int, day: int, original: str) -> dt.date:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise DateError(
            "invalid_date", f"{shown(original)} has the year {year}, which is not plausible"
        )
    try:
        return dt.date(year, month, day)
    except ValueError:
        why = f"{_month_name(month)} has no day {day}" if 1 <= month <= 12 else "no such month"
        raise DateError("invalid_date", f"{shown(original)} is not a real date: {why}") from None


def _year(text: str) -> int:
    # Two-digit years are 20xx: invoices from the 1900s are not in anyone's Dext inbox.
    return 2000 + int(text) if len(text) == 2 else int(text)


def parse_date(value: object, order: DateOrder | None) -> dt.date:
    """Read a document date or raise ``DateError``; ``order`` is the tenant's numeric order."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise DateError("invalid_date", f"a {type(value).__name__} is not a date")
    original = value
    text = " ".join(value.split())
    if not text:
        raise DateError("missing", "the date is empty")
    if m := _ISO.fullmatch(text) or _COMPACT.fullmatch(text):
        return _make(int(m["y"]), int(m["m"]), int(m["d"]), original)
    if m := _NUMERIC.fullmatch(text):
        return _numeric(m["a"], m["b"], m["c"], order, original)
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        if (m := pattern.fullmatch(text)) and (month := _MONTHS.get(m["m"].lower())):
            return _make(_year(m["y"]), month, int(m["d"]), original)
    raise DateError(
        "invalid_date",
        f"{shown(original)} is not a date; use YYYY-MM-DD"
        + (f" or the tenant's {_ORDER_LABEL[order]} form" if order else ""),
    )


def _numeric(a: str, b: str, c: str, order: DateOrder | None, original: str) -> dt.date:
    if len(a) == 4:  # 2026/04/03: year-first is never read any other way
        return _make(int(a), int(b), int(c), original)
    if len(c) not in (2, 4) or len(a) > 2:
        raise DateError("invalid_date", f"{shown(original)} is not a date; use YYYY-MM-DD")
    year, first, second = _year(c), int(a), int(b)
    if order is DateOrder.DMY:
        return _ordered(year, second, first, order, original)
    if order is DateOrder.MDY:
        return _ordered(year, first, second, order, original)
    # No order known (or a year-first locale given a day/month/year date): read it only when
    # exactly one reading is a real date.
    readings = {d for d in (_try(year, second, first), _try(year, first, second)) if d}
    if len(readings) == 1:
        return readings.pop()
    if not readings:
        raise DateError("invalid_date", f"{shown(original)} is not a real date either way round")
    raise DateError(
        "ambiguous_date",
        f"{shown(original)} could be {first} {_month_name(second)} or {second} {_month_name(first)}"
        + (
            " and the tenant has no locale saying which; write it as YYYY-MM-DD or set the "
            "tenant's locale"
            if order is None
            else " and the tenant's locale writes dates year-first; write it as YYYY-MM-DD"
        ),
    )


def _ordered(year: int, month: int, day: int, order: DateOrder, original: str) -> dt.date:
    try:
        return _make(year, month, day, original)
    except DateError as exc:
        raise DateError(
            "invalid_date",
            f"{shown(original)} is not a real date read {_ORDER_LABEL[order]}, as the tenant's "
            "locale says; correct it or write it as YYYY-MM-DD",
        ) from exc


def _try(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day) if MIN_YEAR <= year <= MAX_YEAR else None
    except ValueError:
        return None


_MONTH_NAMES = [names[0].capitalize() for names in _MONTH_NAMES_BY_NUMBER]


def _month_name(month: int) -> str:
    # Not strftime: its month names follow the process locale, messages must not.
    return _MONTH_NAMES[month - 1] if 1 <= month <= 12 else f"month {month}"


def resolve_due_date(
    due: dt.date | None,
    issued: dt.date,
    *,
    supplier_terms_days: int | None,
    default_terms_days: int,
) -> tuple[dt.date, str]:
    """The due date and where it came from: the item, else the supplier's terms, else the
    tenant's default terms."""
    if due is not None:
        return due, "item"
    if supplier_terms_days is not None:
        return issued + dt.timedelta(days=supplier_terms_days), "supplier terms"
    return issued + dt.timedelta(days=default_terms_days), "tenant default terms"
