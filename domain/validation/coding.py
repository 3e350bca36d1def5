"""Step 4: the tenant's configuration: the currency enabled, a GL account and a tax code for
every line. Problems a tenant's configuration would fix go to ``cfg``, the item's to ``out``."""

from __future__ import annotations

from decimal import Decimal

from domain import problems as P
from domain.coding import gl_account_for, infer_rate, tax_code_for_name, tax_code_for_rate
from domain.tenants import SupplierRule, Tenant, rate_key
from domain.validation.lines import Line

Coded = tuple[str | None, str | None, Decimal | None]  # GL account, tax code, tax rate


def check_currency(currency: str | None, tenant: Tenant, cfg: P.Problems) -> None:
    if currency is not None and currency not in tenant.currencies:
        cfg.add(
            P.CURRENCY_MISMATCH,
            "currency",
            f"{currency} is not enabled for tenant {tenant.id} (Sage company "
            f"{tenant.ledger.company}); enabled: {', '.join(tenant.currencies)}. Enable "
            f"{currency} for the company and add it to the tenant's currencies, or correct "
            "the item's currency.",
        )


def code(
    lines: list[Line],
    tenant: Tenant,
    rule: SupplierRule | None,
    out: P.Problems,
    cfg: P.Problems,
    rate_tolerance: Decimal,
) -> list[Coded]:
    """GL account, tax code and tax rate per line. Unmapped categories and rates are reported
    once each, naming the lines they appear on, however many lines share them."""
    coded: list[Coded] = []
    no_category: list[Line] = []
    unmapped: dict[str, list[Line]] = {}
    unmapped_rates: dict[str, list[Line]] = {}
    for ln in lines:
        account = rule.gl_account if rule and rule.gl_account else None
        if account is None:
            account = gl_account_for(tenant, category=ln.category, code=ln.category_code)
        if account is None:
            shown = ln.category or ln.category_code
            if shown is None:
                no_category.append(ln)
            else:
                unmapped.setdefault(shown.casefold(), []).append(ln)
        tax_code, rate = _tax_code(ln, tenant, rule, unmapped_rates, rate_tolerance)
        coded.append((account, tax_code, rate))
    _report(tenant, no_category, unmapped, unmapped_rates, out, cfg)
    return coded


def _tax_code(
    ln: Line,
    tenant: Tenant,
    rule: SupplierRule | None,
    unmapped_rates: dict[str, list[Line]],
    rate_tolerance: Decimal,
) -> tuple[str | None, Decimal | None]:
    """A line's tax code and rate: the supplier's code, else by the rate's name or number,
    else the rate inferred from net and tax. Rates the tenant has no code for are noted."""
    rate = ln.tax_rate
    tax_code: str | None = None
    if rule and rule.tax_code:
        tax_code = rule.tax_code
    elif ln.tax_rate_name is not None:
        tax_code = tax_code_for_name(tenant, ln.tax_rate_name)
        if tax_code is None and tenant.tax_codes:
            unmapped_rates.setdefault(ln.tax_rate_name.casefold(), []).append(ln)
    elif ln.tax_rate is not None:
        tax_code = tax_code_for_rate(tenant, ln.tax_rate)
        if tax_code is None and tenant.tax_codes:
            unmapped_rates.setdefault(rate_key(ln.tax_rate), []).append(ln)
    else:
        rate = infer_rate(tenant, ln.net, ln.tax, rate_tolerance)
        tax_code = tax_code_for_rate(tenant, rate) if rate is not None else None
    return tax_code, rate


def _report(
    tenant: Tenant,
    no_category: list[Line],
    unmapped: dict[str, list[Line]],
    unmapped_rates: dict[str, list[Line]],
    out: P.Problems,
    cfg: P.Problems,
) -> None:
    if no_category:
        first = no_category[0]
        out.add(
            P.MISSING,
            first.at("category", "category"),
            f"{_where(no_category).capitalize()} "
            f"{'have' if len(no_category) > 1 else 'has'} no category, so it cannot be coded "
            "to a GL account; choose a category in Dext.",
        )
    for group in unmapped.values():
        first = group[0]
        shown = first.category or first.category_code
        cfg.add(
            P.MAPPING_MISSING,
            first.at("category", "category"),
            f"Category {shown!r} ({_where(group)}) has no GL account for tenant {tenant.id}; "
            f"add it under [tenants.{tenant.id}.gl_accounts] or pick a mapped category in Dext.",
        )
    for key, group in unmapped_rates.items():
        first = group[0]
        shown = first.tax_rate_name or f"{key}%"
        cfg.add(
            P.MAPPING_MISSING,
            first.at("tax_rate"),
            f"Tax rate {shown} ({_where(group)}) has no tax code for tenant {tenant.id}; add "
            f'"{first.tax_rate_name or key}" = "<tax code>" under [tenants.{tenant.id}.tax_codes].',
        )


def _where(lines: list[Line]) -> str:
    numbers = [str(ln.index + 1) for ln in lines if ln.index is not None]
    if not numbers:
        return "the invoice"
    return f"line {numbers[0]}" if len(numbers) == 1 else f"lines {', '.join(numbers)}"
