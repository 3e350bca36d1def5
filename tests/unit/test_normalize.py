"""Supplier names normalised for matching: one vendor however the invoice spells it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.normalize import clean_text, label_key, vendor_match_key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ACME Ltd.", "Acme Limited"),
        ("Acme Ltd", "  acme   LIMITED "),
        ("A.C.M.E. Ltd", "Acme Ltd"),
        ("Acme Pty. Ltd.", "ACME"),
        ("Staples, Inc.", "Staples Inc"),
        ("Staples Incorporated", "STAPLES"),
        ("AT&T Corp.", "AT and T Corporation"),
        ("Smith & Jones Accountants LLP", "Smith and Jones Accountants"),
        ("Brown & Co.", "Brown"),
        ("Müller Büromaschinen GmbH", "MULLER BUROMASCHINEN"),
        ("O'Brien Catering Ltd", "OBrien Catering Limited"),
        ("O\u2019Brien Catering", "O'Brien Catering"),  # typographic apostrophe
        ("Trainline.com Ltd", "Trainline Limited"),
        ("Amazon Web Services EMEA SARL", "Amazon Web Services EMEA S.A.R.L."),
        ("Foo Sp. z o.o.", "FOO"),
        ("The Printing Company Ltd", "Printing Company"),
        ("SAP SE", "SAP"),
        ("Acme (UK) Ltd", "ACME UK LIMITED"),
    ],
)
def test_same_vendor(a: str, b: str) -> None:
    assert vendor_match_key(a) == vendor_match_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme Ltd", "Acme Holdings Ltd"),
        ("Acme UK Ltd", "Acme US Inc"),
        ("BT Business", "BT"),
        ("Smith & Jones", "Smith Jones"),
    ],
)
def test_different_vendors_stay_apart(a: str, b: str) -> None:
    assert vendor_match_key(a) != vendor_match_key(b)


def test_a_name_that_is_only_a_legal_form_is_kept() -> None:
    assert vendor_match_key("Ltd") == "ltd"


def test_labels_compare_without_case_or_spacing() -> None:
    assert label_key("Office  Supplies ") == label_key("office supplies")
    assert clean_text("  Acme \t Ltd\n") == "Acme Ltd"


@given(st.text(max_size=40))
def test_match_key_is_stable(name: str) -> None:
    key = vendor_match_key(name)
    assert key == key.strip()
    assert "  " not in key
    assert vendor_match_key(name.upper()) == vendor_match_key(name.lower()) or not name.isascii()
