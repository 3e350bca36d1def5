"""Bills in the Sage Accounting sandbox: purchase invoices and purchase credit notes.

Created as DRAFT or UNPAID (a draft is released with ``/release``), refused on or before
the lock date, with lines whose net and tax are rounded as Sage rounds them; listed (with
Sage's filters: ``contact_id``, ``status_id``, ``search`` on the reference or contact name,
``from_date``/``to_date``, ``updated_or_created_since``, ``has_attachments``), read,
deleted (not in a locked period), and removed with their attachments by the admin.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from domain.money import round_money
from sandboxes.sage_accounting.answers import (
    ApiError,
    base_object,
    issue,
    moment,
    new_id,
    now_iso,
    query_day,
    query_moment,
    sage_json,
)
from sandboxes.sage_accounting.core import SageCore
from sandboxes.sage_accounting.state import Business


class BillsMixin(SageCore):
    """``/purchase_invoices`` and ``/purchase_credit_notes``."""

    def _amount(self, value: Any, source: str, issues: list[dict[str, str]]) -> Decimal | None:
        if value is None:
            return None
        try:
            return Decimal(value) if not isinstance(value, Decimal) else value
        except (InvalidOperation, TypeError):
            issues.append(issue(source, "is not a number"))
            return None

    def _make_bill(self, biz: Business, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        credit = kind == "purchase_credit_notes"
        lines_field = "credit_note_lines" if credit else "invoice_lines"
        issues: list[dict[str, str]] = []
        contact, day, due, currency, status = self._bill_header(biz, doc, credit, issues)
        lines_out, net_sum, tax_sum = self._bill_lines(
            biz, doc[lines_field], lines_field, currency, issues
        )
        if issues:
            raise ApiError(422, issues)
        assert contact is not None
        bid = new_id()
        n = biz.next_number()
        prefix = "PC" if credit else "PI"
        now = now_iso()
        ttype = "PURCHASE_CREDIT_NOTE" if credit else "PURCHASE_INVOICE"
        bill: dict[str, Any] = {
            **base_object(kind, bid, doc.get("vendor_reference") or f"{prefix}-{n}"),
            "created_at": now,
            "updated_at": now,
            "editable": True,
            "transaction_type": base_object(
                "transaction_types", ttype, ttype.replace("_", " ").title()
            ),
            "contact": base_object("contacts", contact["id"], contact["displayed_as"]),
            "contact_name": contact["name"],
            "contact_reference": contact.get("reference", ""),
            "date": day.isoformat(),
            "reference": str(doc.get("reference") or f"{prefix}-{n}"),
            "vendor_reference": str(doc.get("vendor_reference") or ""),
            "notes": str(doc.get("notes") or ""),
            "total_quantity": sum((ln["quantity"] for ln in lines_out), Decimal(0)),
            "net_amount": net_sum,
            "tax_amount": tax_sum,
            "total_amount": net_sum + tax_sum,
            "outstanding_amount": net_sum + tax_sum,
            "total_paid": Decimal("0.00"),
            "currency": base_object("currencies", currency, currency),
            "exchange_rate": Decimal(1),
            "status": base_object(
                "artefact_statuses", status, "Draft" if status == "DRAFT" else "Unpaid"
            ),
            lines_field: lines_out,
        }
        if due is not None:
            bill["due_date"] = due.isoformat()
        return bill

    def _bill_header(
        self, biz: Business, doc: dict[str, Any], credit: bool, issues: list[dict[str, str]]
    ) -> tuple[dict[str, Any] | None, dt.date, dt.date | None, str, str]:
        """The supplier, dates, currency and status of a new bill; problems go to ``issues``."""
        contact = biz.contacts.get(doc["contact_id"])
        if contact is None or not any(t["id"] == "VENDOR" for t in contact["contact_types"]):
            issues.append(issue("contact_id", "Contact is not a valid supplier"))
        try:
            day = dt.date.fromisoformat(doc["date"])
        except ValueError:
            raise ApiError(422, [issue("date", "is not a valid date")]) from None
        if biz.lock_date is not None and day <= biz.lock_date:
            issues.append(
                issue(
                    "date",
                    f"The date must be after the lock date ({biz.lock_date.isoformat()}); "
                    "transactions in a locked period cannot be created.",
                )
            )
        if biz.accounts_start is not None and day < biz.accounts_start:
            issues.append(issue("date", "must be on or after the accounts start date"))
        due = None
        if not credit:
            due = dt.date.fromisoformat(doc["due_date"])
            if due < day:
                issues.append(issue("due_date", "must be on or after the invoice date"))
        for name, limit in (("vendor_reference", 31), ("reference", 25), ("notes", 2000)):
            if len(str(doc.get(name) or "")) > limit:
                issues.append(issue(name, f"is too long (maximum is {limit} characters)"))
        currency = str(doc.get("currency_id") or biz.base_currency)
        if currency != biz.base_currency and (
            not biz.multi_currency or currency not in biz.currencies
        ):
            issues.append(issue("currency_id", f"Currency {currency} is not enabled"))
        status = doc.get("status_id") or "UNPAID"
        if status not in {"DRAFT", "UNPAID"}:
            issues.append(issue("status_id", f"Status {status} cannot be set on create"))
        return contact, day, due, currency, status

    def _bill_lines(
        self,
        biz: Business,
        lines_in: list[dict[str, Any]],
        lines_field: str,
        currency: str,
        issues: list[dict[str, str]],
    ) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
        """A new bill's lines with their net and tax amounts, and the sums of both."""
        if not lines_in:
            issues.append(issue(lines_field, "at least one line is required"))
        lines_out = []
        net_sum = tax_sum = Decimal(0)
        for i, ln in enumerate(lines_in):
            src = f"{lines_field}[{i}]"
            account = biz.ledger_accounts.get(ln["ledger_account_id"])
            if account is None:
                issues.append(issue(f"{src}.ledger_account_id", "Ledger account is invalid"))
            rate = None
            if "tax_rate_id" in ln:
                rate = biz.tax_rates.get(ln["tax_rate_id"])
                if rate is None:
                    issues.append(issue(f"{src}.tax_rate_id", "Tax rate is invalid"))
            qty = self._amount(ln["quantity"], f"{src}.quantity", issues) or Decimal(0)
            price = self._amount(ln["unit_price"], f"{src}.unit_price", issues) or Decimal(0)
            tax = self._amount(ln.get("tax_amount"), f"{src}.tax_amount", issues)
            if tax is None:
                if rate is not None and rate["percentage"] > 0:
                    issues.append(issue(f"{src}.tax_amount", "This field is required."))
                tax = Decimal(0)
            if ln.get("unit_price_includes_tax"):
                net = round_money(qty * price - tax, currency)
            else:
                net = round_money(qty * price, currency)
            tax = round_money(tax, currency)
            net_sum += net
            tax_sum += tax
            line: dict[str, Any] = {
                "id": new_id(),
                "displayed_as": str(ln["description"]),
                "quantity": qty,
                "unit_price": price,
                "net_amount": net,
                "tax_amount": tax,
                "total_amount": net + tax,
                "unit_price_includes_tax": bool(ln.get("unit_price_includes_tax", False)),
            }
            if account is not None:
                line["ledger_account"] = base_object(
                    "ledger_accounts", account["id"], account["displayed_as"]
                )
            if rate is not None:
                line["tax_rate"] = base_object("tax_rates", rate["id"], rate["displayed_as"])
            lines_out.append(line)
        return lines_out, net_sum, tax_sum

    async def post_bill(self, request: web.Request, biz: Business, body: Any) -> web.Response:
        kind = request.match_info.route.resource.canonical.strip("/").split("/")[1]  # type: ignore[union-attr]
        singular = "purchase_credit_note" if kind == "purchase_credit_notes" else "purchase_invoice"
        doc = body[singular]
        replay = self._replay(biz, singular, doc)
        if replay is not None:
            return replay
        bill = self._make_bill(biz, kind, doc)
        biz.collection(kind)[bill["id"]] = bill
        self._remember(biz, singular, doc, 201, bill)
        self._dirty = True
        return sage_json(bill, 201)

    async def get_bills(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        kind = self._kind(request)
        q = request.query
        items = sorted(biz.collection(kind).values(), key=lambda b: (b["created_at"], b["id"]))
        if q.get("contact_id"):
            items = [b for b in items if b["contact"]["id"] == q["contact_id"]]
        if q.get("status_id"):
            items = [b for b in items if b["status"]["id"] == q["status_id"]]
        # Sage's search covers what its Swagger says, the reference and the contact name,
        # as a case-insensitive substring: never vendor_reference.
        term = q.get("search", "").casefold()
        if term:
            items = [
                b
                for b in items
                if term in b["reference"].casefold() or term in b["contact_name"].casefold()
            ]
        first, last = query_day(q, "from_date"), query_day(q, "to_date")
        if first is not None:
            items = [b for b in items if b["date"] >= first.isoformat()]
        if last is not None:
            items = [b for b in items if b["date"] <= last.isoformat()]
        since = query_moment(q, "updated_or_created_since")
        if since is not None:
            # inclusive, as the Swagger says; updated_at is never before created_at
            items = [b for b in items if moment(b["updated_at"]) >= since]
        if "has_attachments" in q:
            attached = {
                a["attachment_context"]["id"]
                for a in biz.attachments.values()
                if "attachment_context" in a
            }
            wanted = q["has_attachments"] == "true"
            items = [b for b in items if (b["id"] in attached) == wanted]
        if "sort" in q and q["sort"].startswith(("date", "created_at", "updated_at")):
            name, _, direction = q["sort"].partition(":")
            items.sort(key=lambda b: str(b.get(name, "")), reverse=direction == "desc")
        return self._page(request, f"/{kind}", items)

    async def get_bill(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        bill = biz.collection(self._kind(request)).get(request.match_info["key"])
        if bill is None:
            raise ApiError(404, [issue("key", "Record not found", "RecordNotFound")])
        return sage_json(self._project(bill, request.query.get("attributes", "all")))

    async def delete_bill(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        kind = self._kind(request)
        bill = biz.collection(kind).get(request.match_info["key"])
        if bill is None:
            raise ApiError(404, [issue("key", "Record not found", "RecordNotFound")])
        if biz.lock_date is not None and dt.date.fromisoformat(bill["date"]) <= biz.lock_date:
            raise ApiError(422, [issue("date", "The bill is in a locked period.")])
        self.remove_bill(biz, bill["id"])
        return web.Response(status=204)

    async def release_bill(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        bill = biz.collection(self._kind(request)).get(request.match_info["key"])
        if bill is None:
            raise ApiError(404, [issue("key", "Record not found", "RecordNotFound")])
        if bill["status"]["id"] != "DRAFT":
            raise ApiError(422, [issue("status_id", "Only a draft can be released.")])
        bill["status"] = base_object("artefact_statuses", "UNPAID", "Unpaid")
        bill["updated_at"] = now_iso()
        self._dirty = True
        return sage_json(bill, 201)

    def remove_bill(self, biz: Business, bill_id: str) -> bool:
        found = False
        for kind in ("purchase_invoices", "purchase_credit_notes"):
            found = biz.collection(kind).pop(bill_id, None) is not None or found
        for aid in [
            a for a, att in biz.attachments.items() if att["attachment_context"]["id"] == bill_id
        ]:
            biz.attachments.pop(aid)
            biz.files.pop(aid, None)
        self._dirty = True
        return found
