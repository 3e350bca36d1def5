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

The parts: ``gateway`` (what every API call goes through), ``oauth``, ``reference``,
``contacts``, ``bills``, ``attachments``, ``admin``; this module puts them together, keeps
the state across restarts and serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.sage_accounting import wire
from sandboxes.sage_accounting.admin import AdminMixin
from sandboxes.sage_accounting.attachments import AttachmentsMixin
from sandboxes.sage_accounting.contacts import ContactsMixin
from sandboxes.sage_accounting.core import empty_stats
from sandboxes.sage_accounting.gateway import GatewayMixin
from sandboxes.sage_accounting.reference import ReferenceMixin
from sandboxes.sage_accounting.state import (
    DEFAULT_BUSINESS_ID,
    DEFAULT_CHART,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FAIL_MODES,
    Business,
    Grant,
    SandboxOptions,
    make_business,
)
from sandboxes.serving import Announce, listening, print_ready_line, serve_until_stopped

__all__ = [
    "DEFAULT_BUSINESS_ID",
    "DEFAULT_CHART",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "FAIL_MODES",
    "Business",
    "SageSandbox",
    "SandboxOptions",
    "make_business",
    "running",
    "serve",
]

log = logging.getLogger(__name__)


class SageSandbox(GatewayMixin, ReferenceMixin, ContactsMixin, AttachmentsMixin, AdminMixin):
    """The state and the aiohttp application of one sandbox."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.random = random.Random(options.seed)
        self.businesses: dict[str, Business] = {}
        self.codes: dict[str, tuple[str, str, float]] = {}  # code -> client, redirect, expiry
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.ready_tokens: dict[str, str] = {}  # business id -> refresh token for the ready line
        self.stats: dict[str, Any] = empty_stats()
        self._dirty = False
        self._load_or_seed()

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
    started = False
    try:
        async with listening(sandbox.app(), options.host, options.port) as url:
            started = True
            saver = asyncio.create_task(_autosave(sandbox))
            try:
                yield sandbox, url
            finally:
                saver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await saver
    finally:
        if started:
            sandbox.save()


async def _autosave(sandbox: SageSandbox) -> None:
    while True:
        await asyncio.sleep(1.0)
        if sandbox._dirty:
            try:
                sandbox.save()
            except OSError:
                log.exception("sage-accounting sandbox: cannot save its state")


async def serve(options: SandboxOptions, *, announce: Announce = print_ready_line) -> None:
    """Run until SIGTERM or SIGINT, announcing readiness with one JSON line."""
    box: list[SageSandbox] = []

    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[str]:
        async with running(options) as (sandbox, url):
            box.append(sandbox)
            yield url

    await serve_until_stopped(
        serving(),
        lambda url: box[0].ready_line(url),
        announce=announce,
        exit_on_stdin_eof=options.exit_on_stdin_eof,
    )
