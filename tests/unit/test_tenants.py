"""The tenants file: the example loads, and every mistake is named with its line and key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from domain.locales import DateOrder
from domain.tenants import TenantsFileError, load_tenants, parse_tenants
from tests.unit.conftest import TENANTS_FILE

GOOD = """\
[tenants.t1]
name = "T One"
locale = "en-GB"
base_currency = "GBP"
currencies = ["GBP", "EUR"]

[tenants.t1.ledger]
kind = "local"
company = "t1"

[tenants.t1.gl_accounts]
"Office Supplies" = "7500"

[tenants.t1.tax_codes]
"20" = "S20"
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(TenantsFileError) as info:
        parse_tenants(text, "tenants.toml")
    return str(info.value).splitlines()


def test_example_file_loads_with_its_policies() -> None:
    tenants = load_tenants(TENANTS_FILE)
    assert {t.id for t in tenants.all()} == {"acme-uk", "globex-us"}
    acme = tenants.get("acme-uk")
    assert acme.conventions.date_order is DateOrder.DMY
    assert acme.conventions.decimal == "."
    assert acme.tolerance == Decimal("0.01")
    assert acme.currencies == ["GBP", "EUR", "USD"]
    assert acme.closed_period == "hold" and acme.auto_create_vendors
    rule = acme.supplier_rule("SMITH AND JONES ACCOUNTANTS")
    assert rule is not None and rule.gl_account == "7710" and rule.terms_days == 14
    globex = tenants.get("globex-us")
    assert globex.conventions.date_order is DateOrder.MDY
    assert globex.tolerance is None and globex.tolerance_for("JPY") == 1
    assert globex.tolerance_for("USD") == Decimal("0.01")
    assert globex.tolerance_for("BHD") == Decimal("0.001")


def test_minimal_tenant_gets_sensible_defaults() -> None:
    tenant = parse_tenants('[tenants.x]\nbase_currency = "usd"\nledger = { company = "x" }\n').get(
        "x"
    )
    assert tenant.currencies == ["USD"]
    assert tenant.default_terms_days == 30 and tenant.closed_period == "hold"
    assert tenant.conventions.date_order is None  # no locale: no guessing


def test_unquoted_decimal_tolerance_is_exact() -> None:
    tenant = parse_tenants(GOOD.replace('name = "T One"', "tolerance = 0.05")).get("t1")
    assert tenant.tolerance == Decimal("0.05")
    assert isinstance(tenant.tolerance, Decimal)


def test_tax_rates_are_keyed_as_numbers() -> None:
    text = GOOD.replace('"20" = "S20"', '"20.0" = "S20"\n"17.5%" = "S175"\n"Exempt" = "E"')
    tenant = parse_tenants(text).get("t1")
    assert tenant.tax_codes == {"20": "S20", "17.5": "S175", "exempt": "E"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('company = "t1"', 'compnay = "t1"'),
            [
                "tenants.toml:7: tenants.t1.ledger.company: required key is missing",
                "tenants.toml:9: tenants.t1.ledger.compnay: unknown key; did you mean 'company'?",
            ],
        ),
        (
            ('currencies = ["GBP", "EUR"]', 'currencies = ["GBP", "EURO"]'),
            ["tenants.toml:5: tenants.t1.currencies: not ISO 4217 currency codes: EURO"],
        ),
        (
            ('currencies = ["GBP", "EUR"]', 'currencies = ["EUR"]'),
            ["tenants.toml:5: tenants.t1.currencies: must include the base currency GBP"],
        ),
        (
            ('base_currency = "GBP"', 'base_currency = "UKP"'),
            ["tenants.toml:4: tenants.t1.base_currency: 'UKP' is not an ISO 4217 currency code"],
        ),
        (
            ('locale = "en-GB"', 'locale = "en"'),
            ["tenants.toml:3: tenants.t1.locale: unknown locale 'en'"],
        ),
        (
            ('kind = "local"', 'kind = "sage"'),
            ["tenants.toml:8: tenants.t1.ledger.kind: Input should be 'local', 'intacct' or"],
        ),
        (
            ('name = "T One"', 'closed_period = "later"'),
            ["tenants.toml:2: tenants.t1.closed_period: Input should be 'hold' or 'redate'"],
        ),
        (
            ('name = "T One"', "default_terms_days = -1"),
            ["tenants.toml:2: tenants.t1.default_terms_days: Input should be greater than"],
        ),
        (
            ('name = "T One"', 'tolerance = "a penny"'),
            ["tenants.toml:2: tenants.t1.tolerance: 'a penny' is not a number"],
        ),
        (
            ('name = "T One"', "auto_create_vendors = 'maybe'"),
            ["tenants.toml:2: tenants.t1.auto_create_vendors: Input should be a valid boolean"],
        ),
        (
            (
                '"Office Supplies" = "7500"',
                '"Office Supplies" = "7500"\n"office  supplies" = "7501"',
            ),
            ["tenants.toml:11: tenants.t1.gl_accounts: categories 'Office Supplies' and"],
        ),
        (
            ('"20" = "S20"', '"20" = "S20"\n"20.00" = "S"'),
            ["tenants.toml:14: tenants.t1.tax_codes: tax rate '20.00' is listed twice"],
        ),
        (
            ('"Office Supplies" = "7500"', '"Office Supplies" = ""'),
            ["tenants.toml:11: tenants.t1.gl_accounts: empty category or GL account"],
        ),
        (
            ('kind = "local"', 'kind = "local"\ncredentials_env = "acme secrets"'),
            ["tenants.toml:9: tenants.t1.ledger.credentials_env: must be an environment-variable"],
        ),
        (
            ('name = "T One"', 'id = "other"'),
            ["tenants.toml:2: tenants.t1.id: the id is the section name; remove this key"],
        ),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) else None,
)
def test_mistakes_are_named_with_line_and_key(change: tuple[str, str], expected: list[str]) -> None:
    old, new = change
    assert old in GOOD
    found = errors_of(GOOD.replace(old, new))
    assert len(found) == len(expected), found
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), line


