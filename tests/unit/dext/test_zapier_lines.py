"""Line items in Zapier's flat records: arrays, comma-joined parallel lists, repeated form
fields and a list of labelled lines all give the same lines; lists that disagree are an
error naming the counts, never lines guessed at."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.dext.zapier import RowError, flat_item, form_fields, line_items
from domain.tenants import load_tenants
from domain.validation import validate_item
from tests.unit.conftest import TENANTS_FILE

TENANT = load_tenants(TENANTS_FILE).get("acme-uk")  # with its GL accounts
HEAD: dict[str, Any] = {
    "Supplier Name": "Viking Direct",
    "Invoice Number": "VD-7781",
    "Date": "03/11/2026",
    "Currency": "GBP",
    "Total Amount": "120.00",
    "Tax Amount": "20.00",
    "Category": "Office Supplies",
}
LINES = [
    {"description": "Paper", "quantity": "2", "net_amount": "40.00", "tax_amount": "8.00",
     "total_amount": "48.00", "tax_rate": "20"},
    {"description": "Toner", "quantity": "1", "net_amount": "60.00", "tax_amount": "12.00",
     "total_amount": "72.00", "tax_rate": "20"},
]  # fmt: skip
LABELS = {
    "description": "Description",
    "quantity": "Quantity",
    "net_amount": "Net Amount",
    "tax_amount": "Tax Amount",
    "total_amount": "Total Amount",
    "tax_rate": "Tax Rate",
}


def parallel(join: bool) -> dict[str, Any]:
    out = dict(HEAD)
    for field, label in LABELS.items():
        values = [line[field] for line in LINES]
        out[f"Line Items {label}"] = ",".join(values) if join else values
    return out


def test_arrays_and_comma_joined_lists_give_the_same_lines() -> None:
    assert flat_item(parallel(join=False), TENANT)["line_items"] == LINES
    assert flat_item(parallel(join=True), TENANT)["line_items"] == LINES


def test_a_list_of_labelled_lines() -> None:
    record = dict(HEAD)
    record["Line Items"] = [{LABELS[k]: v for k, v in line.items()} for line in LINES]
    assert flat_item(record, TENANT)["line_items"] == LINES


def test_unflattened_object_of_lists() -> None:
    record = dict(HEAD)
    record["Line Items"] = {LABELS[f]: [line[f] for line in LINES] for f in LABELS}
    assert flat_item(record, TENANT)["line_items"] == LINES


def test_a_form_with_each_line_field_repeated() -> None:
    pairs = list(HEAD.items())
    for line in LINES:
        pairs += [(f"Line Items {LABELS[f]}", v) for f, v in line.items()]
    fields = form_fields(urlencode(pairs).encode())
    assert flat_item(fields, TENANT)["line_items"] == LINES


def test_a_form_with_comma_joined_lists() -> None:
    fields = form_fields(urlencode(parallel(join=True)).encode())
    assert flat_item(fields, TENANT)["line_items"] == LINES


def test_the_lines_validate_and_code_the_bill_line_by_line() -> None:
    item = flat_item(parallel(join=True), TENANT)
    result = validate_item(item, TENANT, today=dt.date(2026, 11, 10))
    assert result.ok, result.problems
    assert result.bill is not None
    assert [line.net for line in result.bill.lines] == [Decimal("40.00"), Decimal("60.00")]


def test_a_comma_inside_a_description_is_an_error_naming_the_counts() -> None:
    record = parallel(join=True)
    record["Line Items Description"] = "Paper, A4,Toner"
    with pytest.raises(RowError, match=r"description 3, quantity 2") as caught:
        flat_item(record, TENANT)
    assert "arrays" in str(caught.value)


def test_both_shapes_at_once_are_refused() -> None:
    record = parallel(join=False)
    record["Line Items"] = [{"Description": "x", "Total": "1"}]
    with pytest.raises(RowError, match="both"):
        flat_item(record, TENANT)


def test_a_line_that_is_not_an_object() -> None:
    with pytest.raises(RowError, match="line item 2 is not an object"):
        line_items({"Line Items": [{"Total": "1"}, "2.00"]})


def test_no_line_fields_no_lines() -> None:
    item = flat_item(HEAD, TENANT)
    assert "line_items" not in item
    assert line_items(HEAD) == ([], set())


def test_too_many_lines() -> None:
    with pytest.raises(RowError, match="at most 500"):
        line_items({"Line Items Total": ["1.00"] * 501})


AMOUNT = st.decimals(min_value=0, max_value=10**6, places=2).map(str)
WORD = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12)


@given(st.lists(st.tuples(WORD, AMOUNT), min_size=1, max_size=20))
def test_joined_and_array_lists_agree(lines: list[tuple[str, str]]) -> None:
    descriptions, totals = zip(*lines, strict=True)
    as_arrays = {"Line Items Description": list(descriptions), "Line Items Total": list(totals)}
    joined = {k: ",".join(v) for k, v in as_arrays.items()}
    expected = [{"description": d, "total_amount": t} for d, t in lines]
    assert line_items(as_arrays)[0] == expected
    assert line_items(joined)[0] == expected
