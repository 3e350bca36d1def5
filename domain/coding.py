"""GL coding: which account, tax code and dimensions each bill line gets, per tenant.

Order of precedence, most specific first:

1. the supplier's rule in the tenants file (account, tax code, dimensions);
2. the line's category, by nominal code or name (``7500``, ``Office Supplies``, or Dext's
   combined ``7500 - Office Supplies``), through the tenant's ``gl_accounts``;
3. a category code that is itself one of the tenant's GL accounts (Dext categories are the
   ledger's chart of accounts), used only when the mapping says nothing: the mapping is the
   controller's explicit decision.

Tax codes come from the line's tax rate (``20`` -> ``S20``) or rate name (``Exempt``); with no
rate on the line, the rate is inferred from its net and tax only when exactly one of the
tenant's rates fits, because a wrong VAT code is worse than none.
"""

from __future__ import annotations

import re
from decimal import Decimal

from domain.models import Dimensions
from domain.normalize import label_key
from domain.tenants import SupplierRule, Tenant, rate_key

# "7500 - Office Supplies", "7500 Office Supplies", "Office Supplies (7500)"
_CODE_FIRST = re.compile(r"(?P<code>\d[\w.]*)\s*(?:[-\u2013:|]\s*|\s+)(?P<name>\D.*)")
_CODE_LAST = re.compile(r"(?P<name>.*\D)\s*\((?P<code>\d[\w.]*)\)")


def gl_account_for(tenant: Tenant, *, category: str | None, code: str | None) -> str | None:
    """The GL account of a Dext category, or None when the tenant has no mapping for it."""
    by_label = {label_key(k): v for k, v in tenant.gl_accounts.items()}
    # The item's nominal code is Dext's own link to the chart of accounts, so it comes first;
    # then the category as written; then the parts of a combined "7500 - Office Supplies".
    keys: list[str] = [k.strip() for k in (code, category) if k and k.strip()]
    codes = keys[:1] if code and code.strip() else []
    if category and (
        m := _CODE_FIRST.fullmatch(category.strip()) or _CODE_LAST.fullmatch(category.strip())
    ):
        keys += [m["code"], m["name"].strip()]
        codes.append(m["code"])
    for key in keys:
        if (account := by_label.get(label_key(key))) is not None:
            return account
    known_accounts = set(tenant.gl_accounts.values())
    return next((c for c in codes if c in known_accounts), None)


def tax_code_for_rate(tenant: Tenant, rate: Decimal) -> str | None:
    return tenant.tax_codes.get(rate_key(rate))


def tax_code_for_name(tenant: Tenant, name: str) -> str | None:
    return tenant.tax_codes.get(label_key(name))


def numeric_rates(tenant: Tenant) -> list[Decimal]:
    rates: list[Decimal] = []
    for key in tenant.tax_codes:
        try:
            rates.append(Decimal(key))
        except ArithmeticError:
            continue  # a named rate ("exempt"): nothing to infer from amounts
    return rates


def infer_rate(tenant: Tenant, net: Decimal, tax: Decimal, tolerance: Decimal) -> Decimal | None:
    """The one configured rate that turns ``net`` into ``tax``, or None if not exactly one."""
    if net == 0:
        return None
    fits = [r for r in numeric_rates(tenant) if abs(net * r / 100 - tax) <= tolerance]
    return fits[0] if len(fits) == 1 else None


def dimensions_for(
    rule: SupplierRule | None,
    *,
    department: str | None,
    location: str | None,
    project: str | None,
) -> Dimensions:
    """The item's own dimensions, each overridden by the supplier rule when the rule sets it."""
    if rule is None:
        return Dimensions(department=department, location=location, project=project)
    return Dimensions(
        department=rule.department or department,
        location=rule.location or location,
        project=rule.project or project,
    )