def test_supplier_rules_are_checked_by_key() -> None:
    text = GOOD + '\n[tenants.t1.suppliers."ACME Ltd"]\nterms_days = 400\ndepartmnt = "X"\n'
    assert errors_of(text) == [
        'tenants.toml:18: tenants.t1.suppliers."ACME Ltd".terms_days: Input should be less '
        "than or equal to 365 (got 400)",
        'tenants.toml:19: tenants.t1.suppliers."ACME Ltd".departmnt: unknown key; did you mean '
        "'department'? (allowed: gl_account, tax_code, terms_days, department, location, "
        "project)",
    ]


def test_two_rules_for_one_supplier_are_refused() -> None:
    text = (
        GOOD
        + '\n[tenants.t1.suppliers."ACME Ltd."]\nterms_days = 10\n'
        + '\n[tenants.t1.suppliers."Acme Limited"]\nterms_days = 20\n'
    )
    (error,) = errors_of(text)
    assert "suppliers 'ACME Ltd.' and 'Acme Limited' are the same once normalised" in error


def test_every_mistake_is_reported_at_once_in_file_order() -> None:
    text = GOOD.replace('locale = "en-GB"', 'locale = "xx"').replace(
        'kind = "local"', 'kind = "paper"'
    )
    text += '\n[tenants.t2]\nbase_currency = "ZZZ"\nledger = { company = "t2" }\n'
    found = errors_of(text)
    assert [line.split(":")[1] for line in found] == ["3", "8", "18"]
    assert "currencies" not in "".join(found)  # the bad base currency is reported once


def test_tenant_id_cannot_hold_a_colon() -> None:
    (error,) = errors_of('[tenants.\'t:1\']\nbase_currency = "GBP"\nledger = { company = "x" }\n')
    assert error.startswith('tenants.toml:1: tenants."t:1": a tenant id may hold letters, digits')


def test_invalid_toml_names_the_line() -> None:
    (error,) = errors_of(GOOD.replace('name = "T One"', "name = T One"))
    assert error.startswith("tenants.toml:2: not valid TOML:")


def test_file_without_tenants() -> None:
    assert errors_of("[other]\nx = 1\n") == ["tenants.toml: no [tenants.<id>] section found"]


def test_tenant_must_be_a_table() -> None:
    (error,) = errors_of('tenants = { t1 = "x" }\n')
    assert "tenants.t1: must be a table" in error


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TenantsFileError, match="cannot read tenants file"):
        load_tenants(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TenantsFileError, match="not UTF-8"):
        load_tenants(binary)


def test_unknown_tenant_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: t1"):
        parse_tenants(GOOD).get("t9")


def test_duplicate_rules_default_and_from_the_file() -> None:
    from domain.duplicates import ALL_RULES, DuplicateRules, Rule

    assert parse_tenants(GOOD).get("t1").duplicates is None
    assert parse_tenants(GOOD).get("t1").duplicate_rules == DuplicateRules()
    assert DuplicateRules().rules == ALL_RULES and DuplicateRules().window_days == 7
    text = GOOD + (
        '\n[tenants.t1.duplicates]\nrules = ["same_number", "same_document"]\n'
        "window_days = 3\namount_tolerance = 0.05\n"
    )
    rules = parse_tenants(text).get("t1").duplicate_rules
    assert rules.rules == {Rule.SAME_NUMBER, Rule.SAME_DOCUMENT}
    assert rules.window_days == 3 and rules.amount_tolerance == Decimal("0.05")
    assert DuplicateRules.from_mapping(rules.to_mapping()) == rules


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("windw_days = 3", "unknown key 'windw_days' in duplicates; did you mean 'window_days'?"),
        ('rules = ["same_nmber"]', "unknown duplicate rule 'same_nmber'; did you mean"),
        ("window_days = 400", "window_days must be 0 to 366 (got 400)"),
        ("window_days = 2.5", "window_days must be a whole number of days"),
        ('amount_tolerance = "x"', "amount_tolerance 'x' is not a number"),
        ('rules = "same_number"', "rules must be a list of rule names"),
    ],
)
def test_duplicate_rules_mistakes_are_named(body: str, message: str) -> None:
    (error,) = errors_of(GOOD + f"\n[tenants.t1.duplicates]\n{body}\n")
    assert error.startswith("tenants.toml:17: tenants.t1.duplicates: ")
    assert message in error
