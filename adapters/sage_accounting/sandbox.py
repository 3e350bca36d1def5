"""A Sage Accounting v3.1 stand-in: real HTTP, Sage's JSON, state, and misbehaviour on demand.

Run it with ``billstream sandbox sage-accounting [--port P] [options]``. When ready it prints
one JSON line: ``{"url", "api", "credentials": {"client_id", "client_secret", "business_id",
"refresh_token"}, "businesses": [...], "admin"}``. Fixed defaults: client id
``billstream-sandbox``, secret ``sandbox-secret``, business ``0d40342d0287cd6b13555c54afca6c90``.

What it does like Sage (as far as Sage documents it, see reference/sage-accounting.md):
- OAuth: ``GET /oauth2/auth/central`` (consents at once and redirects with ``code``/``state``),
  ``POST /token`` (codes live 60 s and work once; access tokens ``--access-token-ttl``,
  300 s by default; refresh tokens rotate on every use and live 31 days);
- ``/v3.1``: contacts, purchase invoices and credit notes (DRAFT or UNPAID, ``/release``),
  attachments (base64, 2.5 MiB at most), ledger accounts, tax rates, financial settings
  (``year_end_lockdown_date``: dates on or before it are refused), all with ``X-Business``,
  ``$items`` pages, ``attributes``, and errors as Sage's ``$severity``/``$dataCode``/
  ``$message``/``$source`` array;
- ``idempotency_id`` inside the resource: the same id within 7 days returns the first
  response and creates nothing; the same id on another resource type is
  ``IdempotencyResourceMismatch``;
- request bodies and query parameters are checked against Sage's Swagger definitions
  (strictly: unknown fields are refused) and answered 422 when they break them.

Misbehaviour: ``--latency-ms``, ``--fail-rate`` (503 before the work, a 502 gateway page after
the work, or an answer that comes too late), ``--rate-limit``/``--rate-window`` and
``--byte-limit``/``--byte-window`` (429 with ``Retry-After``), ``--max-concurrent``,
``--closed-before``, and admin endpoints under ``/_admin`` (periods, inventory, counters,
deleting bills, attachments and suppliers, expiring tokens, changing faults at run time).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import contextlib
import datetime as dt
import json
import logging
import math
import os
import random
import re
import secrets
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from adapters.sage_accounting import wire
from adapters.sage_accounting.schema import spec
from domain.money import round_money

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "billstream-sandbox"
DEFAULT_CLIENT_SECRET = "sandbox-secret"
DEFAULT_BUSINESS_ID = "0d40342d0287cd6b13555c54afca6c90"
MAX_FILE_SIZE = 2_621_440
IDEMPOTENCY_WINDOW = 7 * 24 * 3600.0
CODE_TTL = 60.0
MIME_TYPES = {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/tiff"}
FAIL_MODES = ("before", "after", "timeout")
_ITEM_RE = re.compile(r"(?m)^billstream item: (\S+)\s*$")

DEFAULT_CHART: tuple[tuple[int, str], ...] = (
    (5000, "Cost of sales - goods"),
    (6100, "Advertising and marketing"),
    (6210, "Software subscriptions"),
    (6320, "Telephone"),
    (6400, "Travel"),
    (6500, "Repairs"),
    (6700, "Professional fees"),
    (7100, "Rent"),
    (7200, "Electricity"),
    (7400, "Travelling"),
    (7500, "Office costs"),
    (7502, "Telephone and internet"),
    (7600, "Legal and professional fees"),
    (7700, "Equipment hire"),
    (7710, "Accountancy fees"),
    (7800, "Repairs and maintenance"),
)
DEFAULT_TAX_RATES: tuple[tuple[str, str, str], ...] = (
    ("GB_STANDARD", "Standard", "20"),
    ("GB_LOWER", "Lower Rate", "5"),
    ("GB_ZERO", "Zero Rated", "0"),
    ("GB_EXEMPT", "Exempt", "0"),
    ("GB_NO_TAX", "No VAT", "0"),
)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return uuid.uuid4().hex


def _base(kind: str, id_: str, shown: str) -> dict[str, Any]:
    return {"id": id_, "displayed_as": shown, "$path": f"/{kind}/{id_}"}


def _issue(source: str, message: str, code: str = "RecordInvalid") -> dict[str, str]:
    return {"$severity": "error", "$dataCode": code, "$message": message, "$source": source}


class ApiError(Exception):
    def __init__(
        self, status: int, issues: list[dict[str, str]], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.issues = issues
        self.headers = headers or {}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=wire.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _plain(body: Any, status: int = 200) -> web.Response:
    """Admin answers: ordinary JSON (not Sage's wire, so floats are fine)."""
    return web.Response(
        text=json.dumps(body, default=str), status=status, content_type="application/json"
    )


@dataclass
class SandboxOptions:
    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: int = 0
    fail_rate: float = 0.0
    fail_modes: tuple[str, ...] = FAIL_MODES
    hang_seconds: float = 30.0
    closed_before: dt.date | None = None
    rate_limit: int = 200
    rate_window: float = 60.0
    byte_limit: int = 100_000_000
    byte_window: float = 3600.0
    max_concurrent: int = 0
    access_token_ttl: int = 300
    refresh_token_ttl: int = 2_678_400
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    business_id: str = DEFAULT_BUSINESS_ID
    businesses_file: Path | None = None
    state_dir: Path | None = None
    seed: int | None = None
    # stop when stdin reaches EOF: a parent that dies (even by SIGKILL) takes us with it
    exit_on_stdin_eof: bool = False


# -- state --------------------------------------------------------------------------------------


@dataclass
class Business:
    id: str
    name: str
    base_currency: str = "GBP"
    currencies: list[str] = field(default_factory=lambda: ["GBP"])
    multi_currency: bool = False
    lock_date: dt.date | None = None
    accounts_start: dt.date | None = None
    year_end: dt.date = dt.date(2026, 12, 31)
    ledger_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    tax_rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    purchase_invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    purchase_credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # attachment id -> base64
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    sequence: int = 0
    # lock date before an admin close_period(P), so open_period(P) can put it back
    period_locks: dict[str, dt.date | None] = field(default_factory=dict)
    # not persisted: windows of the rate and byte limits, requests in flight
    calls: deque[float] = field(default_factory=deque)
    sent_bytes: deque[tuple[float, int]] = field(default_factory=deque)
    inflight: int = 0

    def next_number(self) -> int:
        self.sequence += 1
        return self.sequence

    def collection(self, kind: str) -> dict[str, dict[str, Any]]:
        stores: dict[str, dict[str, dict[str, Any]]] = {
            "contacts": self.contacts,
            "purchase_invoices": self.purchase_invoices,
            "purchase_credit_notes": self.purchase_credit_notes,
            "attachments": self.attachments,
            "ledger_accounts": self.ledger_accounts,
            "tax_rates": self.tax_rates,
        }
        return stores[kind]

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "$path": "/financial_settings",
            "year_end_date": self.year_end.isoformat(),
            "base_currency": _base("currencies", self.base_currency, self.base_currency),
            "multi_currency_enabled": self.multi_currency,
            "use_live_exchange_rates": False,
            "accounting_type": "accrual",
            "updated_at": _now_iso(),
        }
        # Sage sends null for an unset date; the Swagger type is a plain string, so the
        # sandbox leaves the key out instead (readers treat both as "none").
        if self.lock_date is not None:
            out["year_end_lockdown_date"] = self.lock_date.isoformat()
        if self.accounts_start is not None:
            out["accounts_start_date"] = self.accounts_start.isoformat()
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "base_currency": self.base_currency,
            "currencies": self.currencies,
            "multi_currency": self.multi_currency,
            "lock_date": self.lock_date.isoformat() if self.lock_date else None,
            "accounts_start": self.accounts_start.isoformat() if self.accounts_start else None,
            "year_end": self.year_end.isoformat(),
            "ledger_accounts": self.ledger_accounts,
            "tax_rates": self.tax_rates,
            "contacts": self.contacts,
            "purchase_invoices": self.purchase_invoices,
            "purchase_credit_notes": self.purchase_credit_notes,
            "attachments": self.attachments,
            "files": self.files,
            "idempotency": self.idempotency,
            "sequence": self.sequence,
            "period_locks": {k: v.isoformat() if v else None for k, v in self.period_locks.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Business:
        def day(v: Any) -> dt.date | None:
            return dt.date.fromisoformat(v) if v else None

        return cls(
            id=data["id"],
            name=data["name"],
            base_currency=data["base_currency"],
            currencies=list(data["currencies"]),
            multi_currency=bool(data["multi_currency"]),
            lock_date=day(data.get("lock_date")),
            accounts_start=day(data.get("accounts_start")),
            year_end=day(data.get("year_end")) or dt.date(2026, 12, 31),
            ledger_accounts=data["ledger_accounts"],
            tax_rates=data["tax_rates"],
            contacts=data["contacts"],
            purchase_invoices=data["purchase_invoices"],
            purchase_credit_notes=data["purchase_credit_notes"],
            attachments=data["attachments"],
            files=data["files"],
            idempotency=data["idempotency"],
            sequence=int(data["sequence"]),
            period_locks={k: day(v) for k, v in data.get("period_locks", {}).items()},
        )


def make_business(config: dict[str, Any], *, default_id: str | None = None) -> Business:
    """A business from a config dict (the ``--businesses-file`` / admin format)."""
    base = str(config.get("base_currency", "GBP")).upper()
    currencies = [str(c).upper() for c in config.get("currencies", [base])]
    if base not in currencies:
        currencies.insert(0, base)
    biz = Business(
        id=str(config.get("id") or default_id or _new_id()),
        name=str(config.get("name") or "Sandbox Business"),
        base_currency=base,
        currencies=currencies,
        multi_currency=bool(config.get("multi_currency", len(currencies) > 1)),
        lock_date=dt.date.fromisoformat(config["lock_date"]) if config.get("lock_date") else None,
        accounts_start=(
            dt.date.fromisoformat(config["accounts_start_date"])
            if config.get("accounts_start_date")
            else None
        ),
    )
    if not re.fullmatch(r"[0-9a-f]{32}", biz.id):
        raise ValueError(f"business id {biz.id!r} is not 32 lowercase hex characters")
    rates = config.get("tax_rates") or [
        {"id": i, "name": n, "percentage": p} for i, n, p in DEFAULT_TAX_RATES
    ]
    for rate in rates:
        rid = str(rate["id"])
        pct = Decimal(str(rate.get("percentage", "0")))
        name = str(rate.get("name") or rid)
        biz.tax_rates[rid] = {
            **_base("tax_rates", rid, f"{name} {pct}%"),
            "name": name,
            "percentage": pct,
            "is_visible": True,
            "editable": False,
            "deletable": False,
            "is_combined_rate": False,
            "created_at": _now_iso(),
            "updated_at": _now_iso(),
        }
    accounts = config.get("ledger_accounts") or [
        {"nominal_code": c, "name": n} for c, n in DEFAULT_CHART
    ]
    for acct in accounts:
        aid = _new_id()
        code = int(acct["nominal_code"])
        name = str(acct.get("name") or f"Account {code}")
        biz.ledger_accounts[aid] = {
            **_base("ledger_accounts", aid, f"{name} ({code})"),
            "nominal_code": code,
            "name": name,
            "display_name": name,
            "included_in_chart": True,
            "visible_in_expenses": bool(acct.get("visible_in_expenses", True)),
            "visible_in_sales": False,
            "visible_in_banking": False,
            "visible_in_journals": True,
            "visible_in_other_payments": True,
            "visible_in_other_receipts": False,
            "visible_in_reporting": True,
            "fixed_tax_rate": False,
            "is_control_account": False,
            "ledger_account_type": _base("ledger_account_types", "EXPENSES", "Expenses"),
            "created_at": _now_iso(),
            "updated_at": _now_iso(),
        }
    return biz


@dataclass
class Grant:
    """A refresh token and what it may do."""

    client_id: str
    expires_at: float
    used: bool = False


class SageSandbox:
    """The state and the aiohttp application of one sandbox."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.random = random.Random(options.seed)
        self.businesses: dict[str, Business] = {}
        self.codes: dict[str, tuple[str, str, float]] = {}  # code -> client, redirect, expiry
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.ready_tokens: dict[str, str] = {}  # business id -> refresh token for the ready line
        self.stats: dict[str, Any] = self._empty_stats()
        self._dirty = False
        self._load_or_seed()

    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {
            "requests": 0,
            "by_route": {},
            "by_business": {},
            "by_status": {},
            "throttled": 0,
            "faults": dict.fromkeys(FAIL_MODES, 0),
            "schema_violations": 0,
            "token_requests": 0,
            "token_refreshes": 0,
            "token_failures": 0,
        }

    # -- setup and persistence -------------------------------------------------------------------

    def _state_file(self) -> Path | None:
        d = self.options.state_dir
        return None if d is None else d / "sage-accounting-sandbox.json"

    def _load_or_seed(self) -> None:
        path = self._state_file()
        if path is not None and path.exists():
            data = wire.loads(path.read_bytes())
            for b in data["businesses"]:
                biz = Business.from_json(b)
                self.businesses[biz.id] = biz
            self.access_tokens = {k: float(v) for k, v in data["access_tokens"].items()}
            self.refresh_tokens = {
                k: Grant(v["client_id"], float(v["expires_at"]), bool(v["used"]))
                for k, v in data["refresh_tokens"].items()
            }
            self.ready_tokens = dict(data.get("ready_tokens", {}))
            return
        configs: list[dict[str, Any]] = []
        if self.options.businesses_file is not None:
            raw = json.loads(self.options.businesses_file.read_text(encoding="utf-8"))
            configs = list(raw["businesses"] if isinstance(raw, dict) else raw)
        if not configs:
            configs = [{"id": self.options.business_id, "name": "Sandbox Trading Ltd"}]
        for config in configs:
            biz = make_business(config)
            if self.options.closed_before is not None:
                biz.lock_date = self.options.closed_before - dt.timedelta(days=1)
            self.businesses[biz.id] = biz
            self.ready_tokens[biz.id] = self.mint_refresh_token(self.options.client_id)

    def snapshot(self) -> bytes:
        return wire.dumps(
            {
                "businesses": [b.to_json() for b in self.businesses.values()],
                "access_tokens": {k: Decimal(repr(v)) for k, v in self.access_tokens.items()},
                "refresh_tokens": {
                    k: {
                        "client_id": g.client_id,
                        "expires_at": Decimal(repr(g.expires_at)),
                        "used": g.used,
                    }
                    for k, g in self.refresh_tokens.items()
                },
                "ready_tokens": self.ready_tokens,
            }
        )

    def save(self) -> None:
        path = self._state_file()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.snapshot())
        tmp.replace(path)
        self._dirty = False

    def ready_line(self, url: str) -> dict[str, Any]:
        first = next(iter(self.businesses.values()))
        return {
            "url": url,
            "api": f"{url}/v3.1",
            "admin": f"{url}/_admin",
            "credentials": {
                "client_id": self.options.client_id,
                "client_secret": self.options.client_secret,
                "business_id": first.id,
                "refresh_token": self.ready_tokens.get(first.id, ""),
            },
            "businesses": [
                {"business_id": b.id, "name": b.name, "refresh_token": self.ready_tokens.get(b.id)}
                for b in self.businesses.values()
            ],
        }

    # -- OAuth ------------------------------------------------------------------------------------

    def mint_refresh_token(self, client_id: str) -> str:
        token = secrets.token_urlsafe(32)
        self.refresh_tokens[token] = Grant(client_id, time.time() + self.options.refresh_token_ttl)
        self._dirty = True
        return token

    def _issue_tokens(self, client_id: str) -> dict[str, Any]:
        access = secrets.token_urlsafe(32)
        self.access_tokens[access] = time.time() + self.options.access_token_ttl
        now = time.time()
        # expired access tokens pile up otherwise
        for tok in [t for t, exp in self.access_tokens.items() if exp < now - 3600]:
            del self.access_tokens[tok]
        self._dirty = True
        return {
            "access_token": access,
            "scope": "full_access",
            "token_type": "bearer",
            "expires_in": self.options.access_token_ttl,
            "refresh_token": self.mint_refresh_token(client_id),
            "refresh_token_expires_in": self.options.refresh_token_ttl,
            "requested_by_id": str(uuid.UUID(int=0x5A6E)),
        }

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.options.client_id:
            return web.Response(status=400, text="Unknown client_id.")
        if q.get("response_type") != "code":
            return web.Response(status=400, text="response_type must be code.")
        redirect = q.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            return web.Response(status=400, text="redirect_uri must be an absolute URL.")
        code = secrets.token_urlsafe(24)
        self.codes[code] = (self.options.client_id, redirect, time.monotonic() + CODE_TTL)
        params = {"code": code, "country": q.get("country", "gb")}
        if "state" in q:
            params["state"] = q["state"]
        query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        raise web.HTTPFound(target)

    async def token(self, request: web.Request) -> web.Response:
        self.stats["token_requests"] += 1
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        secret = str(form.get("client_secret", ""))
        if not client_id and request.headers.get("Authorization", "").startswith("Basic "):
            with contextlib.suppress(ValueError, binascii.Error):
                raw = base64.b64decode(request.headers["Authorization"][6:]).decode()
                client_id, _, secret = raw.partition(":")
        if client_id != self.options.client_id or not secrets.compare_digest(
            secret, self.options.client_secret
        ):
            self.stats["token_failures"] += 1
            return _json({"error": "invalid_client"}, 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            entry = self.codes.pop(str(form.get("code", "")), None)
            if (
                entry is None
                or entry[0] != client_id
                or entry[1] != form.get("redirect_uri")
                or time.monotonic() > entry[2]
            ):
                self.stats["token_failures"] += 1
                return _json({"error": "invalid_grant"}, 400)
            return _json(self._issue_tokens(client_id))
        if grant == "refresh_token":
            old = str(form.get("refresh_token", ""))
            g = self.refresh_tokens.get(old)
            if g is None or g.used or g.client_id != client_id or time.time() >= g.expires_at:
                self.stats["token_failures"] += 1
                return _json({"error": "invalid_grant"}, 400)
            g.used = True  # rotation: the old one is dead from now on
            self.stats["token_refreshes"] += 1
            return _json(self._issue_tokens(client_id))
        self.stats["token_failures"] += 1
        return _json({"error": "unsupported_grant_type"}, 400)

    # -- the API pipeline: auth, limits, faults, validation --------------------------------------

    def _business(self, request: web.Request) -> Business:
        wanted = request.headers.get("X-Business")
        if not wanted:
            return next(iter(self.businesses.values()))  # Sage: the user's lead business
        biz = self.businesses.get(wanted)
        if biz is None:
            raise ApiError(404, [_issue("X-Business", "Business not found", "RecordNotFound")])
        return biz

    def _admit(self, biz: Business, nbytes: int) -> None:
        now = time.monotonic()
        o = self.options
        while biz.calls and biz.calls[0] <= now - o.rate_window:
            biz.calls.popleft()
        while biz.sent_bytes and biz.sent_bytes[0][0] <= now - o.byte_window:
            biz.sent_bytes.popleft()
        wait = 0.0
        if len(biz.calls) >= o.rate_limit:
            wait = biz.calls[len(biz.calls) - o.rate_limit] + o.rate_window - now
        used = sum(n for _, n in biz.sent_bytes)
        if used + nbytes > o.byte_limit:
            excess, freed = used + nbytes - o.byte_limit, 0
            for at, n in biz.sent_bytes:
                freed += n
                if freed >= excess:
                    wait = max(wait, at + o.byte_window - now)
                    break
            else:
                wait = max(wait, o.byte_window)  # bigger than the whole budget
        if o.max_concurrent and biz.inflight >= o.max_concurrent:
            wait = max(wait, 1.0)
        if wait > 0:
            self.stats["throttled"] += 1
            raise ApiError(
                429,
                [_issue("", "Too many requests; slow down.", "TooManyRequests")],
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        biz.calls.append(now)
        biz.sent_bytes.append((now, nbytes))

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.access_tokens.get(token)
        if expiry is None or time.time() >= expiry:
            raise ApiError(
                401,
                [_issue("", "Access token invalid or expired.", "AuthenticationFailure")],
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    def _count(self, route: str, biz_id: str | None, status: int) -> None:
        s = self.stats
        s["requests"] += 1
        s["by_route"][route] = s["by_route"].get(route, 0) + 1
        key = str(status)
        s["by_status"][key] = s["by_status"].get(key, 0) + 1
        if biz_id:
            s["by_business"][biz_id] = s["by_business"].get(biz_id, 0) + 1

    def api(
        self, op_id: str | None, handler: Callable[..., Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a handler with everything every API call goes through."""

        async def wrapped(request: web.Request) -> web.Response:
            route = f"{request.method} {request.match_info.route.resource.canonical}"  # type: ignore[union-attr]
            biz_id: str | None = None
            o = self.options
            try:
                if o.latency_ms:
                    await asyncio.sleep(o.latency_ms / 1000 * self.random.uniform(0.5, 1.5))
                raw = await request.read()
                self._authenticate(request)
                biz = self._business(request)
                biz_id = biz.id
                self._admit(biz, len(raw))
                body = self._body(op_id, request, raw)
                fault = self._fault()
                if fault == "before":
                    self.stats["faults"]["before"] += 1
                    raise ApiError(
                        503,
                        [_issue("", "Service unavailable; try again.", "ServiceUnavailable")],
                        {"Retry-After": "1"},
                    )
                biz.inflight += 1
                try:
                    response = await handler(request, biz, body)
                finally:
                    biz.inflight -= 1
                if fault == "after":
                    self.stats["faults"]["after"] += 1
                    self._count(route, biz_id, 502)
                    return web.Response(
                        status=502,
                        text="<html><body>502 Bad Gateway</body></html>",
                        content_type="text/html",
                    )
                if fault == "timeout":
                    self.stats["faults"]["timeout"] += 1
                    await asyncio.sleep(o.hang_seconds)
                self._count(route, biz_id, response.status)
                return response
            except ApiError as err:
                self._count(route, biz_id, err.status)
                return _json(err.issues, err.status, err.headers)

        return wrapped

    def _fault(self) -> str | None:
        o = self.options
        if o.fail_rate > 0 and self.random.random() < o.fail_rate:
            return self.random.choice(o.fail_modes)
        return None

    def _body(self, op_id: str | None, request: web.Request, raw: bytes) -> Any:
        body: Any = None
        if raw:
            try:
                body = wire.loads(raw)
            except ValueError:
                raise ApiError(
                    400, [_issue("", "The request body is not JSON.", "InvalidJSON")]
                ) from None
        if op_id is None:
            return body
        errors = spec().request_errors(op_id, body, dict(request.query))
        if errors:
            self.stats["schema_violations"] += 1
            raise ApiError(
                422,
                [_issue(e.split(":", 1)[0], e.split(":", 1)[-1].strip()) for e in errors[:20]],
            )
        return body

    # -- shaping responses ---------------------------------------------------------------------

    _BASE_KEYS = ("id", "displayed_as", "$path")

    @classmethod
    def _project(cls, item: dict[str, Any], attributes: str | None) -> dict[str, Any]:
        if attributes == "all":
            return dict(item)
        wanted = {a.strip() for a in (attributes or "").split(",") if a.strip()}
        return {k: v for k, v in item.items() if k in cls._BASE_KEYS or k in wanted}

    def _page(
        self,
        request: web.Request,
        path: str,
        items: list[dict[str, Any]],
        extra: Callable[[dict[str, Any], str | None], dict[str, Any]] | None = None,
    ) -> web.Response:
        per_page = int(request.query.get("items_per_page", "20"))
        page = max(1, int(request.query.get("page", "1")))
        total = len(items)
        chunk = items[(page - 1) * per_page : page * per_page]
        attributes = request.query.get("attributes")
        shown = [extra(i, attributes) if extra else self._project(i, attributes) for i in chunk]
        others = {k: v for k, v in request.query.items() if k != "page"}

        def link(n: int) -> str:
            return f"{path}?{urlencode({**others, 'page': n})}"

        return _json(
            {
                "$total": total,
                "$page": page,
                "$next": link(page + 1) if page * per_page < total else None,
                "$back": link(page - 1) if page > 1 else None,
                "$itemsPerPage": per_page,
                "$items": shown,
            }
        )

    # -- reference data ----------------------------------------------------------------------------

    async def get_ledger_accounts(
        self, request: web.Request, biz: Business, _: Any
    ) -> web.Response:
        items = sorted(biz.ledger_accounts.values(), key=lambda a: a["nominal_code"])
        visible = request.query.get("visible_in")
        if visible:
            items = [a for a in items if a.get(f"visible_in_{visible}")]
        search = request.query.get("search", "").casefold()
        if search:
            items = [a for a in items if search in f"{a['nominal_code']} {a['name']}".casefold()]
        return self._page(request, "/ledger_accounts", items)

    async def get_tax_rates(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        return self._page(request, "/tax_rates", list(biz.tax_rates.values()))

    async def get_financial_settings(
        self, request: web.Request, biz: Business, _: Any
    ) -> web.Response:
        return _json(biz.settings())

    async def put_financial_settings(
        self, request: web.Request, biz: Business, body: Any
    ) -> web.Response:
        fs = body["financial_settings"]
        try:
            if "year_end_lockdown_date" in fs:
                biz.lock_date = dt.date.fromisoformat(fs["year_end_lockdown_date"])
            if "accounts_start_date" in fs:
                biz.accounts_start = dt.date.fromisoformat(fs["accounts_start_date"])
            if "year_end_date" in fs:
                biz.year_end = dt.date.fromisoformat(fs["year_end_date"])
        except ValueError:
            raise ApiError(422, [_issue("financial_settings", "Invalid date.")]) from None
        if "multi_currency_enabled" in fs:
            biz.multi_currency = bool(fs["multi_currency_enabled"])
        self._dirty = True
        return _json(biz.settings())

    async def get_businesses(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        items = [
            {**_base("businesses", b.id, b.name), "name": b.name} for b in self.businesses.values()
        ]
        return self._page(request, "/businesses", items)

    # -- idempotency ---------------------------------------------------------------------------

    def _replay(self, biz: Business, kind: str, resource: dict[str, Any]) -> web.Response | None:
        key = resource.get("idempotency_id")
        if not key:
            return None
        entry = biz.idempotency.get(key)
        if entry is None or time.time() - float(entry["at"]) > IDEMPOTENCY_WINDOW:
            return None
        if entry["type"] != kind:
            raise ApiError(
                422,
                [_issue("idempotency_id", "Entity type mismatch", "IdempotencyResourceMismatch")],
            )
        return _json(entry["body"], int(entry["status"]))

    def _remember(
        self, biz: Business, kind: str, resource: dict[str, Any], status: int, body: dict[str, Any]
    ) -> None:
        key = resource.get("idempotency_id")
        if key:
            biz.idempotency[key] = {
                "type": kind,
                "status": status,
                "body": body,
                "at": Decimal(repr(time.time())),
            }

    # -- contacts --------------------------------------------------------------------------------

    async def get_contacts(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        q = request.query
        items = sorted(biz.contacts.values(), key=lambda c: (c["created_at"], c["id"]))
        if q.get("contact_type_id"):
            items = [
                c for c in items if any(t["id"] == q["contact_type_id"] for t in c["contact_types"])
            ]
        term = q.get("search", "").casefold()
        if term:
            items = [
                c
                for c in items
                if term in c["name"].casefold() or term in c.get("reference", "").casefold()
            ]
        return self._page(request, "/contacts", items)

    async def get_contact(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        contact = biz.contacts.get(request.match_info["key"])
        if contact is None:
            raise ApiError(404, [_issue("key", "Contact not found", "RecordNotFound")])
        return _json(self._project(contact, request.query.get("attributes", "all")))

    async def post_contacts(self, request: web.Request, biz: Business, body: Any) -> web.Response:
        c = body["contact"]
        replay = self._replay(biz, "contact", c)
        if replay is not None:
            return replay
        issues = []
        name = str(c["name"]).strip()
        if not name:
            issues.append(_issue("name", "This field is required."))
        if len(name) > 100:
            issues.append(_issue("name", "is too long (maximum is 100 characters)"))
        types = c["contact_type_ids"]
        if not types or any(t not in {"VENDOR", "CUSTOMER"} for t in types):
            issues.append(_issue("contact_type_ids", "has to be either CUSTOMER or VENDOR"))
        tax = c.get("tax_number")
        if tax is not None and not re.fullmatch(r"[A-Za-z0-9 .\-/]{4,30}", tax):
            issues.append(_issue("tax_number", f"Tax number {tax} is invalid"))
        ref = c.get("reference")
        n = biz.next_number()
        if ref is None:
            ref = f"V{n:05d}"
        if len(ref) > 10:
            issues.append(_issue("reference", "is too long (maximum is 10 characters)"))
        elif any(x.get("reference") == ref for x in biz.contacts.values()):
            issues.append(_issue("reference", "has already been taken"))
        currency = c.get("currency_id", biz.base_currency)
        if currency not in biz.currencies:
            issues.append(_issue("currency_id", f"Currency {currency} is not enabled"))
        if issues:
            raise ApiError(422, issues)
        cid = _new_id()
        now = _now_iso()
        contact = {
            **_base("contacts", cid, f"{name} ({ref})"),
            "created_at": now,
            "updated_at": now,
            "contact_types": [
                _base("contact_types", t, "Supplier" if t == "VENDOR" else "Customer")
                for t in types
            ],
            "name": name,
            "reference": ref,
            "currency": _base("currencies", currency, currency),
            "deletable": True,
            "system": False,
        }
        if tax:
            contact["tax_number"] = tax
        if c.get("notes"):
            contact["notes"] = str(c["notes"])[:4000]
        biz.contacts[cid] = contact
        self._remember(biz, "contact", c, 201, contact)
        self._dirty = True
        return _json(contact, 201)

    # -- bills -------------------------------------------------------------------------------------

    def _amount(self, value: Any, source: str, issues: list[dict[str, str]]) -> Decimal | None:
        if value is None:
            return None
        try:
            return Decimal(value) if not isinstance(value, Decimal) else value
        except (InvalidOperation, TypeError):
            issues.append(_issue(source, "is not a number"))
            return None

    def _make_bill(self, biz: Business, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        credit = kind == "purchase_credit_notes"
        lines_field = "credit_note_lines" if credit else "invoice_lines"
        issues: list[dict[str, str]] = []
        contact = biz.contacts.get(doc["contact_id"])
        if contact is None or not any(t["id"] == "VENDOR" for t in contact["contact_types"]):
            issues.append(_issue("contact_id", "Contact is not a valid supplier"))
        try:
            day = dt.date.fromisoformat(doc["date"])
        except ValueError:
            raise ApiError(422, [_issue("date", "is not a valid date")]) from None
        if biz.lock_date is not None and day <= biz.lock_date:
            issues.append(
                _issue(
                    "date",
                    f"The date must be after the lock date ({biz.lock_date.isoformat()}); "
                    "transactions in a locked period cannot be created.",
                )
            )
        if biz.accounts_start is not None and day < biz.accounts_start:
            issues.append(_issue("date", "must be on or after the accounts start date"))
        due = None
        if not credit:
            due = dt.date.fromisoformat(doc["due_date"])
            if due < day:
                issues.append(_issue("due_date", "must be on or after the invoice date"))
        for name, limit in (("vendor_reference", 31), ("reference", 25), ("notes", 2000)):
            if len(str(doc.get(name) or "")) > limit:
                issues.append(_issue(name, f"is too long (maximum is {limit} characters)"))
        currency = str(doc.get("currency_id") or biz.base_currency)
        if currency != biz.base_currency and (
            not biz.multi_currency or currency not in biz.currencies
        ):
            issues.append(_issue("currency_id", f"Currency {currency} is not enabled"))
        status = doc.get("status_id") or "UNPAID"
        if status not in {"DRAFT", "UNPAID"}:
            issues.append(_issue("status_id", f"Status {status} cannot be set on create"))
        lines_in = doc[lines_field]
        if not lines_in:
            issues.append(_issue(lines_field, "at least one line is required"))
        lines_out = []
        net_sum = tax_sum = Decimal(0)
        for i, ln in enumerate(lines_in):
            src = f"{lines_field}[{i}]"
            account = biz.ledger_accounts.get(ln["ledger_account_id"])
            if account is None:
                issues.append(_issue(f"{src}.ledger_account_id", "Ledger account is invalid"))
            rate = None
            if "tax_rate_id" in ln:
                rate = biz.tax_rates.get(ln["tax_rate_id"])
                if rate is None:
                    issues.append(_issue(f"{src}.tax_rate_id", "Tax rate is invalid"))
            qty = self._amount(ln["quantity"], f"{src}.quantity", issues) or Decimal(0)
            price = self._amount(ln["unit_price"], f"{src}.unit_price", issues) or Decimal(0)
            tax = self._amount(ln.get("tax_amount"), f"{src}.tax_amount", issues)
            if tax is None:
                if rate is not None and rate["percentage"] > 0:
                    issues.append(_issue(f"{src}.tax_amount", "This field is required."))
                tax = Decimal(0)
            if ln.get("unit_price_includes_tax"):
                net = round_money(qty * price - tax, currency)
            else:
                net = round_money(qty * price, currency)
            tax = round_money(tax, currency)
            net_sum += net
            tax_sum += tax
            line: dict[str, Any] = {
                "id": _new_id(),
                "displayed_as": str(ln["description"]),
                "quantity": qty,
                "unit_price": price,
                "net_amount": net,
                "tax_amount": tax,
                "total_amount": net + tax,
                "unit_price_includes_tax": bool(ln.get("unit_price_includes_tax", False)),
            }
            if account is not None:
                line["ledger_account"] = _base(
                    "ledger_accounts", account["id"], account["displayed_as"]
                )
            if rate is not None:
                line["tax_rate"] = _base("tax_rates", rate["id"], rate["displayed_as"])
            lines_out.append(line)
        if issues:
            raise ApiError(422, issues)
        assert contact is not None
        bid = _new_id()
        n = biz.next_number()
        prefix = "PC" if credit else "PI"
        now = _now_iso()
        ttype = "PURCHASE_CREDIT_NOTE" if credit else "PURCHASE_INVOICE"
        bill: dict[str, Any] = {
            **_base(kind, bid, doc.get("vendor_reference") or f"{prefix}-{n}"),
            "created_at": now,
            "updated_at": now,
            "editable": True,
            "transaction_type": _base("transaction_types", ttype, ttype.replace("_", " ").title()),
            "contact": _base("contacts", contact["id"], contact["displayed_as"]),
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
            "currency": _base("currencies", currency, currency),
            "exchange_rate": Decimal(1),
            "status": _base(
                "artefact_statuses", status, "Draft" if status == "DRAFT" else "Unpaid"
            ),
            lines_field: lines_out,
        }
        if due is not None:
            bill["due_date"] = due.isoformat()
        return bill

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
        return _json(bill, 201)

    def _kind(self, request: web.Request) -> str:
        return request.match_info.route.resource.canonical.strip("/").split("/")[1]  # type: ignore[union-attr]

    async def get_bills(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        kind = self._kind(request)
        q = request.query
        items = sorted(biz.collection(kind).values(), key=lambda b: (b["created_at"], b["id"]))
        if q.get("contact_id"):
            items = [b for b in items if b["contact"]["id"] == q["contact_id"]]
        if q.get("status_id"):
            items = [b for b in items if b["status"]["id"] == q["status_id"]]
        term = q.get("search", "").casefold()
        if term:
            items = [
                b
                for b in items
                if term in b["reference"].casefold() or term in b["contact_name"].casefold()
            ]
        if "sort" in q and q["sort"].startswith(("date", "created_at", "updated_at")):
            name, _, direction = q["sort"].partition(":")
            items.sort(key=lambda b: str(b.get(name, "")), reverse=direction == "desc")
        return self._page(request, f"/{kind}", items)

    async def get_bill(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        bill = biz.collection(self._kind(request)).get(request.match_info["key"])
        if bill is None:
            raise ApiError(404, [_issue("key", "Record not found", "RecordNotFound")])
        return _json(self._project(bill, request.query.get("attributes", "all")))

    async def delete_bill(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        kind = self._kind(request)
        bill = biz.collection(kind).get(request.match_info["key"])
        if bill is None:
            raise ApiError(404, [_issue("key", "Record not found", "RecordNotFound")])
        if biz.lock_date is not None and dt.date.fromisoformat(bill["date"]) <= biz.lock_date:
            raise ApiError(422, [_issue("date", "The bill is in a locked period.")])
        self.remove_bill(biz, bill["id"])
        return web.Response(status=204)

    async def release_bill(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        bill = biz.collection(self._kind(request)).get(request.match_info["key"])
        if bill is None:
            raise ApiError(404, [_issue("key", "Record not found", "RecordNotFound")])
        if bill["status"]["id"] != "DRAFT":
            raise ApiError(422, [_issue("status_id", "Only a draft can be released.")])
        bill["status"] = _base("artefact_statuses", "UNPAID", "Unpaid")
        bill["updated_at"] = _now_iso()
        self._dirty = True
        return _json(bill, 201)

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

    # -- attachments ---------------------------------------------------------------------------

    _CONTEXTS = {
        "PURCHASE_INVOICE": "purchase_invoices",
        "PURCHASE_CREDIT_NOTE": "purchase_credit_notes",
    }

    def _attachment_view(
        self, biz: Business
    ) -> Callable[[dict[str, Any], str | None], dict[str, Any]]:
        def view(item: dict[str, Any], attributes: str | None) -> dict[str, Any]:
            out = self._project(item, attributes)
            wanted = {a.strip() for a in (attributes or "").split(",")}
            if attributes == "all" or "file" in wanted:
                out["file"] = biz.files.get(item["id"], "")
            return out

        return view

    async def get_attachments(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        q = request.query
        ctx_type, ctx_id = q.get("attachment_context_type_id"), q.get("attachment_context_id")
        if bool(ctx_type) != bool(ctx_id):
            raise ApiError(
                422,
                [
                    _issue(
                        "attachment_context_id",
                        "attachment_context_type_id and attachment_context_id go together",
                    )
                ],
            )
        items = sorted(biz.attachments.values(), key=lambda a: (a["created_at"], a["id"]))
        if ctx_type:
            items = [
                a
                for a in items
                if a["attachment_context_type"]["id"] == ctx_type
                and a["attachment_context"]["id"] == ctx_id
            ]
        return self._page(request, "/attachments", items, self._attachment_view(biz))

    async def get_attachment(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        att = biz.attachments.get(request.match_info["key"])
        if att is None:
            raise ApiError(404, [_issue("key", "Record not found", "RecordNotFound")])
        view = self._attachment_view(biz)
        return _json(view(att, request.query.get("attributes", "all")))

    async def delete_attachment(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        if biz.attachments.pop(request.match_info["key"], None) is None:
            raise ApiError(404, [_issue("key", "Record not found", "RecordNotFound")])
        biz.files.pop(request.match_info["key"], None)
        self._dirty = True
        return web.Response(status=204)

    async def post_attachments(
        self, request: web.Request, biz: Business, body: Any
    ) -> web.Response:
        a = body["attachment"]
        issues = []
        try:
            content = base64.b64decode(a["file"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, [_issue("file", "is not valid base64")]) from None
        if len(content) > MAX_FILE_SIZE:
            issues.append(_issue("file_size", f"must be at most {MAX_FILE_SIZE} bytes (2.5 MB)"))
        if "file_size" in a and a["file_size"] != len(content):
            issues.append(_issue("file_size", "does not match the file"))
        if a["mime_type"] not in MIME_TYPES:
            issues.append(_issue("mime_type", f"{a['mime_type']} is not an accepted file type"))
        ctx_type = a.get("attachment_context_type_id")
        ctx_id = a.get("attachment_context_id")
        context = None
        if ctx_type is not None:
            kind = self._CONTEXTS.get(ctx_type)
            if kind is None:
                issues.append(_issue("attachment_context_type_id", "is not supported"))
            else:
                context = biz.collection(kind).get(str(ctx_id))
                if context is None:
                    issues.append(_issue("attachment_context_id", "Record not found"))
        if issues:
            raise ApiError(422, issues)
        aid = _new_id()
        now = _now_iso()
        att: dict[str, Any] = {
            **_base("attachments", aid, a["file_name"]),
            "file_name": a["file_name"],
            "mime_type": a["mime_type"],
            "file_extension": a.get("file_extension", ""),
            "file_size": len(content),
            "$file_path": f"/attachments/{aid}/file",
            "is_public": bool(a.get("is_public", False)),
            "created_at": now,
            "updated_at": now,
        }
        if context is not None and ctx_type is not None:
            att["attachment_context_type"] = _base(
                "attachment_context_types", ctx_type, ctx_type.replace("_", " ").title()
            )
            att["attachment_context"] = _base(
                self._CONTEXTS[ctx_type], context["id"], context["displayed_as"]
            )
        biz.attachments[aid] = att
        biz.files[aid] = a["file"]
        self._dirty = True
        return _json(att, 201)

    # -- admin -------------------------------------------------------------------------------------

    def _admin_business(self, request: web.Request) -> Business:
        biz = self.businesses.get(request.match_info["business"])
        if biz is None:
            raise web.HTTPNotFound(text="no such business")
        return biz

    def inventory(self, biz: Business) -> dict[str, Any]:
        items: dict[str, dict[str, int]] = {}
        per_bill: dict[str, int] = {}
        for att in biz.attachments.values():
            ctx = att.get("attachment_context", {}).get("id")
            if ctx:
                per_bill[ctx] = per_bill.get(ctx, 0) + 1
        bills = [*biz.purchase_invoices.values(), *biz.purchase_credit_notes.values()]
        for bill in bills:
            mark = _ITEM_RE.search(bill.get("notes", ""))
            if not mark:
                continue
            entry = items.setdefault(mark.group(1), {"bills": 0, "attachments": 0})
            entry["bills"] += 1
            entry["attachments"] += per_bill.get(bill["id"], 0)
        return {
            "items": items,
            "bills": len(bills),
            "attachments": len(biz.attachments),
            "vendors": len(biz.contacts),
            "lock_date": biz.lock_date.isoformat() if biz.lock_date else None,
        }

    @staticmethod
    def _period_bounds(period: str) -> tuple[dt.date, dt.date]:
        first = dt.date.fromisoformat(f"{period}-01")
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        return first, last

    async def admin(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        data: dict[str, Any] = {}
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                data = json.loads(await request.read() or b"{}")
        if action == "stats":
            if request.method == "DELETE":
                self.stats = self._empty_stats()
            return _plain(self.stats)
        if action == "businesses" and request.method == "POST":
            biz = make_business(data)
            if biz.id in self.businesses:
                return web.json_response({"error": "exists"}, status=409)
            self.businesses[biz.id] = biz
            token = self.mint_refresh_token(self.options.client_id)
            self.ready_tokens[biz.id] = token
            return _plain({"business_id": biz.id, "refresh_token": token}, 201)
        if action == "refresh_tokens" and request.method == "POST":
            return _plain({"refresh_token": self.mint_refresh_token(self.options.client_id)}, 201)
        if action == "expire_refresh_tokens":
            wanted = data.get("refresh_token")
            n = 0
            for tok, grant in self.refresh_tokens.items():
                if wanted in (None, tok) and not grant.used:
                    grant.expires_at = 0.0
                    n += 1
            return _plain({"expired": n})
        if action == "expire_access_tokens":
            n = len(self.access_tokens)
            self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)
            return _plain({"expired": n})
        if action == "faults":
            o = self.options
            for name in ("fail_rate", "hang_seconds", "rate_window", "byte_window"):
                if name in data:
                    setattr(o, name, float(data[name]))
            for name in ("latency_ms", "rate_limit", "byte_limit", "max_concurrent"):
                if name in data:
                    setattr(o, name, int(data[name]))
            if "fail_modes" in data:
                o.fail_modes = tuple(m for m in data["fail_modes"] if m in FAIL_MODES)
            return _plain(
                {
                    k: getattr(o, k)
                    for k in (
                        "fail_rate",
                        "fail_modes",
                        "latency_ms",
                        "hang_seconds",
                        "rate_limit",
                        "rate_window",
                        "byte_limit",
                        "byte_window",
                        "max_concurrent",
                    )
                }
            )
        raise web.HTTPNotFound(text=f"unknown admin action {action}")

    async def admin_business(self, request: web.Request) -> web.Response:
        biz = self._admin_business(request)
        action = request.match_info["action"]
        data: dict[str, Any] = {}
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                data = json.loads(await request.read() or b"{}")
        if action == "inventory":
            return _plain(self.inventory(biz))
        if action == "lock_date":
            value = data.get("date")
            biz.lock_date = dt.date.fromisoformat(value) if value else None
        elif action in {"close_period", "open_period"}:
            period = str(data["period"])
            first, last = self._period_bounds(period)
            if action == "close_period":
                # Sage closes by lock date: everything up to the end of the month.
                biz.period_locks.setdefault(period, biz.lock_date)
                biz.lock_date = max(biz.lock_date or last, last)
            else:
                # Reopening puts back the lock date the close moved (the months before
                # reopen too), and in any case opens the month itself.
                if period in biz.period_locks:
                    biz.lock_date = biz.period_locks.pop(period)
                if biz.lock_date is not None and biz.lock_date >= first:
                    biz.lock_date = first - dt.timedelta(days=1)
        elif action == "delete_bill":
            if not self.remove_bill(biz, str(data["bill_id"])):
                raise web.HTTPNotFound(text="no such bill")
        elif action == "delete_contact":
            if biz.contacts.pop(str(data["contact_id"]), None) is None:
                raise web.HTTPNotFound(text="no such contact")
        elif action == "delete_attachments":
            bill_id = str(data["bill_id"])
            gone = [
                a
                for a, att in biz.attachments.items()
                if att.get("attachment_context", {}).get("id") == bill_id
            ]
            for aid in gone:
                biz.attachments.pop(aid)
                biz.files.pop(aid, None)
            return _plain({"deleted": len(gone)})
        else:
            raise web.HTTPNotFound(text=f"unknown admin action {action}")
        self._dirty = True
        return _plain({"lock_date": biz.lock_date.isoformat() if biz.lock_date else None})

    # -- the application -----------------------------------------------------------------------

    def app(self) -> web.Application:
        # attachments are 2.5 MiB, a third more in base64, plus JSON: allow a little over
        app = web.Application(client_max_size=8 * 1024 * 1024)
        r = app.router
        r.add_get("/oauth2/auth/central", self.authorize)
        r.add_post("/token", self.token)
        v = "/v3.1"
        routes: Iterable[tuple[str, str, str | None, Callable[..., Awaitable[web.Response]]]] = (
            ("GET", "/businesses", None, self.get_businesses),
            ("GET", "/financial_settings", "getFinancialSettings", self.get_financial_settings),
            ("PUT", "/financial_settings", "putFinancialSettings", self.put_financial_settings),
            ("GET", "/ledger_accounts", "getLedgerAccounts", self.get_ledger_accounts),
            ("GET", "/tax_rates", "getTaxRates", self.get_tax_rates),
            ("GET", "/contacts", "getContacts", self.get_contacts),
            ("POST", "/contacts", "postContacts", self.post_contacts),
            ("GET", "/contacts/{key}", "getContactsKey", self.get_contact),
            ("GET", "/purchase_invoices", "getPurchaseInvoices", self.get_bills),
            ("POST", "/purchase_invoices", "postPurchaseInvoices", self.post_bill),
            ("GET", "/purchase_invoices/{key}", "getPurchaseInvoicesKey", self.get_bill),
            ("DELETE", "/purchase_invoices/{key}", "deletePurchaseInvoicesKey", self.delete_bill),
            (
                "POST",
                "/purchase_invoices/{key}/release",
                "postPurchaseInvoicesKeyRelease",
                self.release_bill,
            ),
            ("GET", "/purchase_credit_notes", "getPurchaseCreditNotes", self.get_bills),
            ("POST", "/purchase_credit_notes", "postPurchaseCreditNotes", self.post_bill),
            ("GET", "/purchase_credit_notes/{key}", "getPurchaseCreditNotesKey", self.get_bill),
            (
                "DELETE",
                "/purchase_credit_notes/{key}",
                "deletePurchaseCreditNotesKey",
                self.delete_bill,
            ),
            (
                "POST",
                "/purchase_credit_notes/{key}/release",
                "postPurchaseCreditNotesKeyRelease",
                self.release_bill,
            ),
            ("GET", "/attachments", "getAttachments", self.get_attachments),
            ("POST", "/attachments", "postAttachments", self.post_attachments),
            ("GET", "/attachments/{key}", "getAttachmentsKey", self.get_attachment),
            ("DELETE", "/attachments/{key}", "deleteAttachmentsKey", self.delete_attachment),
        )
        for method, path, op_id, handler in routes:
            r.add_route(method, v + path, self.api(op_id, handler))
        r.add_route("*", "/_admin/{action}", self.admin)
        r.add_route("*", "/_admin/businesses/{business}/{action}", self.admin_business)
        return app


@contextlib.asynccontextmanager
async def running(options: SandboxOptions) -> AsyncIterator[tuple[SageSandbox, str]]:
    """Serve a sandbox on the running loop; yields it and its base URL."""
    sandbox = SageSandbox(options)
    runner = web.AppRunner(sandbox.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    netloc = f"[{host}]" if ":" in str(host) else str(host)
    saver = asyncio.create_task(_autosave(sandbox))
    try:
        yield sandbox, f"http://{netloc}:{port}"
    finally:
        saver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await saver
        await runner.cleanup()
        sandbox.save()


async def _autosave(sandbox: SageSandbox) -> None:
    while True:
        await asyncio.sleep(1.0)
        if sandbox._dirty:
            try:
                sandbox.save()
            except OSError:
                log.exception("sage-accounting sandbox: cannot save its state")


async def serve(options: SandboxOptions, *, out: Callable[[str], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT, announcing readiness with one JSON line."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if options.exit_on_stdin_eof:
        fd = sys.stdin.fileno()

        def on_stdin() -> None:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                stop.set()

        loop.add_reader(fd, on_stdin)
    async with running(options) as (sandbox, url):
        line = json.dumps(sandbox.ready_line(url))
        if out is not None:
            out(line)
        else:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        await stop.wait()
