"""GL coding: category by code or name, supplier overrides, tax-rate to tax-code mapping."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.coding import (
    dimensions_for,
    gl_account_for,
    infer_rate,
    tax_code_for_name,
    tax_code_for_rate,
)
from domain.models import Dimensions
from domain.tenants import SupplierRule, Tenant, parse_tenants

D = Decimal

TEXT = """\
[tenants.t]
base_currency = "GBP"
locale = "en-GB"
ledger = { company = "t" }

[tenants.t.gl_accounts]
"Office Supplies" = "7500"
"7600" = "7600"
"Travel" = "7400"
"Motor Expenses" = "7300"

[tenants.t.tax_codes]
"20" = "S20"
"5" = "R5"
"0" = "Z0"
"Exempt" = "E"
"""


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return parse_tenants(TEXT).get("t")


@pytest.mark.parametrize(
    ("category", "code", "expected"),
    [
        ("Office Supplies", None, "7500"),
        ("office  supplies", None, "7500"),  # case and spacing do not matter
        (None, "7600", "7600"),
        ("Software", "7600", "7600"),  # the nominal code outranks an unmapped name
        ("Travel", "7500", "7400"),  # the tenant's mapping beats a bare account code
        ("7400 - Travel", None, "7400"),  # Dext's combined "code - name" label
        ("7300 Motor Expenses", None, "7300"),
        ("Motor Expenses (7300)", None, "7300"),
        ("9999 - Travel", None, "7400"),  # unknown code, known name
        ("Stationery", "7500", "7500"),  # a code that is itself a known GL account
        ("Entertainment", None, None),
        ("Entertainment", "6800", None),
        (None, None, None),
        ("", "  ", None),
    ],
)
def test_gl_account_for_category(
    tenant: Tenant, category: str | None, code: str | None, expected: str | None
) -> None:
    assert gl_account_for(tenant, category=category, code=code) == expected


def test_tax_codes_by_rate_and_name(tenant: Tenant) -> None:
    assert tax_code_for_rate(tenant, D("20")) == "S20"
    assert tax_code_for_rate(tenant, D("20.00")) == "S20"
    assert tax_code_for_rate(tenant, D("17.5")) is None
    assert tax_code_for_name(tenant, "EXEMPT") == "E"
    assert tax_code_for_name(tenant, "Outside scope") is None


@pytest.mark.parametrize(
    ("net", "tax", "expected"),
    [
        ("100.00", "20.00", "20"),
        ("33.33", "6.67", "20"),  # rounded tax still fits
        ("100.00", "5.00", "5"),
        ("100.00", "0.00", "0"),
        ("100.00", "12.00", None),  # no configured rate fits: no guess
        ("0.00", "0.00", None),  # nothing to infer from
    ],
)
def test_infer_rate_only_when_exactly_one_fits(
    tenant: Tenant, net: str, tax: str, expected: str | None
) -> None:
    found = infer_rate(tenant, D(net), D(tax), D("0.015"))
    assert found == (D(expected) if expected else None)


def test_infer_rate_refuses_when_two_rates_fit() -> None:
    tenant = parse_tenants(TEXT.replace('"5" = "R5"', '"5" = "R5"\n"5.5" = "R55"')).get("t")
    assert infer_rate(tenant, D("0.10"), D("0.01"), D("0.015")) is None


def test_supplier_rule_overrides_only_what_it_sets() -> None:
    item_dims = {"department": "OPS", "location": "MAN", "project": "P1"}
    assert dimensions_for(None, **item_dims) == Dimensions(**item_dims)
    rule = SupplierRule(department="FIN", project="P9")
    assert dimensions_for(rule, **item_dims) == Dimensions(
        department="FIN", location="MAN", project="P9"
    )
