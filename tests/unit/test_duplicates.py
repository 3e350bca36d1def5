"""The duplicate check's rules one by one, its keys, its tenant settings, and the size of
its index per 100,000 items."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.duplicates import (
    BUCKET_CAP,
    Candidate,
    Decision,
    DuplicateIndex,
    DuplicateRules,
    Rule,
    invoice_number_key,
    tax_number_key,
)
from domain.tenants import parse_tenants
from domain.validation import validate_item
from tests.unit.conftest import TODAY, make_item

DAY = dt.date(2026, 10, 1)
SHA_A = "a" * 64
SHA_B = "b" * 64


def cand(key: str = "t:1", **changes: Any) -> Candidate:
    fields: dict[str, Any] = {
        "tenant": "t",
        "key": key,
        "supplier": "Acme Ltd",
        "supplier_tax_number": None,
        "number": "INV-0042",
        "date": DAY,
        "currency": "GBP",
        "total": Decimal("120.00"),
        "credit_note": False,
        "document_sha256": None,
    }
    fields.update(changes)
    return Candidate(**fields)


def verdict_of(first: Candidate, second: Candidate, rules: DuplicateRules | None = None) -> Any:
    index = DuplicateIndex("t", rules)
    index.add(first)
    return index.check(second)


# -- invoice numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "INV-0042",
        "inv 42",
        "#42",
        "No. 0042",
        "Invoice No. 42",
        "INV42",
        "Rechnung Nr. 042",
        "Facture n° 42",
        "nº 42",
        " 42 ",
        "INV/00042",
        "Inv.No.42",
        "\uff10\uff14\uff12",
    ],
)
def test_number_spellings_share_a_key(variant: str) -> None:
    assert invoice_number_key(variant) == "42"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("42A", "42"),
        ("INV-420", "INV-42"),
        ("NOV-42", "42"),
        ("2024-0042", "2024-42"),
        ("SO-42", "PO-42"),
        ("INVEST-1", "1"),
        ("4-2", "42-"),
    ],
)
def test_numbers_that_differ_keep_apart(a: str, b: str) -> None:
    if (a, b) == ("4-2", "42-"):  # separators are not part of a number: these are one
        assert invoice_number_key(a) == invoice_number_key(b)
    else:
        assert invoice_number_key(a) != invoice_number_key(b)


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("INV", "inv"),
        ("No.", "no"),
        ("000", "0"),
        ("INV-000", "0"),
        ("#", ""),
        ("", ""),
        ("--", ""),
    ],
)
def test_a_number_of_prefix_or_zeros_only_is_not_empty(number: str, key: str) -> None:
    assert invoice_number_key(number) == key


def test_an_empty_number_key_matches_nothing() -> None:
    verdict = verdict_of(cand(number="#", total=Decimal(1)), cand("t:2", number="--"))
    assert verdict.decision is Decision.NEW


_ALNUM = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)
_NUMBERS = st.from_regex(r"[0-9][A-Za-z0-9]{0,10}", fullmatch=True)


@given(st.text(max_size=30))
def test_number_key_is_idempotent(number: str) -> None:
    key = invoice_number_key(number)
    assert invoice_number_key(key) == key


@given(_ALNUM)
def test_number_key_is_never_empty_for_letters_or_digits(number: str) -> None:
    assert invoice_number_key(number) != ""


@given(_NUMBERS, st.sampled_from(["INV-", "inv ", "#", "No. ", "Invoice #", "Nr.", "INV/"]))
def test_number_key_ignores_case_spaces_and_prefixes(number: str, prefix: str) -> None:
    key = invoice_number_key(number)
    assert invoice_number_key(number.upper()) == invoice_number_key(number.lower()) == key
    assert invoice_number_key(" ".join(number)) == key
    assert invoice_number_key(prefix + number) == key
    assert invoice_number_key(f"  {prefix} {number.swapcase()}  ") == key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("GB 123 4567 89", "123456789"),
        ("VAT Reg No: GB123456789", "gb123456789"),
        ("ATU12345678", "U 1234 5678"),
        ("DE-123.456.789", "123456789"),
    ],
)
def test_tax_numbers_share_a_key(a: str, b: str) -> None:
    assert tax_number_key(a) == tax_number_key(b) is not None


def test_a_tax_number_too_short_to_identify_anyone_is_none() -> None:
    assert tax_number_key("GB 12") is None and tax_number_key("") is None
    assert tax_number_key(None) is None


# -- the rules ------------------------------------------------------------------------------


def test_the_same_number_as_written_is_a_duplicate() -> None:
    verdict = verdict_of(cand(), cand("t:2", supplier="ACME Limited"))
    assert verdict.decision is Decision.DUPLICATE
    assert verdict.rule is Rule.SAME_NUMBER and verdict.matches == ("t:1",)


def test_a_number_variant_is_held() -> None:
    verdict = verdict_of(cand(), cand("t:2", number="42", total=Decimal("99")))
    assert verdict.decision is Decision.HOLD
    assert verdict.rule is Rule.NUMBER_VARIANT and verdict.matches == ("t:1",)
    assert verdict.to_json() == {
        "key": "t:2",
        "decision": "hold",
        "rule": "number_variant",
        "matches": ["t:1"],
        "rules": {"number_variant": ["t:1"]},
    }


def test_another_supplier_with_the_same_number_is_new() -> None:
    far = DAY + dt.timedelta(days=90)
    verdict = verdict_of(cand(), cand("t:2", supplier="Acme Logistics Ltd", date=far))
    assert verdict.decision is Decision.NEW


def test_a_tax_number_names_the_supplier_whatever_the_name() -> None:
    first = cand(supplier="Acme Ltd", supplier_tax_number="GB123456789")
    second = cand("t:2", supplier="Acme Trading Co", supplier_tax_number="123 4567 89")
    assert verdict_of(first, second).rule is Rule.SAME_NUMBER


def test_a_name_matches_when_only_one_side_has_a_tax_number() -> None:
    first = cand(supplier="Müller GmbH")
    second = cand("t:2", supplier="Muller G.m.b.H.", supplier_tax_number="DE123456789")
    assert verdict_of(first, second).rule is Rule.SAME_NUMBER
    assert verdict_of(second, dataclasses.replace(first, key="t:3")).matches == ("t:2",)


def test_one_name_with_two_tax_numbers_is_two_suppliers() -> None:
    first = cand(supplier="Smith Ltd", supplier_tax_number="GB111111111")
    second = cand("t:2", supplier="Smith Limited", supplier_tax_number="GB222222222")
    assert verdict_of(first, second).decision is Decision.NEW


def test_the_same_document_is_held_under_any_supplier_or_number() -> None:
    first = cand(document_sha256=SHA_A)
    second = cand(
        "t:2", supplier="Other plc", number="77", total=Decimal(5), document_sha256=SHA_A.upper()
    )
    verdict = verdict_of(first, second)
    assert verdict.decision is Decision.HOLD and verdict.rule is Rule.SAME_DOCUMENT
    assert verdict_of(first, cand("t:2", number="77", document_sha256=SHA_B)).rule is not (
        Rule.SAME_DOCUMENT
    )


@pytest.mark.parametrize(("days", "held"), [(0, True), (-7, True), (7, True), (8, False)])
def test_the_same_total_within_the_window_is_held(days: int, held: bool) -> None:
    second = cand("t:2", number="INV-0043", date=DAY + dt.timedelta(days=days))
    verdict = verdict_of(cand(), second)
    assert (verdict.decision is Decision.HOLD) is held
    assert verdict.rule is (Rule.SAME_TOTAL_NEAR_DATE if held else None)


def test_a_different_total_or_currency_is_new() -> None:
    assert verdict_of(cand(), cand("t:2", number="43", total=Decimal("120.01"))).rule is None
    assert verdict_of(cand(), cand("t:2", number="43", currency="EUR")).rule is None
    # 120 and 120.00 are one total
    assert verdict_of(cand(), cand("t:2", number="43", total=Decimal(120))).rule is not None


def test_a_zero_total_is_no_evidence() -> None:
    first = cand(total=Decimal(0))
    assert verdict_of(first, cand("t:2", number="43", total=Decimal("0.00"))).rule is None


def test_an_amount_tolerance_widens_the_same_total() -> None:
    rules = DuplicateRules(amount_tolerance=Decimal("0.05"))
    for total, held in (("120.05", True), ("119.95", True), ("120.06", False), ("119.94", False)):
        second = cand("t:2", number="43", total=Decimal(total))
        assert (verdict_of(cand(), second, rules).decision is Decision.HOLD) is held, total


def test_a_credit_note_is_never_a_duplicate_of_its_invoice() -> None:
    invoice = cand(document_sha256=SHA_A)
    credit = cand("t:2", credit_note=True, document_sha256=SHA_A)
    assert verdict_of(invoice, credit).decision is Decision.NEW
    assert verdict_of(credit, cand("t:3")).decision is Decision.NEW
    # ... but the same credit note twice is
    again = cand("t:3", credit_note=True, number="0042")
    assert verdict_of(credit, again).rule is Rule.NUMBER_VARIANT


def test_an_item_is_not_its_own_duplicate() -> None:
    index = DuplicateIndex("t")
    index.add(cand())
    index.add(cand())  # a replay replaces, never adds
    assert index.check(cand()).decision is Decision.NEW
    assert len(next(iter(index.rows()))[1]) == 1


def test_every_rule_that_matched_is_named_strongest_first() -> None:
    index = DuplicateIndex("t")
    index.add(cand(document_sha256=SHA_A))
    index.add(cand("t:2", number="INV-0099", total=Decimal(7), document_sha256=SHA_B))
    verdict = index.check(cand("t:3", number="42", document_sha256=SHA_B))
    assert verdict.rule is Rule.NUMBER_VARIANT
    assert verdict.matches == ("t:1", "t:2")
    assert dict(verdict.by_rule) == {
        Rule.NUMBER_VARIANT: ("t:1",),
        Rule.SAME_DOCUMENT: ("t:2",),
        Rule.SAME_TOTAL_NEAR_DATE: ("t:1",),
    }


@pytest.mark.parametrize("off", list(Rule))
def test_a_tenant_turns_a_rule_off(off: Rule) -> None:
    rules = DuplicateRules(rules=frozenset(Rule) - {off})
    cases = {
        Rule.SAME_NUMBER: cand("t:2", total=Decimal(1), date=DAY.replace(year=2025)),
        Rule.NUMBER_VARIANT: cand("t:2", number="42", total=Decimal(1)),
        Rule.SAME_DOCUMENT: cand("t:2", supplier="Z", number="9", document_sha256=SHA_A),
        Rule.SAME_TOTAL_NEAR_DATE: cand("t:2", number="43"),
    }
    first = cand(document_sha256=SHA_A)
    for rule, second in cases.items():
        verdict = verdict_of(first, second, rules)
        assert verdict.rule is (None if rule is off else rule), rule


def test_the_tenants_file_drives_the_rules() -> None:
    tenant = parse_tenants(
        '[tenants.t]\nbase_currency = "GBP"\nledger = { company = "t" }\n'
        '[tenants.t.duplicates]\nrules = ["same_number"]\nwindow_days = 1\n'
    ).get("t")
    index = DuplicateIndex("t", tenant.duplicate_rules)
    index.add(cand())
    assert index.check(cand("t:2", number="42")).decision is Decision.NEW
    assert index.check(cand("t:2", number="INV-0042")).decision is Decision.DUPLICATE


def test_another_tenants_item_is_refused() -> None:
    with pytest.raises(ValueError, match="tenant u's"):
        DuplicateIndex("t").check(cand(tenant="u"))


def test_a_candidate_from_a_validated_invoice(example_tenants: Any) -> None:
    tenant = example_tenants.get("acme-uk")
    result = validate_item(make_item(), tenant, today=TODAY)
    assert result.invoice is not None
    c = Candidate.of_invoice(result.invoice, tenant.id, document_sha256=SHA_A)
    assert c.key == "acme-uk:DX-900001" and c.total == Decimal("180.00")
    assert (c.supplier, c.number, c.document_sha256) == ("Viking Direct Ltd", "VD-1001", SHA_A)
    assert isinstance(c.total, Decimal)


# -- the index's size -----------------------------------------------------------------------


def test_a_bucket_holds_at_most_its_cap_most_recent_by_date() -> None:
    index = DuplicateIndex("t")
    for month in range(BUCKET_CAP + 10):
        day = dt.date(2020, 1, 1) + dt.timedelta(days=30 * month)
        index.add(cand(f"t:{month}", number=f"M{month}", date=day))
    buckets = dict(index.rows())
    (amounts,) = [v for k, v in buckets.items() if k.startswith("a|")]
    assert len(amounts) == BUCKET_CAP
    assert min(e[1] for e in amounts) == (dt.date(2020, 1, 1) + dt.timedelta(days=300)).toordinal()


def test_rows_round_trip_through_json() -> None:
    index = DuplicateIndex("t")
    index.add(cand(supplier_tax_number="GB123456789", document_sha256=SHA_A))
    rows = json.loads(json.dumps(list(index.rows())))
    again = DuplicateIndex.from_rows("t", rows)
    assert list(again.rows()) == list(index.rows())
    assert again.check(cand("t:2", number="42")).rule is Rule.NUMBER_VARIANT


def test_a_store_of_json_lists_serves_as_the_buckets() -> None:
    store: dict[str, list[Any]] = {}
    DuplicateIndex("t", store=store).add(cand(document_sha256=SHA_A))
    as_json = {k: json.loads(json.dumps(v)) for k, v in store.items()}  # tuples become lists
    index = DuplicateIndex("t", store=as_json)
    assert index.check(cand("t:2", number="0042")).rule is Rule.NUMBER_VARIANT
    index.add(cand("t:2", number="0042"))
    assert index.check(cand("t:3", document_sha256=SHA_A)).matches == ("t:1", "t:2")


def test_index_size_per_100k_items() -> None:
    """Not a limit: the figure the README quotes, measured (pytest -s prints it)."""
    index = DuplicateIndex("acme-uk")
    day = dt.date(2024, 1, 1)
    for n in range(100_000):
        index.add(
            Candidate(
                tenant="acme-uk",
                key=f"acme-uk:DX-{n:07d}",
                supplier=f"Supplier {n % 4000} Ltd",
                supplier_tax_number=f"GB{n % 4000:09d}" if n % 2 else None,
                number=f"INV-{n:06d}",
                date=day + dt.timedelta(days=n % 700),
                currency="GBP",
                total=Decimal(n % 50_000) / 100 + 1,
                credit_note=n % 20 == 0,
                document_sha256=f"{n:064x}",
            )
        )
    rows = list(index.rows())
    serialised = sum(len(json.dumps(row, separators=(",", ":"))) for row in rows)
    entries = sum(len(entries) for _, entries in rows)
    print(
        f"\nduplicate index, 100,000 items: {len(rows):,} buckets, {entries:,} entries, "
        f"{serialised / 1e6:.1f} MB as JSON rows ({serialised / 100_000:.0f} bytes an item)"
    )
    assert len(rows) > 100_000  # every item filed: a number, a document and a total each


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Brown & Co. Ltd", "Br0wn & Co Ltd"),
        ("Acme Ltd", "Acrne Limited"),
        ("Green Energy Co", "Green Energy C0"),
    ],
)
def test_a_name_misread_by_ocr_is_the_same_supplier(a: str, b: str) -> None:
    second = cand("t:2", supplier=b, number="INV-0043")
    assert verdict_of(cand(supplier=a), second).rule is Rule.SAME_TOTAL_NEAR_DATE


def test_suppliers_with_no_name_are_not_one_supplier() -> None:
    first = cand(supplier="—", number="7")
    assert verdict_of(first, cand("t:2", supplier="...", number="7")).decision is Decision.NEW
    # a tax number still names them
    taxed = cand(supplier="—", supplier_tax_number="GB123456789", number="7")
    again = cand("t:2", supplier="", supplier_tax_number="GB123456789", number="7")
    assert verdict_of(taxed, again).rule is Rule.SAME_NUMBER


class CountingStore(dict[str, list[Any]]):
    """The buckets, counting what a check reads."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.reads += 1
        return super().get(key, default)


