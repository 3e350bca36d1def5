"""A bad value is quoted in a message at a readable length, with how long it really was."""

from __future__ import annotations

import pytest

from domain.dates import DateError, parse_date
from domain.money import AmountError, parse_amount
from domain.text import SHOWN_CHARS, shown


def test_short_values_are_their_repr() -> None:
    assert shown("2026-13-01") == "'2026-13-01'"


def test_long_values_are_cut_and_sized() -> None:
    text = shown("9" * 400)
    assert len(text) < SHOWN_CHARS + 20
    assert text.endswith("… (400 characters)")


def test_a_400_digit_date_is_not_echoed_whole() -> None:
    # make fuzz met a 300-digit due date quoted in full in the problem message.
    with pytest.raises(DateError) as err:
        parse_date("9" * 400, None)
    assert "9" * 80 not in str(err.value) and "(400 characters)" in str(err.value)


def test_a_400_character_amount_is_not_echoed_whole() -> None:
    with pytest.raises(AmountError) as err:
        parse_amount("x" * 400)
    assert "x" * 80 not in str(err.value) and "(400 characters)" in str(err.value)
