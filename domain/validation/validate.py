"""``validate_item``: the five steps in order, each adding problems rather than stopping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain import problems as P
from domain.errors import Problem, Reason
from domain.models import DraftBill, Invoice
from domain.money import quantum
from domain.tenants import Tenant
from domain.validation.arithmetic import check_amounts, orient
from domain.validation.building import build
from domain.validation.coding import check_currency, code
from domain.validation.dates import check_dates
from domain.validation.fields import read_item
from domain.validation.reading import Reader


class ValidationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    item: str | None
    ok: bool
    reason: Reason | None = None
    problems: list[Problem] = []
    invoice: Invoice | None = None
    bill: DraftBill | None = None


def validate_item(item: Mapping[str, Any], tenant: Tenant, *, today: dt.date) -> ValidationResult:
    """Validate, normalise and GL-code one Dext item for one tenant. Pure; never raises."""
    try:
        return _validate(item, tenant, today)
    except Exception as exc:
        # A poison item must park with a reason, not crash the stage into a retry loop.
        # The tests feed arbitrary items to prove this branch is never taken.
        ident = item.get("id") if isinstance(item, Mapping) else None
        return ValidationResult(
            item=str(ident) if isinstance(ident, str | int) else None,
            ok=False,
            reason=Reason.VALIDATION,
            problems=[
                Problem(
                    code=P.INTERNAL,
                    field="",
                    message=f"billstream could not validate this item ({type(exc).__name__}); "
                    "report it to the billstream team with the item's id.",
                )
            ],
        )


def _validate(item: Mapping[str, Any], tenant: Tenant, today: dt.date) -> ValidationResult:
    out = P.Problems()
    if not isinstance(item, Mapping):
        out.add(P.INVALID, "", "The item is not a JSON object; it cannot be a Dext item.")
        return _result(None, out, P.Problems())

    # 1. Read every field.
    f = read_item(Reader(tenant, out), item, tenant)

    cur = f.currency or tenant.base_currency
    tol = tenant.tolerance_for(cur)
    unit = quantum(cur)

    # 2. Direction: a credit note is posted as positive amounts marked credit_note.
    tax_h = orient(f, out, cur, tol)

    # 3. Arithmetic, on the amounts as written.
    check_amounts(f, tax_h, out, cur, tol, unit)

    # Dates, by the tenant's policy.
    check_dates(f.issued, f.due, today, tenant, out)

    # 4. The tenant's configuration.
    cfg = P.Problems()
    check_currency(f.currency, tenant, cfg)
    rule = tenant.supplier_rule(f.supplier) if f.supplier else None
    coded = code(f.lines, tenant, rule, out, cfg, tol + unit / 2)

    if out or cfg:
        return _result(f.dext_id, out, cfg)

    # 5. Round, balance, and build.
    invoice, bill = build(item, f, tenant, rule, coded, tax_h)
    return ValidationResult(item=f.dext_id, ok=True, invoice=invoice, bill=bill)


def _result(dext_id: str | None, out: P.Problems, cfg: P.Problems) -> ValidationResult:
    found = out.items + cfg.items
    return ValidationResult(item=dext_id, ok=False, reason=P.reason_of(found), problems=found)
