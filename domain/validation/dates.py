"""The invoice and due dates, by the tenant's policy."""

from __future__ import annotations

import datetime as dt

from domain import problems as P
from domain.tenants import Tenant

# Payment terms beyond a year are a misread year far more often than a real agreement.
MAX_TERMS_DAYS = 366


def check_dates(
    issued: dt.date | None, due: dt.date | None, today: dt.date, tenant: Tenant, out: P.Problems
) -> None:
    """Not too far ahead, not older than the tenant allows, due on or after the date and
    within a year of it (nothing is checked without an invoice date)."""
    if issued is None:
        return
    latest = today + dt.timedelta(days=tenant.max_future_days)
    if issued > latest:
        out.add(
            P.FUTURE_DATE,
            "date",
            f"The invoice date {issued} is more than {tenant.max_future_days} days after "
            f"today ({today}){_swap_hint(issued, today, tenant)}; correct the date in Dext.",
        )
    if issued < today - dt.timedelta(days=tenant.max_invoice_age_days):
        out.add(
            P.TOO_OLD,
            "date",
            f"The invoice date {issued} is older than tenant {tenant.id}'s limit of "
            f"{tenant.max_invoice_age_days} days; check the year, or post it by hand.",
        )
    if due is not None and due < issued:
        out.add(
            P.DUE_BEFORE_DATE,
            "due_date",
            f"The due date {due} is before the invoice date {issued}; correct it in Dext.",
        )
    elif due is not None and (due - issued).days > MAX_TERMS_DAYS:
        out.add(
            P.DUE_TOO_FAR,
            "due_date",
            f"The due date {due} is more than {MAX_TERMS_DAYS} days after the invoice date "
            f"{issued}; check its year and correct it in Dext.",
        )


def _swap_hint(issued: dt.date, today: dt.date, tenant: Tenant) -> str:
    """Day and month read the wrong way round is the usual cause of a future date."""
    if issued.day > 12 or issued.day == issued.month:
        return ""
    try:
        swapped = issued.replace(month=issued.day, day=issued.month)
    except ValueError:
        return ""
    if today - dt.timedelta(days=tenant.max_invoice_age_days) <= swapped <= today:
        return f" (was it {swapped}, with day and month the other way round?)"
    return ""
