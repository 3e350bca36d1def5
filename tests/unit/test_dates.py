"""Dates: ISO and locale forms read exactly, ambiguity and impossibility refused, due dates."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from domain.dates import MAX_YEAR, MIN_YEAR, DateError, parse_date, resolve_due_date
from domain.locales import DateOrder, conventions

DMY, MDY, YMD = DateOrder.DMY, DateOrder.MDY, DateOrder.YMD
d = dt.date


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("2026-10-01", None, d(2026, 10, 1)),
        ("2026-10-01T00:00:00Z", None, d(2026, 10, 1)),
        # A document date is what the paper says, never shifted by a time zone.
        ("2026-10-01T23:30:00-05:00", None, d(2026, 10, 1)),
        ("2026-10-01 09:15", None, d(2026, 10, 1)),
        ("20261001", None, d(2026, 10, 1)),
        ("2026/10/01", MDY, d(2026, 10, 1)),
        ("03/04/2026", DMY, d(2026, 4, 3)),
        ("03/04/2026", MDY, d(2026, 3, 4)),
        ("3.4.2026", DMY, d(2026, 4, 3)),
        ("03-04-26", DMY, d(2026, 4, 3)),
        ("13/04/2026", None, d(2026, 4, 13)),  # only one reading is a real date
        ("04/13/2026", None, d(2026, 4, 13)),
        ("04/04/2026", None, d(2026, 4, 4)),  # both readings agree
        ("3 Oct 2026", MDY, d(2026, 10, 3)),  # month names are unambiguous in every locale
        ("Oct 3, 2026", DMY, d(2026, 10, 3)),
        ("3rd October 2026", None, d(2026, 10, 3)),
        ("03-Oct-2026", None, d(2026, 10, 3)),
        ("Sept 30 2026", None, d(2026, 9, 30)),
        ("Tuesday, 3 March 2026", None, d(2026, 3, 3)),
        (d(2026, 1, 2), None, d(2026, 1, 2)),
        (dt.datetime(2026, 1, 2, 23, 59), None, d(2026, 1, 2)),
    ],
)
def test_reads_dates(text: object, order: DateOrder | None, expected: dt.date) -> None:
    assert parse_date(text, order) == expected


@pytest.mark.parametrize(
    ("text", "order", "code"),
    [
        ("03/04/2026", None, "ambiguous_date"),
        ("03/04/2026", YMD, "ambiguous_date"),
        ("2026-02-30", None, "invalid_date"),
        ("2027-02-29", None, "invalid_date"),  # not a leap year
        ("31/04/2026", DMY, "invalid_date"),
        ("13/04/2026", MDY, "invalid_date"),  # day-first date in a month-first tenant
        ("2026-13-01", None, "invalid_date"),
        ("32 Oct 2026", None, "invalid_date"),
        ("0226-10-01", None, "invalid_date"),  # implausible year
        ("yesterday", DMY, "invalid_date"),
        ("3 Foo 2026", None, "invalid_date"),
        ("2026-10", None, "invalid_date"),
        ("1/2/3/4", DMY, "invalid_date"),
        ("", DMY, "missing"),
        (20261001, None, "invalid_date"),  # a number is not a date, even if it looks like one
    ],
)
def test_refuses_impossible_and_ambiguous_dates(
    text: object, order: DateOrder | None, code: str
) -> None:
    with pytest.raises(DateError) as info:
        parse_date(text, order)
    assert info.value.code == code
    assert info.value.message


def test_ambiguous_message_names_both_readings() -> None:
    with pytest.raises(DateError, match="3 April or 4 March"):
        parse_date("03/04/2026", None)


def test_locale_gives_the_order() -> None:
    assert conventions("en-GB").date_order is DMY  # type: ignore[union-attr]
    assert conventions("en_US").date_order is MDY  # type: ignore[union-attr]
    assert conventions("de-DE").decimal == ","  # type: ignore[union-attr]
    assert conventions("en") is None  # en alone could be either order
    assert conventions("en", date_order=DMY, decimal=".") is not None
    assert conventions("en-CA", date_order=YMD, decimal=".").date_order is YMD  # type: ignore[union-attr]


def test_due_date_from_item_then_supplier_then_tenant() -> None:
    issued = d(2026, 10, 1)
    assert resolve_due_date(
        d(2026, 10, 20), issued, supplier_terms_days=14, default_terms_days=30
    ) == (d(2026, 10, 20), "item")
    assert resolve_due_date(None, issued, supplier_terms_days=14, default_terms_days=30) == (
        d(2026, 10, 15),
        "supplier terms",
    )
    assert resolve_due_date(None, issued, supplier_terms_days=0, default_terms_days=30) == (
        issued,
        "supplier terms",
    )
    assert resolve_due_date(None, issued, supplier_terms_days=None, default_terms_days=30) == (
        d(2026, 10, 31),
        "tenant default terms",
    )


# --- properties --------------------------------------------------------------------------------

dates = st.dates(min_value=d(MIN_YEAR, 1, 1), max_value=d(MAX_YEAR, 12, 31))
orders = st.sampled_from([DMY, MDY, YMD, None])


@given(day=dates, order=orders)
def test_iso_round_trip(day: dt.date, order: DateOrder | None) -> None:
    parsed = parse_date(day.isoformat(), order)
    assert parsed == day
    assert parsed.isoformat() == day.isoformat()


@given(day=dates, sep=st.sampled_from(["/", ".", "-"]))
def test_locale_forms_round_trip(day: dt.date, sep: str) -> None:
    dmy = f"{day.day:02d}{sep}{day.month:02d}{sep}{day.year}"
    mdy = f"{day.month:02d}{sep}{day.day:02d}{sep}{day.year}"
    assert parse_date(dmy, DMY) == day
    assert parse_date(mdy, MDY) == day


@given(day=dates, order=orders, long=st.booleans())
def test_month_names_round_trip_in_any_locale(
    day: dt.date, order: DateOrder | None, long: bool
) -> None:
    month = day.strftime("%B" if long else "%b")
    assert parse_date(f"{day.day} {month} {day.year}", order) == day
    assert parse_date(f"{month} {day.day}, {day.year}", order) == day


@given(day=dates)
def test_no_locale_means_no_guess(day: dt.date) -> None:
    assume(day.day <= 12 and day.day != day.month)
    with pytest.raises(DateError) as info:
        parse_date(f"{day.day:02d}/{day.month:02d}/{day.year}", None)
    assert info.value.code == "ambiguous_date"


@given(year=st.integers(MIN_YEAR, MAX_YEAR), month=st.integers(1, 12), day=st.integers(1, 31))
def test_impossible_dates_are_refused_never_shifted(year: int, month: int, day: int) -> None:
    try:
        real = d(year, month, day)
    except ValueError:
        real = None
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if real is None:
        with pytest.raises(DateError):
            parse_date(text, None)
    else:
        assert parse_date(text, None) == real


@given(text=st.text(max_size=40), order=orders)
def test_any_text_gives_a_date_or_a_date_error(text: str, order: DateOrder | None) -> None:
    try:
        value = parse_date(text, order)
    except DateError as exc:
        assert exc.code in {"invalid_date", "ambiguous_date", "missing"}
    else:
        assert isinstance(value, dt.date) and MIN_YEAR <= value.year <= MAX_YEAR
