"""Money is Decimal end to end: ISO 4217, minor units, rounding, a float-refusing type, and
the reading of amounts as people and OCR write them ("1.234,56 €", "(12.00)", "£1,234").

A float never appears: JSON numbers arrive as their exact text (``domain.dext``), strings are
read digit by digit, and anything that is not plainly an amount is refused with the reason.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from domain.locales import DecimalSeparator
from domain.text import shown

# ISO 4217 active codes whose minor unit is not 2. Everything else in ISO_4217 has 2.
_MINOR_UNITS_NOT_2: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}

ISO_4217: frozenset[str] = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "USN",
        "UYI",
        "UYU",
        "UYW",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)


def minor_units(currency: str) -> int:
    return _MINOR_UNITS_NOT_2.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
    """One minor unit: 0.01 USD, 1 JPY, 0.001 BHD."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit (JPY 0, USD 2, BHD 3 decimals)."""
    if not amount.is_finite():
        raise ValueError(f"cannot round a non-finite amount: {amount}")
    # The default 28-digit context would raise on a long amount; money is never that long
    # after parse_amount, but rounding must not be the place that finds out.
    with localcontext() as ctx:
        ctx.prec = max(28, amount.adjusted() + 8)
        return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------------------------------------
# Reading amounts

# Over ten trillion is not an invoice amount; it is OCR noise or an id in the wrong field.
MAX_AMOUNT = Decimal(10) ** 13
_MAX_FRACTION_DIGITS = 12


