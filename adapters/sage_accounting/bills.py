"""Where ``find_bill`` looks, so that its cost stays the same whatever the supplier's history.

Sage's ``search`` on purchase invoices and credit notes filters by "the invoice reference or
contact name" (Swagger), not by ``vendor_reference``. billstream therefore also writes the
supplier's invoice number (its first 25 characters, all ``reference`` holds) into
``reference``: one search with ``contact_id`` brings back the handful of bills whose
reference or supplier name contains it, and the exact comparison on ``vendor_reference``
happens on our side. That is one call per look, at 10 prior invoices as at 10,000.

A supplier this worker created itself has no bill but those made since its creation. For
those suppliers ``BillBook`` keeps every bill: ours from the create answers, anyone else's
from one business-wide ``updated_or_created_since`` listing at most every
``sync_interval`` seconds, so the look costs no call of its own. A bill another channel
posts for that supplier is seen within ``sync_interval``; Sage's idempotency id still
catches our own retries, whoever made them. Deletions are not listed by that query, so a
bill the book remembers is read again before anyone relies on it (``ledger.find_bill``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Callable
from typing import Any

from adapters.sage_accounting.client import SageAccountingClient
from adapters.sage_accounting.wire import moment

REFERENCE_MAX = 25  # Sage: purchase invoice / credit note ``reference``
# Changes are listed again from a little before the newest one seen: a bill committed a
# moment after a later one must not fall between two listings.
SYNC_OVERLAP = dt.timedelta(seconds=5)


def reference_for(number: str) -> str:
    """What billstream writes into ``reference``, and searches for: the number, cut to fit."""
    return number.strip()[:REFERENCE_MAX]


def _since_param(moment: dt.datetime) -> str:
    # The Swagger's date-time form, YYYY-MM-DDThh:mm:ss(+|-)hh:mm; whole seconds, rounded
    # down, since the filter is inclusive.
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


class BillBook:
    """One kind of bill (purchase invoices or credit notes) of one business, as far as
    ``find_bill`` needs it."""

    def __init__(
        self,
        client: Callable[[], SageAccountingClient],
        *,
        list_op: str,
        attributes: str,
        sync_interval: float = 15.0,
    ) -> None:
        self._client = client
        self._list_op = list_op
        self._attributes = attributes
        self.sync_interval = sync_interval
        self._kept: dict[str, dict[str, dict[str, Any]]] = {}  # supplier -> bill id -> bill
        self._since: dt.datetime | None = None  # every change from then on is in _kept
        self._synced = -math.inf  # monotonic time of the last listing
        self._sync_lock = asyncio.Lock()

    def keep(self, vendor_id: str, created: dt.datetime) -> None:
        """Keep every bill of a supplier that had none before ``created`` (Sage's clock)."""
        self._kept.setdefault(vendor_id, {})
        start = created - SYNC_OVERLAP
        if self._since is None or start < self._since:
            self._since = start

    def keeps(self, vendor_id: str) -> bool:
        return vendor_id in self._kept

    def add(self, item: dict[str, Any]) -> None:
        """A bill Sage has just shown us (a create answer, a read): kept if its supplier is."""
        bills = self._kept.get((item.get("contact") or {}).get("id", ""))
        if bills is not None:
            bills[item["id"]] = item

    def forget(self, vendor_id: str, bill_id: str) -> None:
        self._kept.get(vendor_id, {}).pop(bill_id, None)

    async def candidates(self, vendor_id: str, number: str) -> tuple[list[dict[str, Any]], bool]:
        """The supplier's bills that may carry ``number``, and whether Sage gave them just now
        (``False``: from the book, so a hit may have been deleted since)."""
        if vendor_id in self._kept:
            await self._sync()
            return list(self._kept[vendor_id].values()), False
        items = await self._client().list_all(
            self._list_op,
            params={
                "contact_id": vendor_id,
                "search": reference_for(number),
                "attributes": self._attributes,
            },
            what=f"looking for bill {number!r}",
        )
        return items, True

    async def _sync(self) -> None:
        if time.monotonic() - self._synced < self.sync_interval or self._since is None:
            return
        async with self._sync_lock:
            since = self._since
            if time.monotonic() - self._synced < self.sync_interval or since is None:
                return
            started = time.monotonic()
            items = await self._client().list_all(
                self._list_op,
                params={
                    "updated_or_created_since": _since_param(since),
                    "attributes": f"{self._attributes},updated_at",
                },
                what="reading the bills changed lately",
            )
            newest = since
            for item in items:
                self.add(item)
                changed = moment(item.get("updated_at"))
                if changed is not None and changed > newest:
                    newest = changed
            current = self._since
            # a supplier kept meanwhile may have moved _since back: never skip past that
            moved_back = current is not None and current < since
            self._since = current if moved_back else max(since, newest - SYNC_OVERLAP)
            self._synced = started
