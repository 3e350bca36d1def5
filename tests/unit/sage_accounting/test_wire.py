"""Money on Sage's wire: JSON numbers with exact digits, never through float."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.sage_accounting import wire


def test_decimal_is_a_json_number_with_its_own_digits() -> None:
    body = {"net_amount": Decimal("132.60"), "qty": Decimal(2), "rate": Decimal("1E+2")}
    assert wire.dumps(body) == b'{"net_amount":132.60,"qty":2,"rate":100}'


def test_a_value_a_float_cannot_hold_survives() -> None:
    exact = Decimal("12345678901234567.89")
    assert float(exact) != exact  # the trap this module exists for
    assert wire.dumps([exact]) == b"[12345678901234567.89]"
    assert wire.loads(wire.dumps([exact])) == [exact]


def test_floats_and_non_finite_amounts_are_refused() -> None:
    with pytest.raises(TypeError):
        wire.dumps({"amount": 1.5})
    with pytest.raises(ValueError):
        wire.dumps({"amount": Decimal("NaN")})


def test_strings_dates_and_structure() -> None:
    out = wire.dumps(
        {
            "name": 'Müller "Büro" <A4>',
            "date": dt.date(2026, 3, 1),
            "ok": True,
            "none": None,
            "list": [1, "x"],
        }
    )
    assert wire.loads(out) == {
        "name": 'Müller "Büro" <A4>',
        "date": "2026-03-01",
        "ok": True,
        "none": None,
        "list": [1, "x"],
    }


def test_numbers_read_back_as_decimal() -> None:
    assert wire.loads(b'{"a": 0.1, "b": 3}') == {"a": Decimal("0.1"), "b": 3}
    assert isinstance(wire.loads(b"[0.1]")[0], Decimal)


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=2,
        min_value=Decimal("-1e12"),
        max_value=Decimal("1e12"),
    )
)
def test_round_trip_is_exact(amount: Decimal) -> None:
    assert wire.loads(wire.dumps({"x": amount}))["x"] == amount
