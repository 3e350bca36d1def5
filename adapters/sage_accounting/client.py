"""The Sage Accounting v3.1 client and the ledger port on top of it.

``SageAccountingClient`` is the HTTP side: ``X-Business`` on every call, the per-business
budgets, token refresh on 401, ``Retry-After`` on 429, retries where they are safe.
``SageAccountingLedger`` is ``domain.ports.Ledger`` in Sage's terms:

- suppliers are contacts of type VENDOR, found by ``search`` and matched on our side on the
  normalised name (tax number first when known), created with an ``idempotency_id`` derived
  from the normalised name so racing creators converge on one contact;
- bills are purchase invoices (credits: purchase credit notes) with ``vendor_reference`` =
  the supplier's invoice number. Our item key rides in ``notes`` (Sage returns the notes, it
  does not return the idempotency id), which is how ``find_bill`` tells ours from a bill
  another channel made;
- the bill's ``idempotency_id`` is derived from business + supplier + invoice number, so a
  retry of the same item replays the same bill, and two items carrying the same invoice
  race to one bill, which the loser sees is not its own and reports as ``duplicate``;
- attachments have no idempotency in Sage: we look before uploading and after any
  uncertain failure.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import hashlib
import logging
import random
import re
import time
import unicodedata
from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from adapters import observability
from adapters.sage_accounting import wire
from adapters.sage_accounting.budget import (
    DEFAULT_BYTE_WINDOW,
    DEFAULT_CALL_WINDOW,
    Budget,
    BudgetTooSmall,
)
from adapters.sage_accounting.errors import RECONNECT, from_response, parse_issues
from adapters.sage_accounting.oauth import Endpoints, SageOAuth, TokenStore
from adapters.sage_accounting.schema import check_request, check_response, spec
from domain.errors import LedgerError, Problem, Reason
from domain.models import Attachment, Document, DraftBill, LedgerBill, Vendor
from domain.money import round_money
from domain.normalize import vendor_match_key
from domain.tenants import Tenant

log = logging.getLogger(__name__)

MAX_ATTACHMENT_BYTES = 2_621_440  # Sage: file_size maximum, 2.5 MiB
VENDOR_REFERENCE_MAX = 31
NOTES_MAX = 2000
CONTACT_NAME_MAX = 100
ITEM_MARK = "billstream item: "
_ITEM_RE = re.compile(r"(?m)^billstream item: (\S+)\s*$")
DRAFT_MODES = ("draft", "posted")


def idempotency_id(*parts: str) -> str:
    """Sage's ``idempotency_id``: 32 lowercase hex characters, stable for the same parts."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


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


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _created_at(data: Mapping[str, Any]) -> dt.datetime | None:
    raw = data.get("created_at")
    if not isinstance(raw, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class SageAccountingClient:
    """HTTP to one Sage business. One instance per tenant per worker, shared by all stages."""

    def __init__(
        self,
        *,
        endpoints: Endpoints,
        oauth: SageOAuth,
        business_id: str,
        tenant_id: str,
        budget: Budget | None = None,
        timeout: float = 30.0,
        validate: bool = False,
        max_attempts: int = 4,
        max_inline_wait: float = 10.0,
        concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.oauth = oauth
        self.business_id = business_id
        self.tenant_id = tenant_id
        self.budget = budget or Budget()
        self.validate = validate
        self.max_attempts = max_attempts
        self.max_inline_wait = max_inline_wait
        # Sage asks for low read concurrency; the budget covers the rate, this the overlap.
        self._inflight = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(max_connections=concurrency * 2),
            transport=transport,
        )
        self.requests = 0
        self.retries = 0
        self.by_operation: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SageAccountingClient(business={self.business_id!r}, api={self.endpoints.api!r})"

    def budget_snapshot(self) -> dict[str, Any]:
        snap = self.budget.snapshot()
        snap.update(
            business_id=self.business_id,
            requests=self.requests,
            retries=self.retries,
            token_refreshes=self.oauth.refreshes,
        )
        return snap

    def budgets_in_use(self) -> observability.Budgets:
        """Calls and request bytes in the current windows against their limits (gauge)."""
        snap = self.budget_snapshot()
        return {
            "calls": (snap["calls_in_window"], snap["call_limit"]),
            "request_bytes": (snap["bytes_in_window"], snap["byte_limit"]),
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    def _backoff(attempt: int, floor: float | None = None) -> float:
        delay: float = min(5.0, 0.2 * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        return max(delay, floor or 0.0)

    async def call(
        self,
        op_id: str,
        *,
        key: str | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        write: bool = False,
        idempotent: bool = True,
        what: str,
        ok: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """One Sage operation (by Swagger ``operationId``); 2xx and ``ok`` statuses return.

        ``write`` + not ``idempotent`` (attachments) means a failure after sending is
        reported as uncertain rather than retried: only a lookup can tell what happened.
        """
        method, template, _ = spec().operation(op_id)
        path = template.replace("{key}", quote(key or "", safe=""))
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query = {
            k: ("true" if v is True else "false" if v is False else str(v))
            for k, v in query.items()
        }
        if self.validate:
            check_request(op_id, body, query)
        payload = wire.dumps(body) if body is not None else None
        safe_to_repeat = not write or idempotent
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._inflight:
                    # Budget after the slot: a call counted is a call sent, so Sage sees the
                    # spacing the budget made, not a bunch released by the semaphore. The
                    # token after the budget: a long wait must not outlive it.
                    try:
                        await self.budget.acquire(len(payload or b""))
                    except BudgetTooSmall as exc:
                        raise LedgerError(
                            Reason.VALIDATION, f"Cannot send {what}: {exc}."
                        ) from None
                    token = await self.oauth.access_token()
                    headers = {
                        "Authorization": f"Bearer {token}",
                        "X-Business": self.business_id,
                        "Accept": "application/json",
                    }
                    if payload is not None:
                        headers["Content-Type"] = "application/json"
                    self.requests += 1
                    self.by_operation[op_id] = self.by_operation.get(op_id, 0) + 1
                    response = await observability.observed(
                        self._http.request(
                            method,
                            self.endpoints.api + path,
                            params=query,
                            content=payload,
                            headers=headers,
                        ),
                        system="sage_accounting",
                        company=self.business_id,
                        operation=op_id,
                        client=self,
                    )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # never reached Sage: always safe to try again
                if attempt < self.max_attempts:
                    self.retries += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise LedgerError(
                    Reason.UNAVAILABLE, f"Cannot reach Sage Accounting for {what} ({exc!r})."
                ) from None
            except httpx.HTTPError as exc:
                if safe_to_repeat and attempt < self.max_attempts:
                    self.retries += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise LedgerError(
                    Reason.UNAVAILABLE,
                    f"No answer from Sage Accounting for {what} ({type(exc).__name__}).",
                    uncertain=write,
                ) from None
            status = response.status_code
            request_id = response.headers.get("x-request-id")
            data = self._json(response)
            if self.validate and (200 <= status < 300 or data is not None):
                check_response(op_id, status, data)
            if 200 <= status < 300 or status in ok:
                return status, data
            if status == 401 and not refreshed:
                refreshed = True
                await self.oauth.after_unauthorized(token)
                continue
            after = _retry_after(response)
            if status == 429:
                # Everyone sharing this business's budget waits, not only this caller.
                self.budget.hold_off(after if after is not None else 5.0)
                if attempt < self.max_attempts and (after or 0.0) <= self.max_inline_wait:
                    self.retries += 1
                    continue
            elif status >= 500 and safe_to_repeat and attempt < self.max_attempts:
                self.retries += 1
                await asyncio.sleep(self._backoff(attempt, after if status == 503 else None))
                continue
            err = from_response(
                status,
                data,
                what=what,
                tenant=self.tenant_id,
                request_id=request_id,
                retry_after=after,
                write=write,
            )
            log.warning(
                "sage-accounting %s %s -> %s (%s, request id %s)",
                method,
                template,
                status,
                err.reason.value,
                request_id,
            )
            raise err

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content:
            return None
        if "json" not in response.headers.get("content-type", ""):
            return None
        try:
            return wire.loads(response.content)
        except ValueError:
            return None

    async def list_all(
        self, op_id: str, *, params: Mapping[str, Any], what: str, max_pages: int = 1000
    ) -> list[dict[str, Any]]:
        """Every item of a list operation, 200 per page."""
        items: list[dict[str, Any]] = []
        page = 1
        while page <= max_pages:
            _, data = await self.call(
                op_id, params={**params, "items_per_page": 200, "page": page}, what=what
            )
            batch = data.get("$items", []) if isinstance(data, dict) else []
            items.extend(batch)
            if not data or not data.get("$next") or not batch:
                break
            page += 1
        return items


def token_store_for(token_dir: Path, tenant_id: str) -> TokenStore:
    """Where a tenant's Sage Accounting tokens live (written by ``billstream connect``)."""
    return TokenStore(token_dir / f"sage-accounting-{tenant_id}.json")


class SageAccountingLedger:
    """``domain.ports.Ledger`` on one Sage Accounting business."""

    kind = "sage-accounting"

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
    ) -> None:
        if draft_mode not in DRAFT_MODES:
            raise ValueError(f"draft mode must be one of {DRAFT_MODES}, not {draft_mode!r}")
        self._client_or_none = client
        self.tenant_id = tenant_id
        self.draft_mode = draft_mode
        self._config_error = config_error
        self._settings_ttl = settings_ttl
        self._reference_ttl = reference_ttl
        self._vendor_ttl = vendor_ttl
        self._negative_ttl = negative_ttl
        self._settings: tuple[float, dict[str, Any]] | None = None
        self._accounts: tuple[float, dict[str, str]] | None = None
        self._tax_rates: tuple[float, dict[str, str]] | None = None
        self._vendors: dict[str, tuple[float, Vendor]] = {}
        self._no_bill: dict[tuple[str, str, bool], float] = {}
        self._no_attachment: dict[str, float] = {}
        self._no_vendor: dict[str, float] = {}
        self._bill_kind: dict[str, bool] = {}
        # Sage: never create sequentially numbered documents (contacts, invoices) in parallel.
        self._create_lock = asyncio.Lock()
        self._reference_lock = asyncio.Lock()

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
        ``{P}_CALLS_PER_MINUTE`` / ``{P}_MB_PER_HOUR`` (this worker's share of the budget),
        ``{P}_TIMEOUT`` (seconds), ``{P}_VALIDATE_SCHEMA`` (``1``: check every request and
        response against Sage's Swagger file).
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
            budget = Budget(
                calls=int(env.get(f"{prefix}_CALLS_PER_MINUTE") or 200),
                call_window=DEFAULT_CALL_WINDOW,
                max_bytes=int(Decimal(env.get(f"{prefix}_MB_PER_HOUR") or 100) * 1_000_000),
                byte_window=DEFAULT_BYTE_WINDOW,
            )
            timeout = float(env.get(f"{prefix}_TIMEOUT") or 30.0)
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

    # -- reference data --------------------------------------------------------------------------

    async def _financial_settings(self, max_age: float) -> dict[str, Any]:
        now = time.monotonic()
        if self._settings is not None and now - self._settings[0] <= max_age:
            return self._settings[1]
        _, data = await self.client.call("getFinancialSettings", what="reading financial settings")
        settings = data if isinstance(data, dict) else {}
        self._settings = (time.monotonic(), settings)
        return settings

    @staticmethod
    def _date(settings: Mapping[str, Any], name: str) -> dt.date | None:
        raw = settings.get(name)
        return dt.date.fromisoformat(raw) if isinstance(raw, str) and raw else None

    def _is_open(self, settings: Mapping[str, Any], day: dt.date) -> bool:
        lock = self._date(settings, "year_end_lockdown_date")
        start = self._date(settings, "accounts_start_date")
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
                items = await self.client.list_all(
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
                items = await self.client.list_all(
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

    async def _resolve(self, which: str, codes: set[str]) -> dict[str, str]:
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

    # -- vendors ---------------------------------------------------------------------------------

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
        items = await self.client.list_all(
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
                "idempotency_id": idempotency_id("contact", self.client.business_id, key),
            }
            if tax_number:
                contact["tax_number"] = tax_number.strip()
            what = f"creating supplier {name!r}"
            for _ in range(2):
                made = await self._post_contact(contact, tax_number, what)
                # Converge: another worker or channel may have created the same supplier (an
                # idempotency id lasts only 7 days); the oldest match is the one all keep.
                found = await self._candidates(name, tax_number)
                if found:
                    vendor = self._vendor(found[0])
                    break
                created = _created_at(made[1])
                if created is None or created >= made[2] - dt.timedelta(seconds=120):
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
            return vendor

    async def _post_contact(
        self, contact: dict[str, Any], tax_number: str | None, what: str
    ) -> tuple[Vendor, dict[str, Any], dt.datetime]:
        sent_at = dt.datetime.now(dt.UTC)
        try:
            _, data = await self.client.call(
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
            _, data = await self.client.call(
                "postContacts", body={"contact": contact}, write=True, what=what
            )
        return self._vendor(data), data, sent_at

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
        # Sage's search covers its own reference, not vendor_reference: list the supplier's
        # bills and compare here.
        suffix, _, _ = self._resource(credit_note)
        items = await self.client.list_all(
            f"get{suffix}",
            params={"contact_id": vendor_id, "attributes": self._BILL_ATTRIBUTES},
            what=f"looking for bill {number!r}",
        )
        wanted = _number_key(number)
        hits = [
            i
            for i in items
            if _number_key(i.get("vendor_reference") or "") == wanted
            and (i.get("status") or {}).get("id") != "VOID"
        ]
        key = (vendor_id, wanted, credit_note)
        if not hits:
            self._no_bill[key] = time.monotonic()
            return None
        self._no_bill.pop(key, None)
        hits.sort(key=lambda i: (str(i.get("created_at", "")), i["id"]))
        bill = self._ledger_bill(hits[0], credit_note)
        self._bill_kind[bill.id] = credit_note
        return bill

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

    async def _check_period(self, day: dt.date) -> None:
        settings = await self._financial_settings(self._settings_ttl)
        if self._is_open(settings, day):
            return
        settings = await self._financial_settings(0)  # the cache may predate a reopening
        if self._is_open(settings, day):
            return
        lock = self._date(settings, "year_end_lockdown_date")
        start = self._date(settings, "accounts_start_date")
        if lock is not None and day <= lock:
            why = f"is on or before the lock date {lock.isoformat()}"
        else:
            why = f"is before the accounts start date {start.isoformat() if start else '?'}"
        raise LedgerError(
            Reason.PERIOD_CLOSED,
            f"The bill date {day.isoformat()} {why} of Sage business {self.client.business_id}.",
            detail={
                "period": f"{day.year:04d}-{day.month:02d}",
                "lock_date": lock.isoformat() if lock else None,
            },
        )

    async def _lines(self, bill: DraftBill) -> list[dict[str, Any]]:
        accounts = await self._resolve("accounts", {ln.gl_account for ln in bill.lines})
        taxes = await self._resolve(
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
                        f"Sage business {self.client.business_id}.",
                    )
                )
            tax_rate = taxes.get(ln.tax_code) if ln.tax_code is not None else None
            if ln.tax_code is not None and tax_rate is None:
                problems.append(
                    Problem(
                        code="tax_code_unknown",
                        field=f"lines[{n}].tax_code",
                        message=f"Tax code {ln.tax_code!r} is not a tax rate of Sage business "
                        f"{self.client.business_id}.",
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
        await self._check_period(bill.date)
        settings = await self._financial_settings(self._settings_ttl)
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
        lines = await self._lines(bill)
        suffix, resource, lines_field = self._resource(bill.credit_note)
        doc: dict[str, Any] = {
            "contact_id": vendor.id,
            "date": bill.date.isoformat(),
            "vendor_reference": number,
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
            created = _created_at(data)
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

    @staticmethod
    def _context(bill: LedgerBill) -> str:
        return "PURCHASE_CREDIT_NOTE" if bill.credit_note else "PURCHASE_INVOICE"

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None:
        items = await self.client.list_all(
            "getAttachments",
            params={
                "attachment_context_type_id": self._context(bill),
                "attachment_context_id": bill.id,
                "attributes": "file_name,file_size,file,created_at",
            },
            what=f"looking for the attachment of bill {bill.id}",
        )
        if not items:
            self._no_attachment[bill.id] = time.monotonic()
            return None
        self._no_attachment.pop(bill.id, None)
        items.sort(key=lambda i: (str(i.get("created_at", "")), i["id"]))
        item = items[0]
        if "file" not in item:
            # not every Sage list honours ``attributes=file``: fetch the one we need
            _, item = await self.client.call(
                "getAttachmentsKey",
                key=item["id"],
                params={"attributes": "file_name,file_size,file"},
                what=f"reading attachment {item['id']}",
            )
        content = base64.b64decode(item.get("file") or "")
        return Attachment(
            id=item["id"],
            bill_id=bill.id,
            filename=item.get("file_name") or "",
            sha256=hashlib.sha256(content).hexdigest(),
            size=int(item.get("file_size") or len(content)),
        )

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        size = len(document.content)
        if size > MAX_ATTACHMENT_BYTES:
            raise LedgerError(
                Reason.ATTACHMENT_FAILED,
                f"{document.filename} is {size / 1_048_576:.1f} MiB; Sage Accounting takes at "
                "most 2.5 MiB per attachment. Attach a smaller copy by hand in Sage.",
                detail={"code": "too_large", "size": size, "limit": MAX_ATTACHMENT_BYTES},
            )
        seen = self._no_attachment.pop(bill.id, None)
        if seen is None or time.monotonic() - seen > self._negative_ttl:
            existing = await self.find_attachment(bill)
            if existing is not None:
                raise LedgerError(
                    Reason.ATTACHMENT_FAILED,
                    f"Bill {bill.id} already has attachment {existing.id}.",
                    detail={"attachment_id": existing.id},
                )
        extension = document.filename.rsplit(".", 1)[-1].lower() if "." in document.filename else ""
        body: dict[str, Any] = {
            "file": base64.b64encode(document.content).decode("ascii"),
            "file_name": document.filename,
            "mime_type": document.content_type,
            "file_size": size,
            "attachment_context_type_id": self._context(bill),
            "attachment_context_id": bill.id,
        }
        if extension:
            body["file_extension"] = f".{extension}"
        try:
            _, data = await self.client.call(
                "postAttachments",
                body={"attachment": body},
                write=True,
                idempotent=False,
                what=f"attaching {document.filename} to bill {bill.id}",
            )
        except LedgerError as exc:
            if exc.uncertain:
                # No idempotency for attachments: only a look can say whether it landed.
                found = await self.find_attachment(bill)
                if found is not None and found.sha256 == document.sha256:
                    return found
                raise
            if exc.transient or exc.reason is Reason.AUTH:
                raise
            raise LedgerError(
                Reason.ATTACHMENT_FAILED, exc.message, problems=exc.problems, detail=exc.detail
            ) from None
        return Attachment(
            id=data["id"],
            bill_id=bill.id,
            filename=data.get("file_name") or document.filename,
            sha256=document.sha256,
            size=size,
        )

    # -- periods and health ----------------------------------------------------------------------

    async def period_is_open(self, day: dt.date) -> bool:
        return self._is_open(await self._financial_settings(0), day)

    async def next_open_day(self, day: dt.date) -> dt.date | None:
        settings = await self._financial_settings(0)
        if self._is_open(settings, day):
            return day
        lock = self._date(settings, "year_end_lockdown_date")
        start = self._date(settings, "accounts_start_date")
        candidate = day
        if lock is not None and candidate <= lock:
            candidate = lock + dt.timedelta(days=1)
        if start is not None and candidate < start:
            candidate = start
        return candidate

    async def unknown_gl_accounts(self, codes: Collection[str]) -> list[str]:
        """The codes (nominal codes or names) the chart of accounts lacks; read-only."""
        found = await self._resolve("accounts", set(codes))
        return sorted(c for c in set(codes) if c not in found)

    async def unknown_tax_codes(self, codes: Collection[str]) -> list[str]:
        """The tax codes (ids or names) that are not tax rates of the business; read-only."""
        found = await self._resolve("tax", set(codes))
        return sorted(c for c in set(codes) if c not in found)

    async def check_connection(self) -> None:
        """Token, business and permissions in one call; raises ``auth``/``unavailable``."""
        try:
            await self._financial_settings(0)
        except LedgerError as exc:
            if exc.reason is Reason.VALIDATION:  # 404: no such business for this user
                raise LedgerError(
                    Reason.AUTH,
                    f"Sage business {self.client.business_id} is not reachable with tenant "
                    f"{self.tenant_id}'s connection ({exc.message}); check ledger.company or "
                    f"reconnect with `{RECONNECT.format(tenant=self.tenant_id)}`.",
                ) from None
            raise


__all__ = [
    "MAX_ATTACHMENT_BYTES",
    "SageAccountingClient",
    "SageAccountingLedger",
    "idempotency_id",
    "parse_issues",
    "search_term",
]
