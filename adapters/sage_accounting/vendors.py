"""Suppliers in Sage Accounting: contacts of type VENDOR, found by ``search`` and matched on
our side on the normalised name (tax number first when known).

A supplier is created with an ``idempotency_id`` derived from the normalised name, so racing
creators converge on one contact; the oldest match is the one everyone keeps.
"""

import asyncio
import datetime as dt
import re
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from adapters.sage_accounting.client import SageAccountingClient
from adapters.sage_accounting.wire import created_at, idempotency_id
from domain.errors import LedgerError, Reason
from domain.models import Vendor
from domain.normalize import vendor_match_key

CONTACT_NAME_MAX = 100


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def search_term(name: str) -> str:
    """The most selective word of a supplier name that survives normalisation.

    Sage's ``search`` is a text filter on the contact name, so "ACME LIMITED" would not find
    "Acme Ltd."; the longest word that is part of the normalised name (not a legal suffix)
    narrows the list, and the exact match happens on our side.
    """
    words = set(vendor_match_key(name).split())
    tokens = re.findall(r"\w+", name)
    kept = [t for t in tokens if _fold(t) in words]
    pool = kept or tokens
    return max(pool, key=len) if pool else name.strip()


def _tax_key(tax_number: str | None) -> str | None:
    if not tax_number:
        return None
    key = re.sub(r"[\s.\-/]", "", tax_number).upper()
    return key or None


class SageVendors:
    """The supplier half of ``SageAccountingLedger``, with its short-lived caches."""

    def __init__(
        self,
        client: Callable[[], SageAccountingClient],
        create_lock: asyncio.Lock,
        *,
        vendor_ttl: float = 600.0,
        negative_ttl: float = 120.0,
        on_created: Callable[[str, dt.datetime], None] | None = None,
    ) -> None:
        self._client = client
        # told of a supplier this worker has just brought into being (the bills keep its
        # every bill from then on: it can have no older one)
        self._on_created = on_created
        # Shared with the bills: Sage must not create numbered documents in parallel.
        self._create_lock = create_lock
        self._vendor_ttl = vendor_ttl
        self._negative_ttl = negative_ttl
        self._vendors: dict[str, tuple[float, Vendor]] = {}
        self._no_vendor: dict[str, float] = {}

    def _remember(self, vendor: Vendor, *keys: str | None) -> None:
        now = time.monotonic()
        for key in keys:
            if key:
                self._vendors[key] = (now, vendor)

    def _recall(self, *keys: str | None) -> Vendor | None:
        now = time.monotonic()
        for key in keys:
            hit = self._vendors.get(key) if key else None
            if hit is not None and now - hit[0] <= self._vendor_ttl:
                return hit[1]
        return None

    @staticmethod
    def _vendor(item: Mapping[str, Any]) -> Vendor:
        return Vendor(
            id=item["id"],
            name=item.get("name") or item.get("displayed_as") or "",
            tax_number=item.get("tax_number") or None,
        )

    async def _candidates(self, name: str, tax_number: str | None) -> list[dict[str, Any]]:
        """Vendors matching by tax number, else by normalised name; oldest first."""
        items = await self._client().list_all(
            "getContacts",
            params={
                "contact_type_id": "VENDOR",
                "search": search_term(name),
                "attributes": "name,tax_number,created_at",
            },
            what=f"searching suppliers for {name!r}",
        )
        items.sort(key=lambda i: (str(i.get("created_at", "")), i["id"]))
        tax = _tax_key(tax_number)
        if tax:
            by_tax = [i for i in items if _tax_key(i.get("tax_number")) == tax]
            if by_tax:
                return by_tax
        keys = {vendor_match_key(name), vendor_match_key(name[:CONTACT_NAME_MAX])}
        return [i for i in items if vendor_match_key(i.get("name") or "") in keys]

    async def find_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor | None:
        key, tax = vendor_match_key(name), _tax_key(tax_number)
        cached = self._recall(f"tax:{tax}" if tax else None, f"name:{key}")
        if cached is not None:
            return cached
        found = await self._candidates(name, tax_number)
        if not found:
            self._no_vendor[f"{key}|{tax}"] = time.monotonic()
            return None
        vendor = self._vendor(found[0])
        self._remember(vendor, f"name:{key}", f"tax:{tax}" if tax else None)
        return vendor

    async def create_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor:
        key, tax = vendor_match_key(name), _tax_key(tax_number)
        # The pipeline asks find_vendor first; a miss a moment ago need not be asked again
        # (a supplier appearing meanwhile is caught by the idempotency id and the re-search).
        missed = self._no_vendor.pop(f"{key}|{tax}", None)
        if missed is None or time.monotonic() - missed > self._negative_ttl:
            existing = await self.find_vendor(name, tax_number=tax_number)
            if existing is not None:
                return existing
        async with self._create_lock:
            # a coroutine that held the lock before us may have just created it
            cached = self._recall(f"tax:{tax}" if tax else None, f"name:{key}")
            if cached is not None:
                return cached
            contact: dict[str, Any] = {
                "name": name.strip()[:CONTACT_NAME_MAX],
                "contact_type_ids": ["VENDOR"],
                "idempotency_id": idempotency_id("contact", self._client().business_id, key),
            }
            if tax_number:
                contact["tax_number"] = tax_number.strip()
            what = f"creating supplier {name!r}"
            for _ in range(2):
                made = await self._post_contact(contact, tax_number, what)
                created = created_at(made[1])
                new = created is not None and created >= made[2] - dt.timedelta(seconds=120)
                if new:
                    # Workers racing on this supplier all got this contact (same idempotency
                    # id); searching again would cost a call per supplier to catch only a
                    # person adding it by hand in the same second.
                    vendor = made[0]
                    break
                # An old answer: another channel's supplier of that name, or the replay of one
                # deleted since. The oldest live match is the one all keep.
                found = await self._candidates(name, tax_number)
                if found:
                    vendor = self._vendor(found[0])
                    break
                if created is None:
                    vendor = made[0]
                    break
                # An old, invisible answer: the replay of a supplier deleted since. Post
                # again under an id salted with the deleted one (stable across retries).
                contact["idempotency_id"] = idempotency_id(contact["idempotency_id"], made[0].id)
            else:
                raise LedgerError(
                    Reason.UNAVAILABLE, f"Sage kept replaying a deleted supplier for {name!r}."
                )
            self._remember(vendor, f"name:{key}", f"tax:{tax}" if tax else None)
            if new and created is not None and vendor.id == made[0].id and self._on_created:
                self._on_created(vendor.id, created)
            return vendor

    async def _post_contact(
        self, contact: dict[str, Any], tax_number: str | None, what: str
    ) -> tuple[Vendor, dict[str, Any], dt.datetime]:
        sent_at = dt.datetime.now(dt.UTC)
        try:
            _, data = await self._client().call(
                "postContacts", body={"contact": contact}, write=True, what=what
            )
        except LedgerError as exc:
            sources = {p.field for p in exc.problems}
            if exc.reason is not Reason.VALIDATION or "tax_number" not in sources:
                raise
            # A tax number Sage will not take must not block the supplier; keep it in the
            # notes so a person can fix it in Sage.
            del contact["tax_number"]
            contact["notes"] = f"Tax number on the invoice: {tax_number} (refused by Sage)"
            _, data = await self._client().call(
                "postContacts", body={"contact": contact}, write=True, what=what
            )
        return self._vendor(data), data, sent_at
