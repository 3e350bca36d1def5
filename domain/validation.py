"""Turn a Dext item into a clean invoice and a coded draft bill, or name every problem at once.

The validate stage calls ``validate_item`` and nothing else; the CLI ``billstream validate``
calls it too, so the pipeline and the command can never disagree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.dext import document_ref, item_id
from domain.errors import Problem, Reason
from domain.models import (
    BillLine,
    Dimensions,
    DraftBill,
    Invoice,
    InvoiceLine,
    item_key,
)
from domain.money import ISO_4217, round_money
from domain.normalize import vendor_match_key
from domain.tenants import Tenant

KNOWN_FIELDS = frozenset(
    [
        "id",
        "type",
        "payee",
        "payee_id",
        "supplier",
        "invoice_number",
        "date",
        "due_date",
        "currency",
        "total_amount",
        "vat_amount",
        "category",
        "category_id",
        "category_code",
        "description",
        "payment_method",
        "payment_method_ref",
        "paid",
        "base_currency",
        "base_total",
        "base_vat",
        "line_items",
        "document",
        "document_url",
        "image_url",
        "status",
        "client",
        "project",
        "payee_tax_number",
    ]
)


class ValidationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    item: str | None
    ok: bool
    reason: Reason | None = None
    problems: list[Problem] = []
    invoice: Invoice | None = None
    bill: DraftBill | None = None


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, code: str, field: str, message: str) -> None:
        self.problems.append(Problem(code=code, field=field, message=message))


def _money(value: Any, field: str, out: _Collector, *, required: bool = True) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            out.add("missing", field, f"{field} is missing; enter the amount in Dext.")
        return None
    if isinstance(value, bool | float):
        out.add("invalid_amount", field, f"{field} must be a decimal amount, got {value!r}.")
        return None
    text = str(value).strip()
    negative = text.startswith("(") and text.endswith(")")
    text = re.sub(r"[^\d.,\-+]", "", text.strip("()"))
    text = text.replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        out.add("invalid_amount", field, f"{field} is not an amount: {value!r}.")
        return None
    if not amount.is_finite():
        out.add("invalid_amount", field, f"{field} is not a finite amount: {value!r}.")
        return None
    return -amount if negative else amount


def _date(value: Any, field: str, out: _Collector, *, required: bool) -> dt.date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            out.add("missing", field, f"{field} is missing; enter the date in Dext.")
        return None
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        out.add("invalid_date", field, f"{field} is not a valid date: {value!r}.")
        return None


def _text(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def validate_item(item: Mapping[str, Any], tenant: Tenant, *, today: dt.date) -> ValidationResult:
    """Validate, normalise and GL-code one Dext item for one tenant. Pure; never raises."""
    out = _Collector()
    dext_id = item_id(item)
    if dext_id is None:
        out.add("missing", "id", "The item has no Dext id.")
    supplier = _text(item, "payee") or _text(item, "supplier")
    if supplier is None:
        out.add("missing", "payee", "The supplier (payee) is missing; set it in Dext.")
    number = _text(item, "invoice_number")
    if number is None:
        out.add("missing", "invoice_number", "The invoice number is missing; set it in Dext.")
    currency = (_text(item, "currency") or "").upper()
    if not currency:
        out.add("missing", "currency", "The currency is missing; set it in Dext.")
    elif currency not in ISO_4217:
        out.add("invalid_currency", "currency", f"{currency!r} is not an ISO 4217 currency code.")
        currency = ""
    issued = _date(item.get("date"), "date", out, required=True)
    due = _date(item.get("due_date"), "due_date", out, required=False)
    total = _money(item.get("total_amount"), "total_amount", out)
    tax = _money(item.get("vat_amount"), "vat_amount", out, required=False) or Decimal(0)
    credit = str(item.get("type", "")).lower().replace("_", " ") in {"credit note", "refund"} or (
        total is not None and total < 0
    )
    tolerance = tenant.tolerance
    lines: list[InvoiceLine] = []
    raw_lines = item.get("line_items") or []
    if not isinstance(raw_lines, list):
        out.add("invalid", "line_items", "line_items must be a list.")
        raw_lines = []
    for i, raw in enumerate(raw_lines):
        f = f"line_items[{i}]"
        if not isinstance(raw, Mapping):
            out.add("invalid", f, "A line item must be an object.")
            continue
        l_net = _money(raw.get("net_amount"), f"{f}.net_amount", out)
        l_tax = _money(raw.get("tax_amount"), f"{f}.tax_amount", out, required=False) or Decimal(0)
        l_total = _money(raw.get("total_amount"), f"{f}.total_amount", out)
        if l_net is None or l_total is None:
            continue
        if abs(l_net + l_tax - l_total) > tolerance:
            out.add(
                "line_arithmetic",
                f,
                f"Line {i + 1}: net {l_net} + tax {l_tax} = {l_net + l_tax}, not the line "
                f"total {l_total}.",
            )
        qty = _money(raw.get("quantity"), f"{f}.quantity", out, required=False) or Decimal(1)
        unit = _money(raw.get("unit_price"), f"{f}.unit_price", out, required=False)
        rate = _money(raw.get("tax_rate"), f"{f}.tax_rate", out, required=False)
        lines.append(
            InvoiceLine(
                description=_text(raw, "description") or _text(item, "description") or "",
                category=_text(raw, "category") or _text(item, "category"),
                category_code=_text(raw, "category_code")
                or (None if _text(raw, "category") else _text(item, "category_code")),
                quantity=qty,
                unit_price=unit,
                net=abs(l_net),
                tax=abs(l_tax),
                total=abs(l_total),
                tax_rate=rate,
            )
        )
    if total is not None:
        net = total - tax
        if not raw_lines:
            lines.append(
                InvoiceLine(
                    description=_text(item, "description") or (supplier or ""),
                    category=_text(item, "category"),
                    category_code=_text(item, "category_code"),
                    net=abs(net),
                    tax=abs(tax),
                    total=abs(total),
                )
            )
        elif lines and len(lines) == len(raw_lines):
            s_total = sum((ln.total for ln in lines), Decimal(0))
            if abs(s_total - abs(total)) > tolerance:
                out.add(
                    "lines_total",
                    "line_items",
                    f"The lines add up to {s_total}, but the invoice total is {abs(total)}.",
                )
    if issued is not None:
        if issued > today + dt.timedelta(days=tenant.max_future_days):
            out.add("future_date", "date", f"The invoice date {issued} is in the future.")
        if issued < today - dt.timedelta(days=tenant.max_invoice_age_days):
            out.add("too_old", "date", f"The invoice date {issued} is older than the policy.")
    if due is not None and issued is not None and due < issued:
        out.add("due_before_date", "due_date", f"The due date {due} is before the date {issued}.")

    # Tenant-level checks: currency enabled, GL mapping present.
    config_problems = _Collector()
    if currency and currency not in tenant.currencies:
        config_problems.add(
            "currency_mismatch",
            "currency",
            f"{currency} is not enabled for {tenant.ledger.company} "
            f"(allowed: {', '.join(tenant.currencies)}).",
        )
    rule = tenant.supplier_rule(supplier) if supplier else None
    bill_lines: list[BillLine] = []
    for i, ln in enumerate(lines):
        account = rule.gl_account if rule and rule.gl_account else None
        account = account or _gl_account(tenant, ln.category_code, ln.category)
        if account is None:
            shown = ln.category or ln.category_code or "(none)"
            config_problems.add(
                "mapping_missing",
                f"line_items[{i}].category" if raw_lines else "category",
                f"Category {shown!r} has no GL account in the mapping of tenant {tenant.id}.",
            )
            continue
        tax_code = rule.tax_code if rule and rule.tax_code else None
        if tax_code is None and ln.tax_rate is not None:
            tax_code = tenant.tax_codes.get(_rate_key(ln.tax_rate))
        cur = currency or tenant.base_currency
        bill_lines.append(
            BillLine(
                description=ln.description or supplier or "",
                gl_account=account,
                quantity=ln.quantity,
                unit_price=round_money(ln.unit_price or ln.net / (ln.quantity or 1), cur),
                net=round_money(ln.net, cur),
                tax=round_money(ln.tax, cur),
                total=round_money(ln.total, cur),
                tax_code=tax_code,
                tax_rate=ln.tax_rate,
                dimensions=Dimensions(
                    department=rule.department if rule else None,
                    location=rule.location if rule else None,
                    project=rule.project if rule else None,
                ),
            )
        )

    unknown = {k: v for k, v in item.items() if k not in KNOWN_FIELDS}
    if out.problems or config_problems.problems:
        reason = Reason.VALIDATION
        if not out.problems:
            codes = {p.code for p in config_problems.problems}
            reason = (
                Reason.CURRENCY_MISMATCH if "currency_mismatch" in codes else Reason.MAPPING_MISSING
            )
        return ValidationResult(
            item=dext_id, ok=False, reason=reason, problems=out.problems + config_problems.problems
        )
    assert dext_id and supplier and number and issued and total is not None
    terms = rule.terms_days if rule and rule.terms_days is not None else tenant.default_terms_days
    due_date = due or issued + dt.timedelta(days=terms)
    invoice = Invoice(
        dext_id=dext_id,
        supplier=supplier,
        supplier_tax_number=_text(item, "payee_tax_number"),
        number=number,
        date=issued,
        due_date=due_date,
        currency=currency,
        net=round_money(abs(total - tax), currency),
        tax=round_money(abs(tax), currency),
        total=round_money(abs(total), currency),
        credit_note=credit,
        description=_text(item, "description"),
        category=_text(item, "category"),
        payment_method=_text(item, "payment_method"),
        paid=item.get("paid") if isinstance(item.get("paid"), bool) else None,
        lines=lines,
        document=document_ref(item),
        extra=unknown,
    )
    bill = DraftBill(
        item_key=item_key(tenant.id, dext_id),
        vendor_name=supplier,
        vendor_match_key=vendor_match_key(supplier),
        vendor_tax_number=invoice.supplier_tax_number,
        number=number,
        date=issued,
        due_date=due_date,
        currency=currency,
        credit_note=credit,
        net=invoice.net,
        tax=invoice.tax,
        total=invoice.total,
        memo=invoice.description,
        lines=bill_lines,
    )
    return ValidationResult(item=dext_id, ok=True, invoice=invoice, bill=bill)


def _rate_key(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _gl_account(tenant: Tenant, code: str | None, name: str | None) -> str | None:
    for key in (code, name):
        if key and key in tenant.gl_accounts:
            return tenant.gl_accounts[key]
    if name:
        folded = {k.casefold(): v for k, v in tenant.gl_accounts.items()}
        return folded.get(name.casefold())
    return None
