"""validate_item: the contract the validate stage and the CLI rely on."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import problems as P
from domain.dext import find_floats, loads_items
from domain.errors import Reason
from domain.money import minor_units
from domain.tenants import Tenant, Tenants, parse_tenants
from domain.validation import ValidationResult, validate_item
from tests.unit.conftest import SAMPLES, TODAY, make_item

D = Decimal


def _samples() -> list[tuple[str, Path]]:
    return [(p.parent.name, p) for p in sorted(SAMPLES.rglob("*.json"))]


def test_samples_give_the_documented_outcomes(example_tenants: Tenants) -> None:
    outcomes: dict[str, ValidationResult] = {}
    expects: dict[str, str] = {}
    for tenant_id, path in _samples():
        (item,) = loads_items(path.read_bytes())
        result = validate_item(item, example_tenants.get(tenant_id), today=TODAY)
        outcomes[item["id"]] = result
        if "_expect" in item:
            expects[item["id"]] = item["_expect"]
    assert len(outcomes) == 69 and len(expects) == 8
    ok = {i for i, r in outcomes.items() if r.ok}
    assert len(ok - set(expects)) == 61  # every good sample is ok
    for dext_id, expect in expects.items():
        reason = expect.split(":", 1)[0]
        result = outcomes[dext_id]
        if reason == "duplicate":
            # Only the ledger can tell it is a duplicate: validation passes it on.
            assert result.ok, result.problems
        else:
            assert not result.ok and result.reason == Reason(reason), (dext_id, result.problems)
            assert result.invoice is None and result.bill is None
    assert len(ok) == 62


def test_sample_failures_name_what_to_fix(example_tenants: Tenants) -> None:
    def result_of(tenant_id: str, dext_id: str) -> ValidationResult:
        (item,) = loads_items((SAMPLES / tenant_id / f"{dext_id}.json").read_bytes())
        return validate_item(item, example_tenants.get(tenant_id), today=TODAY)

    (problem,) = result_of("acme-uk", "DX-100065").problems
    assert problem.code == "currency_mismatch" and problem.field == "currency"
    assert "JPY" in problem.message and "GBP, EUR, USD" in problem.message
    (problem,) = result_of("globex-us", "DX-100066").problems  # two lines, one problem
    assert problem.code == "mapping_missing" and problem.field == "line_items[0].category"
    assert "'Entertainment'" in problem.message and "lines 1, 2" in problem.message
    (problem,) = result_of("globex-us", "DX-100064").problems
    assert problem.code == "invalid_currency" and "'XYZ'" in problem.message


def test_every_problem_at_once(acme: Tenant) -> None:
    item = make_item(invoice_number=None, date="31/02/2026", total_amount="N/A", currency="XX")
    item["line_items"][1]["net_amount"] = "lots"
    result = validate_item(item, acme, today=TODAY)
    assert not result.ok and result.reason is Reason.VALIDATION
    assert {(p.code, p.field) for p in result.problems} == {
        ("missing", "invoice_number"),
        ("invalid_currency", "currency"),
        ("invalid_date", "date"),
        ("invalid_amount", "total_amount"),
        ("invalid_amount", "line_items[1].net_amount"),
    }
    for problem in result.problems:
        assert problem.code in P.ALL_CODES
        assert problem.message.endswith(".") and len(problem.message) > 20


def test_item_problems_outrank_configuration_problems(acme: Tenant) -> None:
    both = validate_item(make_item(currency="JPY", invoice_number=None), acme, today=TODAY)
    assert both.reason is Reason.VALIDATION
    assert {p.code for p in both.problems} == {"missing", "currency_mismatch"}
    config = make_item(currency="JPY", category="Entertainment", category_code=None)
    for line in config["line_items"]:
        line["category"] = "Entertainment"
    result = validate_item(config, acme, today=TODAY)
    assert result.reason is Reason.CURRENCY_MISMATCH
    assert {p.code for p in result.problems} == {"currency_mismatch", "mapping_missing"}


def test_a_good_item_becomes_a_coded_draft_bill(acme: Tenant) -> None:
    result = validate_item(make_item(), acme, today=TODAY)
    assert result.ok and result.reason is None and result.problems == []
    bill, invoice = result.bill, result.invoice
    assert bill is not None and invoice is not None
    assert bill.item_key == "acme-uk:DX-900001"
    assert bill.vendor_match_key == "viking direct"
    assert (bill.net, bill.tax, bill.total) == (D("150.00"), D("30.00"), D("180.00"))
    assert [(ln.gl_account, ln.tax_code, ln.quantity, ln.unit_price) for ln in bill.lines] == [
        ("7500", "S20", D(2), D("50.00")),
        ("7500", "S20", D(1), D("50.00")),
    ]
    assert invoice.date == dt.date(2026, 10, 1) and invoice.due_date == dt.date(2026, 10, 31)
    assert invoice.document is not None and invoice.document.filename == "DX-900001.pdf"


def test_a_document_without_its_location_is_not_a_problem(acme: Tenant) -> None:
    # Sources pass the document's location beside the item, keeping only its name here.
    item = make_item(document={"filename": "DX-900001.pdf", "content_type": "application/pdf"})
    result = validate_item(item, acme, today=TODAY)
    assert result.ok and result.invoice is not None and result.invoice.document is None
    odd = make_item(document={"url": 42, "filename": ["x"], "content_type": 7})
    assert validate_item(odd, acme, today=TODAY).ok


def test_a_future_date_suggests_day_and_month_swapped() -> None:
    tenant = parse_tenants(
        '[tenants.us]\nlocale = "en-US"\nbase_currency = "GBP"\nmax_future_days = 0\n'
        'ledger = { company = "us" }\ngl_accounts = { "Office Supplies" = "6100" }\n'
    ).get("us")
    result = validate_item(make_item(date="12/11/2026", due_date=None), tenant, today=TODAY)
    (problem,) = result.problems
    assert (problem.code, problem.field) == ("future_date", "date")
    assert "was it 2026-11-12, with day and month the other way round?" in problem.message


def test_unknown_fields_are_kept(acme: Tenant) -> None:
    item = make_item(status="ready", client="Acme", x_custom={"po": "PO-7"})
    item["line_items"][0]["sku"] = "PAPER-A4"
    result = validate_item(item, acme, today=TODAY)
    assert result.invoice is not None
    assert result.invoice.extra["x_custom"] == {"po": "PO-7"}
    assert result.invoice.extra["status"] == "ready"
    assert result.invoice.extra["category_code"] == "7500"
    assert result.invoice.lines[0].extra == {"sku": "PAPER-A4"}


def test_supplier_rules_override_account_terms_and_dimensions(acme: Tenant) -> None:
    item = make_item(payee="SMITH AND JONES ACCOUNTANTS", due_date=None)
    bill = validate_item(item, acme, today=TODAY).bill
    assert bill is not None
    assert {ln.gl_account for ln in bill.lines} == {"7710"}  # not the category's 7500
    assert bill.due_date == dt.date(2026, 10, 15)  # 14 days, the supplier's terms
    assert {ln.dimensions.department for ln in bill.lines} == {"FIN"}
    wework = validate_item(make_item(payee="WeWork UK Limited", due_date=None), acme, today=TODAY)
    assert wework.bill is not None
    assert wework.bill.due_date == dt.date(2026, 10, 31)  # tenant default, 30 days
    assert wework.bill.lines[0].dimensions.location == "LDN"
    assert wework.bill.lines[0].gl_account == "7500"  # the rule sets no account


def test_supplier_account_rule_covers_an_unmapped_category(acme: Tenant) -> None:
    item = make_item(payee="Smith & Jones Accountants LLP", category="Entertainment")
    for line in item["line_items"]:
        line["category"] = "Entertainment"
    assert validate_item(item, acme, today=TODAY).ok


def test_unmapped_categories_and_rates_are_named_once_each(acme: Tenant) -> None:
    item = make_item(total_amount="331.75", vat_amount="51.75")
    lines = item["line_items"]
    lines[0]["category"] = "Entertainment"
    lines[1]["category"] = "entertainment"
    lines.append(
        {
            "description": "Fuel",
            "category": "Motor",
            "net_amount": "100.00",
            "tax_amount": "17.50",
            "total_amount": "117.50",
            "tax_rate": "17.5",
        },
    )
    lines.append(
        {
            "description": "Oil",
            "category": "Motor",
            "net_amount": "10",
            "tax_amount": "1.75",
            "total_amount": "11.75",
            "tax_rate": "17.50",
        },
    )
    item["total_amount"] = "309.25"
    item["vat_amount"] = "49.25"
    result = validate_item(item, acme, today=TODAY)
    assert result.reason is Reason.MAPPING_MISSING
    assert [(p.code, p.field) for p in result.problems] == [
        ("mapping_missing", "line_items[0].category"),
        ("mapping_missing", "line_items[2].category"),
        ("mapping_missing", "line_items[2].tax_rate"),
    ]
    assert "lines 1, 2" in result.problems[0].message
    assert "17.5%" in result.problems[2].message and "lines 3, 4" in result.problems[2].message


def test_field_paths_point_into_lines(acme: Tenant) -> None:
    item = make_item()
    item["line_items"][1]["net_amount"] = "1.234,56"
    (problem,) = validate_item(item, acme, today=TODAY).problems
    assert problem.field == "line_items[1].net_amount"
    assert problem.message.startswith("Line 2 net amount:")


def test_items_are_read_without_floats(acme: Tenant) -> None:
    raw = json.dumps(make_item()).replace('"180.00"', "180.00").replace('"30.00"', "NaN")
    (item,) = loads_items(raw)
    assert find_floats(item) == []
    assert item["total_amount"] == "180.00" and item["vat_amount"] == "NaN"
    (problem,) = validate_item(item, acme, today=TODAY).problems
    assert (problem.code, problem.field) == ("invalid_amount", "vat_amount")
    assert "not a finite amount" in problem.message


@pytest.mark.parametrize("not_an_item", [None, [], "DX-1", 42, {"id": {"nested": 1}}])
def test_never_raises_on_nonsense(acme: Tenant, not_an_item: Any) -> None:
    result = validate_item(not_an_item, acme, today=TODAY)
    assert not result.ok and result.problems
    assert P.INTERNAL not in {p.code for p in result.problems}


# --- properties --------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=12),
    st.integers(-(10**15), 10**15),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "N/A", "1,234.56", "(12.00)", "2026-02-30", "03/04/2026", "-0", "NaN"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
fields = st.sampled_from(
    [
        "id",
        "type",
        "payee",
        "invoice_number",
        "date",
        "due_date",
        "currency",
        "total_amount",
        "vat_amount",
        "net_amount",
        "category",
        "category_code",
        "paid",
        "line_items",
        "document",
        "base_currency",
        "tax_rate",
    ]
)
line_fields = st.sampled_from(
    ["net_amount", "tax_amount", "total_amount", "quantity", "unit_price", "tax_rate", "category"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(fields, json_values, max_size=4),
    line_changes=st.dictionaries(line_fields, json_values, max_size=3),
)
def test_bent_items_never_break_validation(
    acme: Tenant, changes: dict[str, Any], line_changes: dict[str, Any]
) -> None:
    item = make_item()
    item["line_items"][0].update(line_changes)
    item.update(changes)
    result = validate_item(item, acme, today=TODAY)
    codes = {p.code for p in result.problems}
    assert P.INTERNAL not in codes, result.problems
    assert codes <= P.ALL_CODES
    if result.ok:
        assert result.invoice is not None and result.bill is not None and not result.problems
        _assert_bill_adds_up(result)
    else:
        assert result.problems and result.reason is not None
        assert result.invoice is None and result.bill is None


def _assert_bill_adds_up(result: ValidationResult) -> None:
    bill, invoice = result.bill, result.invoice
    assert bill is not None and invoice is not None
    exponent = -minor_units(bill.currency)
    zero = D(0)
    assert bill.net + bill.tax == bill.total
    assert sum((ln.net for ln in bill.lines), zero) == bill.net
    assert sum((ln.tax for ln in bill.lines), zero) == bill.tax
    assert sum((ln.total for ln in bill.lines), zero) == bill.total
    assert bill.total > 0
    for ln in bill.lines:
        assert ln.net + ln.tax == ln.total
        assert ln.gl_account
        for amount in (ln.net, ln.tax, ln.total):
            assert isinstance(amount, Decimal) and amount.as_tuple().exponent == exponent
    for amount in (bill.net, bill.tax, bill.total, invoice.net, invoice.tax, invoice.total):
        assert isinstance(amount, Decimal) and amount.as_tuple().exponent == exponent
    # The wire form: no float anywhere, amounts as strings.
    wire = json.loads(bill.model_dump_json(), parse_float=lambda s: float(s))
    assert find_floats(wire) == []
    assert isinstance(wire["total"], str)
    assert find_floats(json.loads(invoice.model_dump_json(), parse_float=float)) == []


CURRENCY_TENANTS = parse_tenants(
    """\
