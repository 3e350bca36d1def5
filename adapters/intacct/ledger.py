"""``IntacctLedger``: the ``domain.ports.Ledger`` port on one Sage Intacct company.

Vendors and bills (credit notes as AP adjustments) through the generic ``query``/``create``/
``update`` functions, attachments through the legacy ``create_supdoc``/``create_supdocfolder``/
``get``, closed periods and the chart through queries. Every request goes through one shared
``adapters.intacct.client.IntacctClient``, which batches, limits and retries.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from xml.etree.ElementTree import Element

from adapters.intacct.attachments import LIMITS, SupdocAttachments
from adapters.intacct.caching import KeyedLocks, KnownVendors, MissCache
from adapters.intacct.client import (
    DEFAULT_BATCH_WINDOW,
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_BATCH,
    IntacctClient,
    IntacctCredentials,
    RequestRetries,
)
from adapters.intacct.errors import (
    clashing_value,
    classify,
    is_already_exists,
    is_repeated_controlid,
    ledger_error,
)
from adapters.intacct.keys import (
    derived_vendor_id,
    read_controlid,
    write_controlid,
)
from adapters.intacct.queries import (
    ADJUSTMENT,
    BILL,
    BILL_FIELDS,
    PERIOD_OBJECT,
    VENDOR_FIELDS,
    all_of,
    any_of,
    bill_element,
    bill_object,
    cond,
    created_bill,
    is_active,
    ledger_bill,
    pick_vendor,
    probe_word,
    query_element,
    vendor_of,
)
from adapters.intacct.xml import (
    ErrorDetail,
    Function,
    Result,
    element,
    format_date,
    parse_date,
)
from domain.errors import LedgerError, Reason, is_transient
from domain.models import Attachment, Document, DraftBill, LedgerBill, Vendor
from domain.normalize import vendor_match_key
from domain.tenants import Tenant

DEFAULT_FOLDER = "billstream"

log = logging.getLogger("billstream.intacct")

_REQUIRED_ENV = ("SENDER_ID", "SENDER_PASSWORD", "USER_ID", "USER_PASSWORD")


def _client_from_env(tenant: Tenant, env: Mapping[str, str]) -> tuple[IntacctClient, str, str]:
    """The client, vendor id policy and supdoc folder a tenant's environment names."""
    prefix = tenant.ledger.credentials_env or "BILLSTREAM_INTACCT"

    def get(name: str) -> str:
        return env.get(f"{prefix}_{name}", "").strip()

    missing = [f"{prefix}_{name}" for name in _REQUIRED_ENV if not get(name)]
    if missing:
        raise LedgerError(
            Reason.AUTH,
            f"Sage Intacct credentials for tenant {tenant.id} are not set: {', '.join(missing)}.",
            detail={"missing": missing},
        )

    def number(name: str, default: float, *, integer: bool = True) -> Any:
        raw = get(name)
        if not raw:
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise LedgerError(
                Reason.AUTH, f"{prefix}_{name} must be a positive number, not {raw!r}."
            )
        return value

    policy = get("VENDOR_IDS") or "derived"
    if policy not in {"derived", "auto"}:
        raise LedgerError(
            Reason.AUTH, f"{prefix}_VENDOR_IDS must be 'derived' or 'auto', not {policy!r}."
        )
    credentials = IntacctCredentials(
        sender_id=get("SENDER_ID"),
        sender_password=get("SENDER_PASSWORD"),
        company_id=tenant.ledger.company,
        user_id=get("USER_ID"),
        user_password=get("USER_PASSWORD"),
        entity_id=get("ENTITY_ID") or None,
    )
    # Milliseconds; 0 turns the window off (a function then waits only for a free slot).
    window_ms = get("BATCH_WINDOW_MS")
    window = DEFAULT_BATCH_WINDOW
    if window_ms:
        window = 0.0 if window_ms == "0" else number("BATCH_WINDOW_MS", 0, integer=False) / 1000
    client = IntacctClient(
        credentials,
        endpoint=tenant.ledger.url or get("URL") or DEFAULT_ENDPOINT,
        concurrency=number("CONCURRENCY", DEFAULT_CONCURRENCY),
        max_batch=number("MAX_BATCH", DEFAULT_MAX_BATCH),
        batch_window=window,
        timeout=number("TIMEOUT", 120.0, integer=False),
        retry=RequestRetries(attempts=number("RETRY_ATTEMPTS", RequestRetries.attempts)),
    )
    return client, policy, get("SUPDOC_FOLDER") or DEFAULT_FOLDER


