"""What a Sage business is set up with: its financial settings (lock date, accounts start
date, base currency), chart of accounts and tax rates, cached for the ledger.

``BusinessReference`` answers the period and chart questions of the ledger port and turns a
draft bill's lines into Sage's, with GL accounts and tax codes resolved to Sage ids.
"""

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

from adapters.sage_accounting.client import SageAccountingClient
from domain.errors import LedgerError, Problem, Reason
from domain.models import DraftBill
from domain.money import round_money


class BusinessReference:
    """The reference data of one business, read through ``client`` and cached."""

    def __init__(
        self,
        client: Callable[[], SageAccountingClient],
        *,
        settings_ttl: float = 60.0,
        reference_ttl: float = 600.0,
    ) -> None:
        self._client = client
        self.settings_ttl = settings_ttl
        self._reference_ttl = reference_ttl
        self._settings: tuple[float, dict[str, Any]] | None = None
        self._accounts: tuple[float, dict[str, str]] | None = None
        self._tax_rates: tuple[float, dict[str, str]] | None = None
        self._reference_lock = asyncio.Lock()
        self._settings_lock = asyncio.Lock()

    async def financial_settings(self, max_age: float) -> dict[str, Any]:
        asked = time.monotonic()
        if self._settings is not None and asked - self._settings[0] <= max_age:
            return self._settings[1]
        async with self._settings_lock:
            # Bills created at once share one read: whoever waited here takes the answer
            # read after it asked, however fresh it wanted it.
            if self._settings is not None and self._settings[0] >= asked:
                return self._settings[1]
            _, data = await self._client().call(
                "getFinancialSettings", what="reading financial settings"
            )
            settings = data if isinstance(data, dict) else {}
            self._settings = (time.monotonic(), settings)
            return settings

    @staticmethod
    def date(settings: Mapping[str, Any], name: str) -> dt.date | None:
        raw = settings.get(name)
        return dt.date.fromisoformat(raw) if isinstance(raw, str) and raw else None

    def is_open(self, settings: Mapping[str, Any], day: dt.date) -> bool:
        lock = self.date(settings, "year_end_lockdown_date")
        start = self.date(settings, "accounts_start_date")
        return (lock is None or day > lock) and (start is None or day >= start)

    async def _reference(self, which: str) -> dict[str, str]:
        """Nominal code / name -> ledger account id, or tax code / name -> tax rate id."""
        cached = self._accounts if which == "accounts" else self._tax_rates
        if cached is not None and time.monotonic() - cached[0] <= self._reference_ttl:
            return cached[1]
        async with self._reference_lock:
            cached = self._accounts if which == "accounts" else self._tax_rates
            if cached is not None and time.monotonic() - cached[0] <= self._reference_ttl:
                return cached[1]
            index: dict[str, str] = {}
            if which == "accounts":
                items = await self._client().list_all(
                    "getLedgerAccounts",
                    params={"attributes": "nominal_code,name,display_name"},
                    what="reading the chart of accounts",
                )
                for item in items:
                    for label in (item.get("display_name"), item.get("name"), item["id"]):
                        if isinstance(label, str) and label:
                            index.setdefault(label.casefold(), item["id"])
                    if item.get("nominal_code") is not None:
                        # nominal codes are the ones everyone means: they win over names
                        index[str(item["nominal_code"])] = item["id"]
                self._accounts = (time.monotonic(), index)
            else:
                items = await self._client().list_all(
                    "getTaxRates",
                    params={"attributes": "name,percentage"},
                    what="reading tax rates",
                )
                for item in items:
                    for label in (item.get("name"), item.get("displayed_as")):
                        if isinstance(label, str) and label:
                            index.setdefault(label.casefold(), item["id"])
                    index[item["id"].casefold()] = item["id"]
                self._tax_rates = (time.monotonic(), index)
            return index

    async def resolve(self, which: str, codes: set[str]) -> dict[str, str]:
        index = await self._reference(which)
        if any(c.strip().casefold() not in index for c in codes):
            # someone may have just added it in Sage: one fresh look before refusing
            cached = self._accounts if which == "accounts" else self._tax_rates
            if cached is not None and time.monotonic() - cached[0] > 5.0:
                if which == "accounts":
                    self._accounts = None
                else:
                    self._tax_rates = None
                index = await self._reference(which)
        return {c: index[c.strip().casefold()] for c in codes if c.strip().casefold() in index}

    async def check_period(self, day: dt.date) -> None:
        settings = await self.financial_settings(self.settings_ttl)
        if self.is_open(settings, day):
            return
        settings = await self.financial_settings(0)  # the cache may predate a reopening
        if self.is_open(settings, day):
            return
        lock = self.date(settings, "year_end_lockdown_date")
        start = self.date(settings, "accounts_start_date")
        if lock is not None and day <= lock:
            why = f"is on or before the lock date {lock.isoformat()}"
        else:
            why = f"is before the accounts start date {start.isoformat() if start else '?'}"
        raise LedgerError(
            Reason.PERIOD_CLOSED,
            f"The bill date {day.isoformat()} {why} of Sage business {self._client().business_id}.",
            detail={
                "period": f"{day.year:04d}-{day.month:02d}",
                "lock_date": lock.isoformat() if lock else None,
            },
        )

    async def invoice_lines(self, bill: DraftBill) -> list[dict[str, Any]]:
        accounts = await self.resolve("accounts", {ln.gl_account for ln in bill.lines})
        taxes = await self.resolve(
            "tax", {ln.tax_code for ln in bill.lines if ln.tax_code is not None}
        )
        problems: list[Problem] = []
        out: list[dict[str, Any]] = []
        for n, ln in enumerate(bill.lines):
            account = accounts.get(ln.gl_account)
            if account is None:
                problems.append(
                    Problem(
                        code="gl_account_unknown",
                        field=f"lines[{n}].gl_account",
                        message=f"GL account {ln.gl_account!r} is not in the chart of accounts of "
                        f"Sage business {self._client().business_id}.",
                    )
                )
            tax_rate = taxes.get(ln.tax_code) if ln.tax_code is not None else None
            if ln.tax_code is not None and tax_rate is None:
                problems.append(
                    Problem(
                        code="tax_code_unknown",
                        field=f"lines[{n}].tax_code",
                        message=f"Tax code {ln.tax_code!r} is not a tax rate of Sage business "
                        f"{self._client().business_id}.",
                    )
                )
            elif ln.tax_code is None and ln.tax != 0:
                problems.append(
                    Problem(
                        code="tax_code_missing",
                        field=f"lines[{n}].tax_code",
                        message=f"Line {n + 1} carries {ln.tax} of tax but no tax code.",
                    )
                )
            # Sage computes net = quantity x unit price; when the invoice's own figures do not
            # multiply out (rounded unit prices), post one unit at the net so amounts match.
            quantity, unit_price = ln.quantity, ln.unit_price
            if round_money(quantity * unit_price, bill.currency) != ln.net:
                quantity, unit_price = Decimal(1), ln.net
            line: dict[str, Any] = {
                "description": ln.description or bill.vendor_name,
                "ledger_account_id": account or "",
                "quantity": quantity,
                "unit_price": unit_price,
                "unit_price_includes_tax": False,
                "net_amount": ln.net,
                "tax_amount": ln.tax,  # v3.1 wants it per line for any rated tax
                "total_amount": ln.total,
            }
            if tax_rate is not None:
                line["tax_rate_id"] = tax_rate
            out.append(line)
        if problems:
            raise LedgerError(
                Reason.MAPPING_MISSING,
                "; ".join(p.message for p in problems),
                problems=problems,
            )
        return out

    # -- periods and the chart -------------------------------------------------------------

    async def period_is_open(self, day: dt.date) -> bool:
        return self.is_open(await self.financial_settings(0), day)

    async def next_open_day(self, day: dt.date) -> dt.date | None:
        settings = await self.financial_settings(0)
        if self.is_open(settings, day):
            return day
        lock = self.date(settings, "year_end_lockdown_date")
        start = self.date(settings, "accounts_start_date")
        candidate = day
        if lock is not None and candidate <= lock:
            candidate = lock + dt.timedelta(days=1)
        if start is not None and candidate < start:
            candidate = start
        return candidate

    async def unknown_gl_accounts(self, codes: Collection[str]) -> list[str]:
        """The codes (nominal codes or names) the chart of accounts lacks; read-only."""
        found = await self.resolve("accounts", set(codes))
        return sorted(c for c in set(codes) if c not in found)

    async def unknown_tax_codes(self, codes: Collection[str]) -> list[str]:
        """The tax codes (ids or names) that are not tax rates of the business; read-only."""
        found = await self.resolve("tax", set(codes))
        return sorted(c for c in set(codes) if c not in found)