def history(store: CountingStore, n: int) -> DuplicateIndex:
    index = DuplicateIndex("acme-uk", store=store)
    day = dt.date(2024, 1, 1)
    for i in range(n):
        index.add(
            Candidate(
                tenant="acme-uk",
                key=f"acme-uk:DX-{i:07d}",
                supplier="Longstanding Supplies Ltd",  # one supplier: the worst case
                supplier_tax_number="GB123456789",
                number=f"INV-{i:06d}",
                date=day + dt.timedelta(days=i % 700),
                currency="GBP",
                total=Decimal(i % 5_000) / 100 + 1,
                document_sha256=f"{i:064x}",
            )
        )
    return index


@pytest.mark.parametrize("n", [10_000, 100_000])
def test_a_checks_cost_is_flat_in_history(n: int) -> None:
    """The same bucket reads, and at most BUCKET_CAP entries each, at 10k and 100k items of
    one supplier: a check never grows with what came before."""
    store = CountingStore()
    index = history(store, n)
    store.reads = 0
    verdict = index.check(
        Candidate(
            tenant="acme-uk",
            key="acme-uk:DX-NEW",
            supplier="Longstanding Supplies Limited",
            supplier_tax_number="GB 123456789",
            number="INV-000042",  # an old number, written as it was
            date=dt.date(2024, 2, 12),
            currency="GBP",
            total=Decimal("1.42"),
            document_sha256="f" * 64,
        )
    )
    assert verdict.decision is Decision.DUPLICATE and verdict.matches[0] == "acme-uk:DX-0000042"
    assert store.reads == 5  # 2 suppliers x (number + total) + 1 document
    assert max(len(v) for v in store.values()) <= BUCKET_CAP