class IntacctLedger:
    """``domain.ports.Ledger`` on one Intacct company."""

    kind = "intacct"
    attachment_limits = LIMITS

    def __init__(
        self,
        client: IntacctClient,
        *,
        vendor_ids: Literal["derived", "auto"] = "derived",
        folder: str = DEFAULT_FOLDER,
    ) -> None:
        self.client = client
        self.vendor_ids = vendor_ids
        self._vendor_locks = KeyedLocks()
        self._period_warned = False
        # Lookups that just found nothing: the pipeline looks before it writes, so the write
        # need not look again moments later.
        self._misses = MissCache()
        self._vendors = KnownVendors()
        self.attachments = SupdocAttachments(client, self._misses, folder)

    @property
    def folder(self) -> str:
        """The supdoc folder attachments go to."""
        return self.attachments.folder

    @property
    def company(self) -> str:
        return self.client.company_id

    @classmethod
    def from_tenant(cls, tenant: Tenant, env: Mapping[str, str]) -> IntacctLedger:
        """Credentials from ``{credentials_env}_SENDER_ID`` etc.; company from the tenant."""
        client, policy, folder = _client_from_env(tenant, env)
        return cls(client, vendor_ids="auto" if policy == "auto" else "derived", folder=folder)

    async def _run(
        self, functions: Sequence[Function], *, write: bool = False, transaction: bool = False
    ) -> list[Result]:
        return await self.client.execute(functions, write=write, transaction=transaction)

    async def _query(self, query: Element, what: str) -> Result:
        [res] = await self._run([Function(read_controlid("query"), query)])
        if not res.ok:
            raise ledger_error(res.errors, what=what)
        return res

    async def _query_all(
        self,
        obj: str,
        fields: Sequence[str],
        where: Element,
        *,
        what: str,
        caseinsensitive: bool = False,
        orderby: str | None = None,
        max_pages: int = 5,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page in range(max_pages):
            res = await self._query(
                query_element(
                    obj,
                    fields,
                    where,
                    caseinsensitive=caseinsensitive,
                    orderby=orderby,
                    pagesize=2000,
                    offset=page * 2000,
                ),
                what,
            )
            rows.extend(res.records())
            if res.numremaining <= 0:
                break
        return rows

    # -- vendors --------------------------------------------------------------------------

    async def find_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor | None:
        key = vendor_match_key(name)
        known: Vendor | None = self._vendors.get((key, tax_number or ""))
        if known is not None:
            return known
        rows = await self._vendor_rows(name, key, tax_number)
        found = pick_vendor(rows, key, tax_number)
        if found is None:
            self._misses.remember(("vendor", key, tax_number or ""))
        else:
            self._vendors.put((key, tax_number or ""), found)
        return found

    async def _vendor_rows(
        self, name: str, key: str, tax_number: str | None
    ) -> list[dict[str, Any]]:
        # Intacct cannot filter on our normalised name, so cast a net the server can evaluate
        # (derived id, exact name, a distinctive word, tax id) and match precisely here.
        conds = [cond("equalto", "VENDORID", derived_vendor_id(key))]
        if name.strip():
            conds.append(cond("equalto", "NAME", name.strip()))
        word = probe_word(name, key)
        if word:
            conds.append(cond("like", "NAME", f"%{word}%"))
        if tax_number and tax_number.strip():
            conds.append(cond("equalto", "TAXID", tax_number.strip()))
            compact = re.sub(r"[^0-9A-Za-z]", "", tax_number)
            if len(compact) >= 5:
                # Tax ids are stored as typed ("GB 123 4567 89"): match any spacing here and
                # compare the compact forms below.
                conds.append(cond("like", "TAXID", "%" + "%".join(compact) + "%"))
        return await self._query_all(
            "VENDOR",
            VENDOR_FIELDS,
            any_of(*conds),
            what=f"the lookup of vendor {name!r}",
            caseinsensitive=True,
            orderby="RECORDNO",
        )

    async def _vendor_by_id(self, vendor_id: str) -> dict[str, Any] | None:
        res = await self._query(
            query_element("VENDOR", VENDOR_FIELDS, cond("equalto", "VENDORID", vendor_id)),
            f"the lookup of vendor {vendor_id}",
        )
        rows = res.records()
        return rows[0] if rows else None

    async def create_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor:
        key = vendor_match_key(name)
        try:
            vendor = await self._create_vendor_once(name, key, tax_number)
            self._vendors.put((key, tax_number or ""), vendor)
            return vendor
        finally:
            # Lookups made on the way are stale once we have written.
            self._misses.forget(("vendor", key, tax_number or ""))

    async def _create_vendor_once(self, name: str, key: str, tax_number: str | None) -> Vendor:
        async with self._vendor_locks.hold(key):
            # With derived ids a vendor made meanwhile collides on its id and is adopted
            # below, so a lookup that just missed need not be repeated.
            missed, _ = self._misses.recent(("vendor", key, tax_number or ""))
            if not missed or self.vendor_ids == "auto":
                found = await self.find_vendor(name, tax_number=tax_number)
                self._misses.recent(("vendor", key, tax_number or ""))
                if found is not None:
                    return found
            if self.vendor_ids == "auto":
                return await self._create_vendor_auto(name, key, tax_number)
            for attempt in range(4):
                vendor_id = derived_vendor_id(key, attempt)
                res = await self._create_vendor(name, key, tax_number, vendor_id)
                if res.ok:
                    tax = (tax_number or "").strip() or None
                    return Vendor(id=vendor_id, name=name.strip(), tax_number=tax)
                if not (is_already_exists(res.errors) or is_repeated_controlid(res.errors)):
                    raise ledger_error(res.errors, what=f"the new vendor {name!r}")
                # Another worker won the race for this id (or our own earlier, uncertain
                # try did): converge on that vendor when it is the same supplier.
                holder = await self._vendor_by_id(vendor_id)
                if holder is not None and vendor_match_key(str(holder.get("NAME", ""))) == key:
                    return vendor_of(holder)
                found = await self._existing(name, key, tax_number, res.errors)
                if found is not None:
                    return found
                # Taken by another supplier, or its contact name (NAME(VVENDORID)) left behind
                # by a vendor deleted since: the next derived id names a new contact too.
            raise LedgerError(
                Reason.VALIDATION,
                f"Could not create vendor {name!r}: every derived VENDORID is taken by "
                "another supplier.",
            )

    async def _create_vendor(
        self, name: str, key: str, tax_number: str | None, vendor_id: str | None
    ) -> Result:
        body = element(
            "create",
            {
                "VENDOR": {
                    "VENDORID": vendor_id,
                    "NAME": name.strip(),
                    "TAXID": tax_number,
                    "DISPLAYCONTACT": {"PRINTAS": name.strip()},
                }
            },
        )
        fn = Function(write_controlid("vendor", key, vendor_id or "auto"), body)
        [res] = await self._run([fn], write=True)
        return res

    async def _existing(
        self, name: str, key: str, tax_number: str | None, errors: Sequence[ErrorDetail]
    ) -> Vendor | None:
        """After an "already exists" answer: the same supplier by name or tax id, else the
        vendor whose display contact holds the value Intacct named, when it is this supplier."""
        found = await self.find_vendor(name, tax_number=tax_number)
        if found is not None:
            return found
        value = clashing_value(errors)
        if not value:
            return None
        res = await self._query(
            query_element(
                "VENDOR", VENDOR_FIELDS, cond("equalto", "DISPLAYCONTACT.CONTACTNAME", value)
            ),
            f"the lookup of the vendor with contact {value!r}",
        )
        tax = (tax_number or "").strip().casefold()
        for row in res.records():
            same_tax = bool(tax) and str(row.get("TAXID", "")).strip().casefold() == tax
            if same_tax or vendor_match_key(str(row.get("NAME", ""))) == key:
                return vendor_of(row)
        return None

    async def _create_vendor_auto(self, name: str, key: str, tax_number: str | None) -> Vendor:
        res = await self._create_vendor(name, key, tax_number, None)
        if not res.ok and is_already_exists(res.errors):
            # "Another Contact with the given value(s) already exists", or BL34000061: the
            # supplier may be there already under another spelling; adopt it if it is.
            existing = await self._existing(name, key, tax_number, res.errors)
            if existing is not None:
                return existing
            raise ledger_error(
                res.errors, what=f"the new vendor {name!r}", reason=Reason.VENDOR_NOT_FOUND
            )
        if not res.ok and not is_repeated_controlid(res.errors):
            raise ledger_error(res.errors, what=f"the new vendor {name!r}")
        # With document sequencing two racing workers each get a vendor; both then pick the
        # oldest one, so every bill still lands on a single vendor.
        found = await self.find_vendor(name, tax_number=tax_number)
        if found is None:
            raise LedgerError(
                Reason.UNAVAILABLE,
                f"Vendor {name!r} was created but cannot be found yet.",
                uncertain=True,
            )
        return found

    # -- bills ----------------------------------------------------------------------------

    def _find_bill_query(self, vendor_id: str, number: str, credit: bool) -> Element:
        return query_element(
            bill_object(credit),
            BILL_FIELDS,
            all_of(cond("equalto", "VENDORID", vendor_id), cond("equalto", "RECORDID", number)),
            orderby="RECORDNO",
        )

    async def find_bill(
        self, vendor_id: str, number: str, *, credit_note: bool = False
    ) -> LedgerBill | None:
        res = await self._query(
            self._find_bill_query(vendor_id, number, credit_note),
            f"the lookup of {'credit note' if credit_note else 'bill'} {number}",
        )
        rows = res.records()
        if not rows:
            self._misses.remember(("bill", vendor_id, number, str(credit_note)))
            return None
        return ledger_bill(rows[0], credit_note)

    async def get_bill(self, bill_id: str) -> LedgerBill | None:
        if not bill_id.isdigit():
            return None
        # RECORDNO is shared by bills and adjustments, so one of the two answers.
        functions = [
            Function(
                read_controlid("get-bill"),
                query_element(obj, BILL_FIELDS, cond("equalto", "RECORDNO", bill_id)),
            )
            for obj in (BILL, ADJUSTMENT)
        ]
        results = await self._run(functions)
        for res, credit in zip(results, (False, True), strict=True):
            if not res.ok:
                raise ledger_error(res.errors, what=f"the lookup of bill {bill_id}")
            rows = res.records()
            if rows:
                return ledger_bill(rows[0], credit)
        return None

    async def create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        try:
            return await self._create_draft_bill(vendor, bill)
        except LedgerError as exc:
            if not exc.transient and exc.reason is not Reason.DUPLICATE:
                self._vendors.forget(vendor.id)
            raise
        finally:
            self._misses.forget(("bill", vendor.id, bill.number, str(bill.credit_note)))

    def _ours_or_duplicate(self, found: LedgerBill, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        """The bill found for this supplier and number: adopted when this item posted it."""
        if found.item_key == bill.item_key:
            return found
        kind = "Credit note" if bill.credit_note else "Bill"
        raise LedgerError(
            Reason.DUPLICATE,
            f"{kind} {bill.number} from {vendor.name} already exists in {self.company} as "
            f"record {found.id}, posted by {found.item_key or 'another channel'}.",
            detail={"bill_id": found.id, "item_key": found.item_key},
        )

    async def _create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        kind = "credit note" if bill.credit_note else "bill"
        missed, _ = self._misses.recent(("bill", vendor.id, bill.number, str(bill.credit_note)))
        existing = None
        if not missed:
            existing = await self.find_bill(vendor.id, bill.number, credit_note=bill.credit_note)
            self._misses.recent(("bill", vendor.id, bill.number, str(bill.credit_note)))
        if existing is not None:
            return self._ours_or_duplicate(existing, vendor, bill)
        _refuse_finer_than_cents(bill, kind)
        obj = bill_element(vendor, bill)
        salt = ""
        while True:
            # Keyed by supplier and number, not by item: Intacct's uniqueid then refuses a
            # second item's bill with the same number even when another worker's lookup
            # missed it at the same moment.
            create = Function(
                write_controlid("bill", vendor.id, bill.number, str(bill.credit_note), salt),
                element("create", obj),
            )
            [created] = await self._run([create], write=True)
            if created.ok:
                break
            if not is_repeated_controlid(created.errors):
                raise ledger_error(
                    created.errors,
                    what=f"{kind} {bill.number} from {vendor.name}",
                    extra={"item_key": bill.item_key},
                )
            # This supplier's number was posted before: by our own earlier try, by another
            # worker on the same item, or for another item (a twin). Adopt our own, refuse
            # a twin's; if it is gone (deleted by hand since), post it afresh, once.
            again = await self.find_bill(vendor.id, bill.number, credit_note=bill.credit_note)
            if again is not None:
                return self._ours_or_duplicate(again, vendor, bill)
            if salt:
                raise LedgerError(
                    Reason.UNAVAILABLE,
                    f"Sage Intacct says {kind} {bill.number} was already posted, but it "
                    "cannot be found.",
                    uncertain=True,
                )
            salt = uuid.uuid4().hex
        records = created.records()
        recordno = str(records[0].get("RECORDNO", "")) if records else ""
        if recordno:
            # Intacct answers a create with RECORDNO only; the rest is what was just sent.
            made = created_bill(recordno, vendor, bill)
            self.attachments.created(made)
            return made
        raise LedgerError(
            Reason.UNAVAILABLE,
            f"{kind.capitalize()} {bill.number} was created but Intacct gave no record number.",
            uncertain=True,
        )

    # -- attachments ----------------------------------------------------------------------

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None:
        return await self.attachments.find_attachment(bill)

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        return await self.attachments.attach_document(bill, document)

    # -- periods --------------------------------------------------------------------------

    async def _closed_ranges(
        self, since: dt.date, until: dt.date | None = None
    ) -> list[tuple[dt.date, dt.date]]:
        conds = [
            cond("equalto", "CLOSED", "true"),
            cond("greaterthanorequalto", "END_DATE", format_date(since)),
        ]
        if until is not None:
            conds.append(cond("lessthanorequalto", "START_DATE", format_date(until)))
        query = query_element(
            PERIOD_OBJECT,
            ["NAME", "START_DATE", "END_DATE"],
            all_of(*conds),
            orderby="START_DATE",
            pagesize=2000,
        )
        [res] = await self._run([Function(read_controlid("periods"), query)])
        if not res.ok:
            if is_transient(classify(res.errors)):
                raise ledger_error(res.errors, what="the period lookup")
            # Not every company exposes period closing to the API: then a closed period
            # shows up only as the refusal of a bill (period_closed), which is still handled.
            if not self._period_warned:
                self._period_warned = True
                log.warning(
                    "intacct %s: closed periods cannot be read (%s); treating periods as open",
                    self.company,
                    "; ".join(e.text for e in res.errors),
                )
            return []
        ranges = []
        for row in res.records():
            try:
                start = parse_date(str(row["START_DATE"]))
                end = parse_date(str(row["END_DATE"]))
            except (KeyError, ValueError):
                continue
            ranges.append((start, end))
        return sorted(ranges)

    async def period_is_open(self, day: dt.date) -> bool:
        ranges = await self._closed_ranges(day, day)
        return not any(start <= day <= end for start, end in ranges)

    async def next_open_day(self, day: dt.date) -> dt.date | None:
        ranges = await self._closed_ranges(day)
        probe = day
        for start, end in ranges:
            if start <= probe <= end:
                probe = end + dt.timedelta(days=1)
        if any(start <= probe <= end for start, end in ranges):
            return None
        return probe

    async def _unknown(self, obj: str, key: str, codes: Collection[str]) -> list[str] | None:
        wanted = sorted({c.strip() for c in codes if c.strip()})
        if not wanted:
            return []
        where = element("in", {"field": key, "value": wanted})
        [res] = await self._run(
            [
                Function(
                    read_controlid("catalog"),
                    query_element(obj, [key, "STATUS"], where, pagesize=2000),
                )
            ]
        )
        if not res.ok:
            reason = classify(res.errors)
            if is_transient(reason) or reason is Reason.AUTH:
                raise ledger_error(res.errors, what=f"the lookup of {obj}")
            # Not every company (or role) lets the API read its chart: the codes are then
            # checked only as bills post, and the caller says so.
            return None
        active = {str(r.get(key, "")).strip() for r in res.records() if is_active(r)}
        return [c for c in wanted if c not in active]

    async def unknown_gl_accounts(self, codes: Collection[str]) -> list[str] | None:
        """The account numbers without an active GLACCOUNT; None when it cannot be read."""
        return await self._unknown("GLACCOUNT", "ACCOUNTNO", codes)

    async def unknown_tax_codes(self, codes: Collection[str]) -> list[str] | None:
        """The tax detail ids without an active TAXDETAIL; None when it cannot be read."""
        return await self._unknown("TAXDETAIL", "DETAILID", codes)

    async def check_connection(self) -> None:
        await self.client.ensure_session()

    async def aclose(self) -> None:
        await self.client.aclose()


def _refuse_finer_than_cents(bill: DraftBill, kind: str) -> None:
    """Intacct keeps amounts to two decimal places and rounds anything finer. A bill in a
    three-decimal currency (BHD, KWD, OMR…) whose amounts need the third place would be
    stored with other totals than the invoice's: refused, never rounded behind anyone's back."""
    cent = Decimal("0.01")
    amounts = [bill.total, bill.net, bill.tax]
    amounts += [a for line in bill.lines for a in (line.net, line.tax, line.total)]
    finer = [a for a in amounts if a != a.quantize(cent)]
    if finer:
        raise LedgerError(
            Reason.CURRENCY_MISMATCH,
            f"Sage Intacct keeps amounts to 2 decimal places; this {bill.currency} {kind} "
            f"needs 3 (e.g. {finer[0]}), so Intacct would round it away from the invoice's "
            f"total {bill.total}. Post it by hand, or keep {bill.currency} books in a ledger "
            "that holds three decimals.",
        )
