"""Money: exact reading by locale, refusing what is not an amount, rounding to minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from domain.money import (
    ISO_4217,
    AmountError,
    Money,
    format_amount,
    minor_units,
    parse_amount,
    quantum,
    round_money,
)

D = Decimal


@pytest.mark.parametrize(
    ("text", "decimal", "expected"),
    [
        ("1234.56", ".", "1234.56"),
        ("1,234.56", ".", "1234.56"),
        ("1.234,56", ",", "1234.56"),
        ("1 234,56", ",", "1234.56"),
        ("1\u00a0234,56", ",", "1234.56"),  # no-break space, as French software writes it
        ("1\u202f234,56", ",", "1234.56"),  # narrow no-break space
        ("1'234.56", ".", "1234.56"),  # Swiss
        ("1,234,567.89", ".", "1234567.89"),
        ("1.234.567", ",", "1234567"),
        ("1234.56", ",", "1234.56"),  # a JSON number's text is read in every locale
        ("0.500", ",", "0.500"),  # cannot be a thousands separator after a zero
        ("£1,234.56", ".", "1234.56"),
        ("1.234,56 €", ",", "1234.56"),
        ("USD 1,234.56", ".", "1234.56"),
        ("US$12.00", ".", "12.00"),
        ("(12.00)", ".", "-12.00"),
        ("(£12.00)", ".", "-12.00"),
        ("-£12.00", ".", "-12.00"),
        ("£-12.00", ".", "-12.00"),
        ("\u221212.00", ".", "-12.00"),  # the Unicode minus sign
        ("12.00-", ".", "-12.00"),  # SAP-style trailing minus
        ("12.00 CR", ".", "-12.00"),
        ("+12.00", ".", "12.00"),
        (".5", ".", "0.5"),
        ("  42  ", ".", "42"),
        ("1E+3", ".", "1000"),
        ("1,234.56", None, "1234.56"),  # both separators: unambiguous without a locale
        ("1.234,56", None, "1234.56"),
        ("12,5", None, "12.5"),
    ],
)
def test_reads_amounts_as_written(text: str, decimal: str | None, expected: str) -> None:
    assert parse_amount(text, decimal=decimal) == D(expected)  # type: ignore[arg-type]


def test_indian_grouping_only_where_it_is_the_custom() -> None:
    assert parse_amount("1,23,456.78", decimal=".", indian_grouping=True) == D("123456.78")
    with pytest.raises(AmountError):
        parse_amount("1,23,456.78", decimal=".")


@pytest.mark.parametrize(
    ("value", "decimal", "code"),
    [
        ("NaN", ".", "invalid_amount"),
        ("nan", ".", "invalid_amount"),
        ("Infinity", ".", "invalid_amount"),
        ("-inf", ".", "invalid_amount"),
        (D("NaN"), ".", "invalid_amount"),
        (D("Infinity"), ".", "invalid_amount"),
        ("", ".", "missing"),
        ("   ", ".", "missing"),
        ("N/A", ".", "invalid_amount"),
        ("twelve", ".", "invalid_amount"),
        ("12.34.56", ".", "invalid_amount"),
        ("1-2", ".", "invalid_amount"),
        ("--12", ".", "invalid_amount"),
        ("(-12)", ".", "invalid_amount"),
        ("12.", ".", "invalid_amount"),
        ("Total: 12.00", ".", "invalid_amount"),
        ("12,34", ".", "invalid_amount"),  # a decimal comma in a 1,234.56 locale
        ("1.234,56", ".", "invalid_amount"),
        ("1,2345", ".", "invalid_amount"),  # not a valid grouping
        ("1.234", ",", "ambiguous_amount"),  # 1.234 or 1234?
        ("1.234", None, "ambiguous_amount"),
        ("1,234", None, "ambiguous_amount"),
        ("\u0661\u0662", ".", "invalid_amount"),  # Arabic-Indic digits: not read silently
        ("1" * 20, ".", "invalid_amount"),  # too large to be an invoice amount
        ("1e400", ".", "invalid_amount"),
        ("0." + "1" * 20, ".", "invalid_amount"),
        (12.5, ".", "invalid_amount"),  # a float is refused, even a representable one
        (True, ".", "invalid_amount"),
        ([1], ".", "invalid_amount"),
    ],
)
def test_refuses_what_is_not_plainly_an_amount(
    value: object, decimal: str | None, code: str
) -> None:
    with pytest.raises(AmountError) as info:
        parse_amount(value, decimal=decimal)  # type: ignore[arg-type]
    assert info.value.code == code
    assert info.value.message


@pytest.mark.parametrize(
    ("text", "currency", "ok"),
    [
        ("€12.00", "GBP", False),
        ("£12.00", "GBP", True),
        ("USD 12.00", "USD", True),
        ("EUR 12.00", "USD", False),
        ("$12.00", "CAD", True),  # "$" names too many currencies to conflict with any
        ("¥1200", "JPY", True),
        ("¥1200", "EUR", False),
    ],
)
def test_a_currency_marker_must_agree_with_the_item(text: str, currency: str, ok: bool) -> None:
    if ok:
        assert parse_amount(text, currency=currency) > 0
    else:
        with pytest.raises(AmountError) as info:
            parse_amount(text, currency=currency)
        assert info.value.code == "currency_conflict"


def test_quantities_refuse_currency_markers() -> None:
    with pytest.raises(AmountError):
        parse_amount("£3", allow_currency=False)
    assert parse_amount("3", allow_currency=False) == 3


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1234.5", "JPY", "1235"),
        ("1234.4", "JPY", "1234"),
        ("10.005", "USD", "10.01"),  # half-up, as accountants round, not banker's rounding
        ("10.0049", "USD", "10.00"),
        ("-10.005", "GBP", "-10.01"),
        ("1.2345", "BHD", "1.235"),
        ("1.00005", "CLF", "1.0001"),
        ("7", "KWD", "7.000"),
    ],
)
def test_rounds_to_the_currency_minor_unit(amount: str, currency: str, expected: str) -> None:
    rounded = round_money(D(amount), currency)
    assert rounded == D(expected)
    assert str(rounded) == expected  # exponent is the minor unit: "7.000", not "7"


def test_minor_units_of_iso_4217() -> None:
    assert (minor_units("JPY"), minor_units("USD"), minor_units("BHD")) == (0, 2, 3)
    assert quantum("jpy") == 1
    assert {"GBP", "EUR", "USD", "JPY", "BHD", "CHF"} <= ISO_4217
    assert "XYZ" not in ISO_4217


def test_round_money_refuses_non_finite() -> None:
    with pytest.raises(ValueError):
        round_money(D("NaN"), "USD")


class _Priced(BaseModel):
    amount: Money


def test_money_type_refuses_floats_and_travels_as_a_string() -> None:
    with pytest.raises(ValidationError):
        _Priced(amount=1.1)
    with pytest.raises(ValidationError):
        _Priced(amount="not money")
    with pytest.raises(ValidationError):
        _Priced(amount="NaN")
    priced = _Priced(amount="12.30")
    assert priced.amount == D("12.30")
    assert priced.model_dump_json() == '{"amount":"12.30"}'


# --- properties --------------------------------------------------------------------------------

amounts = st.decimals(
    min_value=D("-9999999999.99"), max_value=D("9999999999.99"), places=2, allow_nan=False
)
currencies = st.sampled_from(sorted(ISO_4217))


@given(amount=amounts, decimal=st.sampled_from([".", ","]), spaced=st.booleans())
@example(amount=D("1234.56"), decimal=",", spaced=False)
def test_formatted_amounts_read_back_exactly(amount: Decimal, decimal: str, spaced: bool) -> None:
    group = " " if spaced else ("," if decimal == "." else ".")
    text = format_amount(amount, decimal, group=group)  # type: ignore[arg-type]
    parsed = parse_amount(text, decimal=decimal)  # type: ignore[arg-type]
    assert parsed == amount
    assert isinstance(parsed, Decimal)


@given(amount=amounts.filter(lambda a: a != 0))
def test_symbols_and_brackets_read_back(amount: Decimal) -> None:
    body = format_amount(abs(amount), ".", group=",")
    text = f"(£{body})" if amount < 0 else f"£{body}"
    assert parse_amount(text, decimal=".", currency="GBP") == amount


@given(amount=st.decimals(min_value=0, max_value=D("99999.999"), places=3))
def test_plain_text_is_never_misread(amount: Decimal) -> None:
    """A machine-written amount ("1.234") is read exactly or refused as ambiguous, in any
    locale; it is never silently read as a different number."""
    for decimal in (".", ",", None):
        try:
            assert parse_amount(str(amount), decimal=decimal) == amount
        except AmountError as exc:
            assert exc.code == "ambiguous_amount" and decimal != "."


@given(text=st.text(max_size=30))
def test_any_text_gives_a_decimal_or_an_amount_error(text: str) -> None:
    for decimal in (".", ",", None):
        try:
            value = parse_amount(text, decimal=decimal, currency="GBP")
        except AmountError as exc:
            assert exc.code in {
                "invalid_amount",
                "ambiguous_amount",
                "missing",
                "currency_conflict",
            }
        else:
            assert isinstance(value, Decimal) and value.is_finite()


@given(
    amount=st.decimals(
        min_value=D("-999999999"), max_value=D("999999999"), places=6, allow_nan=False
    ),
    currency=currencies,
)
def test_rounding_properties(amount: Decimal, currency: str) -> None:
    rounded = round_money(amount, currency)
    assert isinstance(rounded, Decimal)
    assert rounded.as_tuple().exponent == -minor_units(currency)
    assert abs(rounded - amount) <= quantum(currency) / 2
    assert round_money(rounded, currency) == rounded


@given(amount=amounts, currency=currencies)
def test_money_survives_json_as_an_exact_string(amount: Decimal, currency: str) -> None:
    priced = _Priced(amount=round_money(amount, currency))
    dumped = priced.model_dump(mode="json")
    assert isinstance(dumped["amount"], str)
    assert _Priced.model_validate_json(priced.model_dump_json()) == priced