[tenants.multi]
locale = "en-GB"
base_currency = "GBP"
currencies = ["GBP", "USD", "JPY", "BHD", "EUR"]
ledger = { company = "multi" }
[tenants.multi.gl_accounts]
"Office Supplies" = "7500"
[tenants.multi.tax_codes]
"20" = "S20"
"0" = "Z0"
"12.5" = "R125"
"""
)


@st.composite
def consistent_items(draw: st.DrawFn) -> dict[str, Any]:
    """Items whose lines really add up, with arbitrary precision, signs and currencies."""
    currency = draw(st.sampled_from(["GBP", "USD", "JPY", "BHD", "EUR"]))
    credit = draw(st.booleans())
    negative = credit and draw(st.booleans())
    places = draw(st.integers(0, 4))
    lines = []
    for i in range(draw(st.integers(0, 5))):
        net = draw(st.decimals(min_value=D("0.01"), max_value=D("99999"), places=places))
        rate = draw(st.sampled_from(["20", "0", "12.5"]))
        # Suppliers work tax out to at least the currency's minor unit.
        tax = (net * D(rate) / 100).quantize(
            D(1).scaleb(-max(places, minor_units(currency))), rounding=ROUND_HALF_UP
        )
        sign = -1 if negative else 1
        lines.append(
            {
                "description": f"line {i}",
                "category": "Office Supplies",
                "net_amount": str(sign * net),
                "tax_amount": str(sign * tax),
                "total_amount": str(sign * (net + tax)),
                "tax_rate": rate,
                "quantity": str(draw(st.integers(1, 50))),
            }
        )
    if lines:
        total = sum((D(ln["total_amount"]) for ln in lines), D(0))
        vat = sum((D(ln["tax_amount"]) for ln in lines), D(0))
    else:
        total = draw(st.decimals(min_value=D("0.01"), max_value=D("99999"), places=places))
        vat = D(0)
        total = -total if negative else total
    return make_item(
        currency=currency,
        type="credit_note" if credit else "invoice",
        total_amount=str(total),
        vat_amount=str(vat),
        line_items=lines,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=consistent_items())
def test_bills_add_up_to_the_minor_unit_in_every_currency(item: dict[str, Any]) -> None:
    tenant = CURRENCY_TENANTS.get("multi")
    result = validate_item(item, tenant, today=TODAY)
    raw_total = abs(D(item["total_amount"]))
    if raw_total.quantize(D(1).scaleb(-minor_units(item["currency"]))) == 0:
        assert {p.code for p in result.problems} <= {"zero_total"} or result.ok
        return
    assert result.ok, result.problems
    _assert_bill_adds_up(result)
    assert result.bill is not None
    assert result.bill.credit_note == (item["type"] == "credit_note")
    assert abs(result.bill.total - raw_total) <= D(1).scaleb(-minor_units(item["currency"])) / 2


# -- bills that passed validation before (security and fuzz review) ---------------------------


def _codes(result: ValidationResult) -> set[str]:
    return {p.code for p in result.problems}


def test_tax_greater_than_the_total_is_refused(acme: Tenant) -> None:
    item = make_item(total_amount="100.00", vat_amount="150.00", line_items=None)
    result = validate_item(item, acme, today=TODAY)
    assert not result.ok and P.TAX_EXCEEDS_TOTAL in _codes(result)


def test_negative_tax_on_an_ordinary_invoice_is_refused(acme: Tenant) -> None:
    item = make_item(total_amount="100.00", vat_amount="-20.00", line_items=None)
    result = validate_item(item, acme, today=TODAY)
    assert not result.ok and P.NEGATIVE_TAX in _codes(result)


def test_a_credit_note_written_negative_is_still_fine(acme: Tenant) -> None:
    item = make_item(total_amount="-120.00", vat_amount="-20.00", line_items=None)
    result = validate_item(item, acme, today=TODAY)
    assert result.ok and result.bill is not None and result.bill.credit_note
    assert result.bill.tax == D("20.00")


@pytest.mark.parametrize("total", ["0.001", "0.004", "-0.004", "0.00"])
def test_a_total_that_rounds_to_zero_is_refused(acme: Tenant, total: str) -> None:
    item = make_item(total_amount=total, vat_amount=None, line_items=None)
    result = validate_item(item, acme, today=TODAY)
    assert not result.ok and P.ZERO_TOTAL in _codes(result)


def test_a_total_that_rounds_up_to_one_penny_is_posted(acme: Tenant) -> None:
    item = make_item(total_amount="0.005", vat_amount=None, line_items=None)
    result = validate_item(item, acme, today=TODAY)
    assert result.ok and result.bill is not None and result.bill.total == D("0.01")


def test_a_due_date_decades_away_is_refused(acme: Tenant) -> None:
    item = make_item(date="01/10/2026", due_date="31/12/99")
    result = validate_item(item, acme, today=TODAY)
    assert not result.ok and P.DUE_TOO_FAR in _codes(result)


def test_a_due_date_within_a_year_is_fine(acme: Tenant) -> None:
    item = make_item(date="2026-10-01", due_date="2027-09-30")
    assert validate_item(item, acme, today=TODAY).ok