class AmountError(ValueError):
    """An amount that cannot be read; ``code`` is a stable problem code (domain.problems)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Currency markers found around amounts. A marker naming one set of currencies lets us spot
# "€12.00" on a GBP invoice; "$" names too many currencies to tell anything.
_DOLLAR: frozenset[str] = frozenset()
_MARKERS: dict[str, frozenset[str]] = {
    "$": _DOLLAR,
    "£": frozenset({"GBP", "GIP", "FKP", "SHP", "EGP", "SYP", "SSP"}),
    "€": frozenset({"EUR"}),
    "¥": frozenset({"JPY", "CNY"}),
    "￥": frozenset({"JPY", "CNY"}),
    "円": frozenset({"JPY"}),
    "元": frozenset({"CNY"}),
    "₹": frozenset({"INR"}),
    "rs": frozenset({"INR", "PKR", "LKR", "NPR", "MUR", "SCR"}),
    "₩": frozenset({"KRW"}),
    "₽": frozenset({"RUB"}),
    "₺": frozenset({"TRY"}),
    "₪": frozenset({"ILS"}),
    "₱": frozenset({"PHP"}),
    "₫": frozenset({"VND"}),
    "₦": frozenset({"NGN"}),
    "₴": frozenset({"UAH"}),
    "₸": frozenset({"KZT"}),
    "us$": frozenset({"USD"}),
    "a$": frozenset({"AUD"}),
    "au$": frozenset({"AUD"}),
    "c$": frozenset({"CAD"}),
    "ca$": frozenset({"CAD"}),
    "nz$": frozenset({"NZD"}),
    "s$": frozenset({"SGD"}),
    "hk$": frozenset({"HKD"}),
    "mx$": frozenset({"MXN"}),
    "r$": frozenset({"BRL"}),
    "zł": frozenset({"PLN"}),
    "kč": frozenset({"CZK"}),
    "kr": frozenset({"SEK", "NOK", "DKK", "ISK"}),
    "kr.": frozenset({"SEK", "NOK", "DKK", "ISK"}),
    "fr.": frozenset({"CHF"}),
    "ft": frozenset({"HUF"}),
    "lei": frozenset({"RON"}),
    "r": frozenset({"ZAR"}),
}
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009\u2007]+")
_NUMBER = re.compile(r"[0-9][0-9.,' ]*[0-9]|[0-9]|[.,][0-9]+")
_SCIENTIFIC = re.compile(r"[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]{1,3}")
_NOT_FINITE = re.compile(r"[+-]?(nan|snan|inf|infinity)", re.IGNORECASE)


def _marker_currencies(marker: str) -> frozenset[str] | None:
    """Currencies a marker names (empty: any), or None when it is not a currency marker."""
    key = marker.casefold()
    if key in _MARKERS:
        return _MARKERS[key]
    if len(marker) == 3 and marker.isalpha() and marker.upper() in ISO_4217:
        return frozenset({marker.upper()})
    return None


def _grouped(int_part: str, group: str, indian: bool) -> str | None:
    """The digits of a grouped integer ("1,234,567"), or None if the grouping is not valid."""
    groups = int_part.split(group)
    if len(groups) < 2 or not all(g.isascii() and g.isdigit() for g in groups):
        return None
    head, rest = groups[0], groups[1:]
    if head.startswith("0"):
        return None
    western = 1 <= len(head) <= 3 and all(len(g) == 3 for g in rest)
    # Indian lakh/crore grouping: 1,23,45,678.
    lakh = (
        indian
        and 1 <= len(head) <= 2
        and len(rest[-1]) == 3
        and all(len(g) == 2 for g in rest[:-1])
    )
    return "".join(groups) if western or lakh else None


def _read_in(number: str, decimal: DecimalSeparator, indian: bool) -> Decimal | None:
    """``number`` read with ``decimal`` as the decimal separator, or None if it is not valid."""
    if number.count(decimal) > 1:
        return None
    int_part, has_point, fraction = number.partition(decimal)
    if has_point and not (fraction.isascii() and fraction.isdigit()):
        return None
    if int_part == "":
        digits: str | None = "0" if has_point else None
    elif int_part.isascii() and int_part.isdigit():
        digits = int_part
    else:
        seps = {c for c in int_part if not c.isdigit()}
        if len(seps) != 1 or seps & {decimal}:
            return None
        digits = _grouped(int_part, seps.pop(), indian)
    if digits is None:
        return None
    return Decimal(f"{digits}.{fraction}" if fraction else digits)


def _read_number(number: str, decimal: DecimalSeparator | None, indian: bool) -> Decimal:
    as_point = _read_in(number, ".", indian)
    as_comma = _read_in(number, ",", indian)
    if decimal == ".":
        if as_point is None:
            hint = " (it looks written with a decimal comma)" if as_comma is not None else ""
            raise AmountError(
                "invalid_amount", f"{shown(number)} is not an amount written like 1,234.56{hint}"
            )
        return as_point
    if decimal == ",":
        # JSON numbers reach us as their text ("1234.56"), so a point must still be read as
        # a decimal point whenever it cannot be a thousands separator.
        if as_comma is not None and as_point is not None and as_comma != as_point:
            raise AmountError(
                "ambiguous_amount",
                f"{shown(number)} could be {as_point} or {as_comma}; write it without a "
                f"thousands separator (e.g. {as_comma} or {str(as_point).replace('.', ',')})",
            )
        found = as_comma if as_comma is not None else as_point
        if found is None:
            raise AmountError("invalid_amount", f"{shown(number)} is not an amount like 1.234,56")
        return found
    if as_point is not None and as_comma is not None and as_point != as_comma:
        raise AmountError(
            "ambiguous_amount",
            f"{shown(number)} could be {as_point} or {as_comma} and the tenant has no locale; "
            "set the tenant's locale or write the amount without a thousands separator",
        )
    found = as_point if as_point is not None else as_comma
    if found is None:
        raise AmountError("invalid_amount", f"{shown(number)} is not an amount")
    return found


def parse_amount(
    value: object,
    *,
    decimal: DecimalSeparator | None = ".",
    indian_grouping: bool = False,
    currency: str | None = None,
    allow_currency: bool = True,
) -> Decimal:
    """Read an amount exactly, or raise ``AmountError`` saying why.

    Accepts Decimal, int and text: "1234.56", "1,234.56" / "1.234,56" / "1 234,56" by
    ``decimal`` (None: the tenant has no locale, so only unambiguous text is read), currency
    symbols or codes on either side, and negatives as "-12", "(12.00)", "12.00-" or "12.00 CR".
    A marker that contradicts ``currency`` ("€" on a GBP item) is refused, never ignored.
    """
    if isinstance(value, bool):
        raise AmountError("invalid_amount", f"{value!r} is a yes/no value, not an amount")
    if isinstance(value, float):
        raise AmountError(
            "invalid_amount",
            f"{value!r} arrived as a binary float, which cannot hold an exact amount; "
            "send amounts as decimal strings",
        )
    if isinstance(value, int):
        return _bounded(Decimal(value), str(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise AmountError("invalid_amount", f"{value} is not a finite amount")
        return _bounded(value, str(value))
    if not isinstance(value, str):
        raise AmountError("invalid_amount", f"a {type(value).__name__} is not an amount")
    original = value
    text = _SPACES.sub(" ", value).strip().replace("\u2212", "-").replace("\u2019", "'")
    if not text:
        raise AmountError("missing", "the amount is empty")
    if _NOT_FINITE.fullmatch(text):
        raise AmountError("invalid_amount", f"{shown(original)} is not a finite amount")
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1].strip()
    if _SCIENTIFIC.fullmatch(text.lstrip("+-")):
        amount = Decimal(text)
        return _bounded(-amount if negative else amount, original)
    matches = list(_NUMBER.finditer(text))
    if len(matches) != 1:
        raise AmountError("invalid_amount", f"{shown(original)} is not an amount")
    found = matches[0]
    signs = 1 if negative else 0  # brackets are a sign: "(-12)" says minus twice
    markers: list[str] = []
    for side, part in (("before", text[: found.start()]), ("after", text[found.end() :])):
        for token in part.replace("-", " - ").replace("+", " + ").split():
            # "12.00-" (SAP exports) and "12.00 CR" are credits as surely as "-12.00".
            if token == "-" or (side == "after" and token.casefold() == "cr"):
                signs, negative = signs + 1, not negative
            elif token == "+" and side == "before":
                signs += 1
            elif _marker_currencies(token) is not None:
                markers.append(token)
            else:
                raise AmountError("invalid_amount", f"{shown(original)} is not an amount")
    if signs > 1:
        raise AmountError("invalid_amount", f"{shown(original)} has more than one sign")
    if markers and not allow_currency:
        raise AmountError(
            "invalid_amount", f"{shown(original)} is a number, not an amount of money"
        )
    if currency:
        for marker in markers:
            named = _marker_currencies(marker) or frozenset()
            if named and currency.upper() not in named:
                raise AmountError(
                    "currency_conflict",
                    f"{shown(original)} is marked {marker}, but the item's currency is "
                    f"{currency.upper()}",
                )
    amount = _read_number(found.group().strip(), decimal, indian_grouping)
    return _bounded(-amount if negative else amount, original)


def _bounded(amount: Decimal, original: str) -> Decimal:
    if abs(amount) >= MAX_AMOUNT:
        raise AmountError(
            "invalid_amount", f"{shown(original)} is too large to be an invoice amount"
        )
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_FRACTION_DIGITS:
        raise AmountError("invalid_amount", f"{shown(original)} has too many decimal places")
    return amount


def format_amount(
    amount: Decimal, decimal: DecimalSeparator = ".", *, group: str | None = None
) -> str:
    """``amount`` as text with ``decimal`` and an optional thousands ``group`` separator."""
    text = format(abs(amount), "f")
    int_part, _, fraction = text.partition(".")
    if group is not None:
        head = len(int_part) % 3 or 3
        chunks = [int_part[:head]] + [int_part[i : i + 3] for i in range(head, len(int_part), 3)]
        int_part = group.join(chunks)
    body = f"{int_part}{decimal}{fraction}" if fraction else int_part
    return f"-{body}" if amount < 0 else body


def _refuse_float(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("money must be a Decimal or a decimal string, not a yes/no value")
    if isinstance(value, float):
        raise ValueError("money must be a Decimal or a decimal string, never a float")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("money must be a finite number")
    if isinstance(value, str):
        try:
            parsed = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"money must be a decimal string, got {value!r}") from None
        if not parsed.is_finite():
            raise ValueError("money must be a finite number")
        return parsed
    return value


# Decimal in memory, a string on the wire: never a float anywhere.
Money = Annotated[
    Decimal,
    BeforeValidator(_refuse_float),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]
