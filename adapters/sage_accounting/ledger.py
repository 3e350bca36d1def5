"""``SageAccountingLedger``: ``domain.ports.Ledger`` in Sage Accounting's terms, over one
``adapters.sage_accounting.client.SageAccountingClient``:

- suppliers are contacts of type VENDOR, found by ``search`` and matched on our side on the
  normalised name (tax number first when known), created with an ``idempotency_id`` derived
  from the normalised name so racing creators converge on one contact;
- bills are purchase invoices (credits: purchase credit notes) with ``vendor_reference`` =
  the supplier's invoice number, and ``reference`` too (cut to 25 characters), since that is
  what Sage's ``search`` covers: ``find_bill`` costs one call whatever the supplier's history,
  none for a supplier this worker created (``bills.BillBook``). Our item key rides in
  ``notes`` (Sage returns the notes, it does not return the idempotency id), which is how
  ``find_bill`` tells ours from a bill another channel made;
- the bill's ``idempotency_id`` is derived from business + supplier + invoice number, so a
  retry of the same item replays the same bill, and two items carrying the same invoice
  race to one bill, which the loser sees is not its own and reports as ``duplicate``;
- attachments have no idempotency in Sage: we look before uploading and after any
  uncertain failure, except on a bill this very call created a moment ago (it has none).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from adapters.sage_accounting.attachments import LIMITS, SageAttachments
from adapters.sage_accounting.bills import BillBook, reference_for
from adapters.sage_accounting.budget import (
    DEFAULT_BYTE_WINDOW,
    DEFAULT_CALL_WINDOW,
    WORKER_SHARE,
    Budget,
)
from adapters.sage_accounting.client import SageAccountingClient
from adapters.sage_accounting.errors import RECONNECT
from adapters.sage_accounting.oauth import Endpoints, SageOAuth, token_store_for
from adapters.sage_accounting.reference import BusinessReference
from adapters.sage_accounting.vendors import SageVendors
from adapters.sage_accounting.wire import created_at, idempotency_id
from domain.errors import LedgerError, Problem, Reason
from domain.models import Attachment, Document, DraftBill, LedgerBill, Vendor
from domain.tenants import Tenant

log = logging.getLogger(__name__)

VENDOR_REFERENCE_MAX = 31
NOTES_MAX = 2000
ITEM_MARK = "billstream item: "
_ITEM_RE = re.compile(r"(?m)^billstream item: (\S+)\s*$")
DRAFT_MODES = ("draft", "posted")
# Seconds without an answer before a call is given up and (when safe) sent again. Creates go
# one at a time per business, so a silent request holds up every bill of that business for
# this long; Sage answers a create in well under it, and the idempotency id makes the resend
# safe. (httpx applies it to each read and write, not to a whole upload.)
DEFAULT_TIMEOUT = 10.0
# A create answer younger than this (against the time we sent it, allowing for clocks) is a
# bill this request made, not the replay of an earlier one that may have an attachment.
FRESH_SKEW = dt.timedelta(seconds=2)


def _number_key(number: str) -> str:
    return number.strip().casefold()


def _dec(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        return Decimal(value)
    raise TypeError(f"not an amount: {value!r}")


class SageAccountingLedger:
    """``domain.ports.Ledger`` on one Sage Accounting business."""

    kind = "sage-accounting"
    attachment_limits = LIMITS

    def __init__(
        self,
        client: SageAccountingClient | None,
        *,
        tenant_id: str,
        draft_mode: str = "draft",
        config_error: str | None = None,
        settings_ttl: float = 60.0,
        reference_ttl: float = 600.0,
        vendor_ttl: float = 600.0,
        negative_ttl: float = 120.0,
        bill_sync_interval: float = 15.0,
    ) -> None:
        if draft_mode not in DRAFT_MODES:
            raise ValueError(f"draft mode must be one of {DRAFT_MODES}, not {draft_mode!r}")
        self._client_or_none = client
        self.tenant_id = tenant_id
        self.draft_mode = draft_mode
        self._config_error = config_error
        self._negative_ttl = negative_ttl
        self._no_bill: dict[tuple[str, str, bool], float] = {}
        self._bill_kind: dict[str, bool] = {}
        # Sage: never create sequentially numbered documents (contacts, invoices) in parallel.
        self._create_lock = asyncio.Lock()
        self.reference = BusinessReference(
            lambda: self.client, settings_ttl=settings_ttl, reference_ttl=reference_ttl
        )
        self.books = {
            credit: BillBook(
                lambda: self.client,
                list_op=f"get{self._resource(credit)[0]}",
                attributes=self._BILL_ATTRIBUTES,
                sync_interval=bill_sync_interval,
            )
            for credit in (False, True)
        }
        self.vendors = SageVendors(
            lambda: self.client,
            self._create_lock,
            vendor_ttl=vendor_ttl,
            negative_ttl=negative_ttl,
            on_created=self._new_supplier,
        )
        self.attachments = SageAttachments(lambda: self.client, negative_ttl=negative_ttl)

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_tenant(
        cls,
        tenant: Tenant,
        env: Mapping[str, str],
        token_dir: Path,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> SageAccountingLedger:
        """Credentials from ``{P}_CLIENT_ID`` / ``{P}_CLIENT_SECRET`` (P = credentials_env).

        Optional: ``{P}_REFRESH_TOKEN`` (seeds the token file the first time), ``{P}_URL``
        (a sandbox), ``{P}_DRAFT_MODE`` (``draft``, the default, or ``posted``),
        ``{P}_CALLS_PER_MINUTE`` / ``{P}_MB_PER_HOUR`` (the business's whole budget, for all
        workers together: each worker takes the part of it its partitions give it, from
        ``budget.WORKER_SHARE``),
        ``{P}_TIMEOUT`` (seconds, default ``DEFAULT_TIMEOUT``), ``{P}_VALIDATE_SCHEMA``
        (``1``: check every request and response against Sage's Swagger file).
        """
        cfg = tenant.ledger
        prefix = cfg.credentials_env
        if not prefix:
            return cls(
                None,
                tenant_id=tenant.id,
                config_error=f"tenant {tenant.id}: ledger.credentials_env must name the "
                "environment prefix of its Sage Accounting credentials",
            )
        missing = [
            f"{prefix}_{n}" for n in ("CLIENT_ID", "CLIENT_SECRET") if not env.get(f"{prefix}_{n}")
        ]
        draft_mode = (env.get(f"{prefix}_DRAFT_MODE") or "draft").strip().lower()
        if draft_mode not in DRAFT_MODES:
            return cls(
                None,
                tenant_id=tenant.id,
                config_error=f"{prefix}_DRAFT_MODE must be 'draft' or 'posted', not {draft_mode!r}",
            )
        if missing:
            return cls(
                None,
                tenant_id=tenant.id,
                config_error=f"tenant {tenant.id}: {', '.join(missing)} not set",
            )
        try:
            budget = WORKER_SHARE.enrol(
                Budget(
                    calls=int(env.get(f"{prefix}_CALLS_PER_MINUTE") or 200),
                    call_window=DEFAULT_CALL_WINDOW,
                    max_bytes=int(Decimal(env.get(f"{prefix}_MB_PER_HOUR") or 100) * 1_000_000),
                    byte_window=DEFAULT_BYTE_WINDOW,
                )
            )
            timeout = float(env.get(f"{prefix}_TIMEOUT") or DEFAULT_TIMEOUT)
            if timeout <= 0:
                raise ValueError(timeout)
        except (ValueError, ArithmeticError):
            return cls(
                None,
                tenant_id=tenant.id,
                config_error=f"{prefix}_CALLS_PER_MINUTE, {prefix}_MB_PER_HOUR and "
                f"{prefix}_TIMEOUT must be positive numbers",
            )
        endpoints = Endpoints.resolve(cfg.url, env, prefix)
        store = token_store_for(token_dir, tenant.id)
        oauth = SageOAuth(
            client_id=env[f"{prefix}_CLIENT_ID"],
            client_secret=env[f"{prefix}_CLIENT_SECRET"],
            endpoints=endpoints,
            store=store,
            tenant_id=tenant.id,
            seed_refresh_token=env.get(f"{prefix}_REFRESH_TOKEN") or None,
            timeout=timeout,
            transport=transport,
        )
        client = SageAccountingClient(
            endpoints=endpoints,
            oauth=oauth,
            business_id=cfg.company,
            tenant_id=tenant.id,
            budget=budget,
            timeout=timeout,
            validate=(env.get(f"{prefix}_VALIDATE_SCHEMA") or "").lower() in {"1", "true", "yes"},
            transport=transport,
        )
        return cls(client, tenant_id=tenant.id, draft_mode=draft_mode)

    @property
    def client(self) -> SageAccountingClient:
        if self._client_or_none is None:
            raise LedgerError(Reason.AUTH, self._config_error or "Sage Accounting not configured")
        return self._client_or_none

    def budget_snapshot(self) -> dict[str, Any]:
        """The budgets in use, for metrics: calls and bytes in the current windows."""
        if self._client_or_none is None:
            return {}
        return self._client_or_none.budget_snapshot()

    async def aclose(self) -> None:
        if self._client_or_none is not None:
            await self._client_or_none.aclose()

    # -- vendors ---------------------------------------------------------------------------------

    async def find_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor | None:
        return await self.vendors.find_vendor(name, tax_number=tax_number)

    async def create_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor:
        return await self.vendors.create_vendor(name, tax_number=tax_number)

    def _new_supplier(self, vendor_id: str, created: dt.datetime) -> None:
        for book in self.books.values():
            book.keep(vendor_id, created)

    # -- bills -----------------------------------------------------------------------------------

    @staticmethod
    def _resource(credit_note: bool) -> tuple[str, str, str]:
        """(collection op suffix, JSON resource name, lines field)."""
        if credit_note:
            return "PurchaseCreditNotes", "purchase_credit_note", "credit_note_lines"
        return "PurchaseInvoices", "purchase_invoice", "invoice_lines"

    def _ledger_bill(self, data: Mapping[str, Any], credit_note: bool) -> LedgerBill:
        status = (data.get("status") or {}).get("id") or ""
        notes = data.get("notes") or ""
        mark = _ITEM_RE.search(notes) if isinstance(notes, str) else None
        return LedgerBill(
            id=data["id"],
            vendor_id=(data.get("contact") or {}).get("id", ""),
            number=data.get("vendor_reference") or "",
            date=dt.date.fromisoformat(data["date"]),
            currency=(data.get("currency") or {}).get("id", ""),
            total=_dec(data.get("total_amount", 0)),
            credit_note=credit_note,
            state="draft" if status == "DRAFT" else status.lower() or "posted",
            item_key=mark.group(1) if mark else None,
        )

    _BILL_ATTRIBUTES = "vendor_reference,date,total_amount,currency,status,notes,contact,created_at"

    async def find_bill(
        self, vendor_id: str, number: str, *, credit_note: bool = False
    ) -> LedgerBill | None:
        book = self.books[credit_note]
        items, fresh = await book.candidates(vendor_id, number)
        wanted = _number_key(number)
        hits = sorted(
            (
                i
                for i in items
                if _number_key(i.get("vendor_reference") or "") == wanted
                and (i.get("status") or {}).get("id") != "VOID"
            ),
            key=lambda i: (str(i.get("created_at", "")), i["id"]),
        )
        key = (vendor_id, wanted, credit_note)
        for item in hits:
            bill = self._ledger_bill(item, credit_note)
            self._bill_kind[bill.id] = credit_note
            if not fresh:
                # from the book: it cannot tell a bill deleted in Sage since, so read it
                current = await self.get_bill(bill.id)
                if current is None or _number_key(current.number) != wanted:
                    book.forget(vendor_id, bill.id)
                    continue
                if current.state == "void":
                    continue
                bill = current
            self._no_bill.pop(key, None)
            return bill
        self._no_bill[key] = time.monotonic()
        return None

    async def get_bill(self, bill_id: str) -> LedgerBill | None:
        kinds = [self._bill_kind[bill_id]] if bill_id in self._bill_kind else [False, True]
        for credit in kinds:
            suffix, _, _ = self._resource(credit)
            status, data = await self.client.call(
                f"get{suffix}Key",
                key=bill_id,
                params={"attributes": self._BILL_ATTRIBUTES},
                what=f"reading bill {bill_id}",
                ok=(404,),
            )
            if status == 200 and isinstance(data, dict):
                self._bill_kind[bill_id] = credit
                return self._ledger_bill(data, credit)
        return None

    @staticmethod
    def _notes(bill: DraftBill) -> str:
        mark = f"{ITEM_MARK}{bill.item_key}"
        memo = (bill.memo or "").strip()
        room = NOTES_MAX - len(mark) - 1
        return f"{memo[:room]}\n{mark}" if memo else mark

    async def create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        number = bill.number.strip()
        if not number or len(number) > VENDOR_REFERENCE_MAX:
            raise LedgerError(
                Reason.VALIDATION,
                f"Sage Accounting keeps the supplier's invoice number in vendor_reference, at "
                f"most {VENDOR_REFERENCE_MAX} characters; {number!r} does not fit.",
                problems=[
                    Problem(
                        code="too_long" if number else "required",
                        field="number",
                        message=f"1 to {VENDOR_REFERENCE_MAX} characters",
                    )
                ],
            )
        await self.reference.check_period(bill.date)
        settings = await self.reference.financial_settings(self.reference.settings_ttl)
        base = ((settings.get("base_currency") or {}).get("id") or "").upper()
        if (
            base
            and bill.currency.upper() != base
            and settings.get("multi_currency_enabled") is False
        ):
            raise LedgerError(
                Reason.CURRENCY_MISMATCH,
                f"Sage business {self.client.business_id} works in {base} only (multi-currency "
                f"is off); the bill is in {bill.currency}.",
            )
        lines = await self.reference.invoice_lines(bill)
        suffix, resource, lines_field = self._resource(bill.credit_note)
        doc: dict[str, Any] = {
            "contact_id": vendor.id,
            "date": bill.date.isoformat(),
            "vendor_reference": number,
            "reference": reference_for(number),  # what Sage's search covers
            "notes": self._notes(bill),
            lines_field: lines,
        }
        if not bill.credit_note:
            doc["due_date"] = bill.due_date.isoformat()
        if base and bill.currency.upper() != base:
            doc["currency_id"] = bill.currency.upper()
        if self.draft_mode == "draft":
            doc["status_id"] = "DRAFT"
        base_idem = idempotency_id(
            resource, self.client.business_id, vendor.id, _number_key(number)
        )
        async with self._create_lock:
            existing = await self._recent_find(vendor.id, number, bill.credit_note)
            if existing is not None:
                if existing.item_key == bill.item_key:
                    return existing  # ours already: creating is done
                raise self._duplicate(vendor, bill, existing)
            made = await self._post_bill(suffix, resource, doc, base_idem, bill)
        self._no_bill.pop((vendor.id, _number_key(number), bill.credit_note), None)
        if made.item_key != bill.item_key:
            raise self._duplicate(vendor, bill, made)
        return made

    async def _recent_find(
        self, vendor_id: str, number: str, credit_note: bool
    ) -> LedgerBill | None:
        """find_bill, unless this worker looked a moment ago and found nothing.

        The pipeline always calls find_bill right before create_draft_bill; asking Sage twice
        would cost a call per bill for nothing. The idempotency id still catches a race.
        """
        key = (vendor_id, _number_key(number), credit_note)
        seen = self._no_bill.pop(key, None)
        if seen is not None and time.monotonic() - seen <= self._negative_ttl:
            return None
        return await self.find_bill(vendor_id, number, credit_note=credit_note)

    def _duplicate(self, vendor: Vendor, bill: DraftBill, existing: LedgerBill) -> LedgerError:
        owner = f"item {existing.item_key}" if existing.item_key else "another channel"
        return LedgerError(
            Reason.DUPLICATE,
            f"Bill {bill.number} from {vendor.name} already exists in Sage as {existing.id} "
            f"(created by {owner}).",
            detail={"bill_id": existing.id, "item_key": existing.item_key},
        )

    async def _post_bill(
        self, suffix: str, resource: str, doc: dict[str, Any], base_idem: str, bill: DraftBill
    ) -> LedgerBill:
        idem = base_idem
        for _ in range(3):
            sent_at = dt.datetime.now(dt.UTC)
            _, data = await self.client.call(
                f"post{suffix}",
                body={resource: {**doc, "idempotency_id": idem}},
                write=True,
                what=f"creating bill {bill.number}",
            )
            made = self._ledger_bill(data, bill.credit_note)
            self._bill_kind[made.id] = bill.credit_note
            self.books[bill.credit_note].add(data)
            created = created_at(data)
            if created is not None and created >= sent_at - FRESH_SKEW:
                self.attachments.created_empty(made.id)
            if created is None or created >= sent_at - dt.timedelta(seconds=120):
                return made
            # An old answer is a replay of an earlier create; if that bill has since been
            # deleted in Sage, replaying it would "create" nothing. Check, and if it is gone
            # post again under an id salted with the deleted bill (stable for all retries).
            if await self.get_bill(made.id) is not None:
                return made
            log.info("sage-accounting: bill %s was deleted; creating it again", made.id)
            idem = idempotency_id(base_idem, made.id)
        raise LedgerError(
            Reason.UNAVAILABLE, f"Sage kept replaying deleted bills for {bill.number}."
        )

    async def release(self, bill: LedgerBill) -> LedgerBill:
        """Post a draft (``/release``): not part of the port; for operators and tests."""
        suffix, _, _ = self._resource(bill.credit_note)
        _, data = await self.client.call(
            f"post{suffix}KeyRelease", key=bill.id, write=True, what=f"releasing {bill.id}"
        )
        return self._ledger_bill(data, bill.credit_note)

    # -- attachments -----------------------------------------------------------------------------

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None:
        return await self.attachments.find_attachment(bill)

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        return await self.attachments.attach_document(bill, document)

    # -- periods and health ----------------------------------------------------------------------

    async def period_is_open(self, day: dt.date) -> bool:
        return await self.reference.period_is_open(day)

    async def next_open_day(self, day: dt.date) -> dt.date | None:
        return await self.reference.next_open_day(day)

    async def unknown_gl_accounts(self, codes: Collection[str]) -> list[str]:
        """The codes (nominal codes or names) the chart of accounts lacks; read-only."""
        return await self.reference.unknown_gl_accounts(codes)

    async def unknown_tax_codes(self, codes: Collection[str]) -> list[str]:
        """The tax codes (ids or names) that are not tax rates of the business; read-only."""
        return await self.reference.unknown_tax_codes(codes)

    async def check_connection(self) -> None:
        """Token, business and permissions in one call; raises ``auth``/``unavailable``."""
        try:
            await self.reference.financial_settings(0)
        except LedgerError as exc:
            if exc.reason is Reason.VALIDATION:  # 404: no such business for this user
                raise LedgerError(
                    Reason.AUTH,
                    f"Sage business {self.client.business_id} is not reachable with tenant "
                    f"{self.tenant_id}'s connection ({exc.message}); check ledger.company or "
                    f"reconnect with `{RECONNECT.format(tenant=self.tenant_id)}`.",
                ) from None
            raise
