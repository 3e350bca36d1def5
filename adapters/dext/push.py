"""The signed push endpoint: ``POST /v1/items`` takes Dext-shaped JSON items from any tool
(Make, Zapier, n8n, a script) and puts them on the received topic.

A request carries three headers:

- ``X-Billstream-Tenant``: the tenant id (the items go into that tenant's books);
- ``X-Billstream-Timestamp``: Unix seconds, within 5 minutes of the server's clock;
- ``X-Billstream-Signature: sha256=<hex>``: HMAC-SHA256 of ``timestamp + "." + raw body``
  with the tenant's secret, from ``BILLSTREAM_PUSH_SECRET_<TENANT>`` (``acme-uk`` ->
  ``BILLSTREAM_PUSH_SECRET_ACME_UK``; several comma-separated secrets are all accepted, so a
  secret can be rotated without downtime).

Or, for tools that cannot compute an HMAC (Zapier's "Webhooks by Zapier"): ``Authorization:
Bearer <token>`` with a token from ``BILLSTREAM_PUSH_TOKEN_<TENANT>`` (at least 24 characters;
several comma-separated tokens are all accepted, for rotation), compared in constant time.
The token names the tenant; an ``X-Billstream-Tenant`` beside it must agree. A token is
replayable by whoever sees it: put the endpoint behind TLS.

The body is one item or a JSON array of items (at most ``max_items``), each with its Dext
``id``; a document is given by URL (``document.url``, ``document_url`` or ``image_url``), https
from a host the tenant allows. Answers: ``202`` with the item key(s); ``401`` (headers, tenant,
signature, timestamp), ``413`` (body or an item over the cap), ``415`` (not JSON), ``400``
(not JSON, not items, an item too deep or without a usable id, a refused document URL: every
problem named), ``409`` (an item already received with different content), ``503`` (only when
the broker did not take it: send again). Every refusal is JSON ``{"reason", "message"}``.

The body may also be one European e-invoice (``adapters.einvoice``): a UBL 2.1 or CII XML
(``Content-Type: application/xml``) or a Factur-X / ZUGFeRD PDF (``application/pdf``),
signed the same way; a flat record labelled as Zapier labels Dext's fields ("Supplier
Name", "Total Amount", "Image URL"; ``adapters.dext.zapier``), as JSON or as
``application/x-www-form-urlencoded``, is read as one item. An XML body is recognised
whatever its declared type. An e-invoice becomes one item; the file (an XML's PDF
rendering) is kept under the tenant's first ``document_dirs`` folder for the attach stage,
and ``X-Billstream-Filename`` names it in Sage. A file that is not a readable e-invoice, or
whose totals do not add up, is ``400`` ``invalid_einvoice`` with each problem's code.

The same item pushed twice is one item: a repeat (a tool's retry, a replayed request) answers
``202`` with ``"status": "duplicate"`` and publishes nothing. What was received is kept in a
SQLite file under the data folder, so this holds across restarts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError

from adapters.dext.items import ReceivedSink, SourceItem, canonical_item, env_suffix
from adapters.dext.zapier import RowError, flat_item, form_fields, is_flat, is_form
from adapters.documents import DocumentFetcher
from adapters.einvoice.errors import EInvoiceError
from adapters.einvoice.reader import is_pdf, looks_like_einvoice, read_einvoice
from adapters.einvoice.store import keep_pushed
from domain.dext import ItemFormatError, ItemRefused, check_item, loads_items
from domain.tenants import Tenant, Tenants

log = logging.getLogger("billstream.dext.push")

ENV_SECRET_PREFIX = "BILLSTREAM_PUSH_SECRET_"
ENV_TOKEN_PREFIX = "BILLSTREAM_PUSH_TOKEN_"
MIN_TOKEN_LENGTH = 24
MAX_BODY_BYTES = 1024 * 1024
MAX_ITEMS = 100
MAX_SKEW_SECONDS = 300
MIN_SECRET_LENGTH = 16
SIGNATURE_PREFIX = "sha256="
TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,99}\.(?:xml|pdf)", re.IGNORECASE)
EINVOICE_TYPES = frozenset({"application/xml", "text/xml", "application/pdf"})


def secret_env(tenant_id: str) -> str:
    return f"{ENV_SECRET_PREFIX}{env_suffix(tenant_id)}"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Billstream-Signature`` value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(
    tenant_id: str, secret: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """Headers for a push request (for scripts and tests)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        "X-Billstream-Tenant": tenant_id,
        "X-Billstream-Timestamp": timestamp,
        "X-Billstream-Signature": sign(secret, timestamp, body),
    }


def token_env(tenant_id: str) -> str:
    return f"{ENV_TOKEN_PREFIX}{env_suffix(tenant_id)}"


def secrets_from_env(
    tenants: Iterable[Tenant], env: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Tenant id -> accepted secrets. Secrets shorter than 16 characters are ignored."""
    return _keys_from_env(tenants, env, secret_env, MIN_SECRET_LENGTH, "secret")


def tokens_from_env(
    tenants: Iterable[Tenant], env: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Tenant id -> accepted bearer tokens. Tokens shorter than 24 characters are ignored."""
    return _keys_from_env(tenants, env, token_env, MIN_TOKEN_LENGTH, "token")


def _keys_from_env(
    tenants: Iterable[Tenant],
    env: Mapping[str, str] | None,
    name_of: Callable[[str], str],
    shortest: int,
    what: str,
) -> dict[str, list[str]]:
    env = os.environ if env is None else env
    out: dict[str, list[str]] = {}
    for tenant in tenants:
        values = [s.strip() for s in env.get(name_of(tenant.id), "").split(",") if s.strip()]
        if any(len(s) < shortest for s in values):
            log.warning(
                "%s holds a %s shorter than %d characters; it is ignored",
                name_of(tenant.id),
                what,
                shortest,
            )
        good = [s for s in values if len(s) >= shortest]
        if good:
            out[tenant.id] = good
    return out


class PushState:
    """Items received through push, by item key, with a hash of their content."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS items (item_key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
            " request_id TEXT NOT NULL, received_at REAL NOT NULL)"
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def seen(self, key: str) -> str | None:
        row = self._db.execute("SELECT digest FROM items WHERE item_key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def record(self, si: SourceItem, request_id: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)",
                (si.key, si.digest, request_id, time.time()),
            )


def _header(request: web.Request, name: str) -> str:
    """A header as printable ASCII, or "" (aiohttp hands other bytes on as surrogates)."""
    value = request.headers.get(name, "").strip()
    return value if value.isascii() and value.isprintable() else ""


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in ("", "application/json", "text/json") or mime.endswith("+json")


def _is_einvoice_type(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in EINVOICE_TYPES or mime.endswith("+xml")


def _refuse(status: int, reason: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"reason": reason, "message": message, **extra}, status=status)


def _conflict(keys: list[str]) -> web.Response:
    return _refuse(
        409,
        "conflict",
        f"already received with different content: {', '.join(keys)}; an item is received "
        "once, keyed by its Dext id (correct the bill in Sage instead)",
        keys=keys,
    )


class PushEndpoint:
    """The aiohttp application behind ``billstream serve push``."""

    def __init__(
        self,
        *,
        tenants: Tenants,
        secrets: Mapping[str, list[str]],
        sink: ReceivedSink,
        tokens: Mapping[str, list[str]] | None = None,
        state: PushState,
        documents: DocumentFetcher,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_items: int = MAX_ITEMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenants = tenants
        self.secrets = dict(secrets)
        self.tokens = dict(tokens or {})
        self.sink = sink
        self.state = state
        self.documents = documents
        self.max_body_bytes = max_body_bytes
        self.max_items = max_items
        self.clock = clock
        # Striped locks: two requests for one item never both pass the duplicate check.
        self._locks = [asyncio.Lock() for _ in range(64)]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/v1/items", self.receive)
        app.router.add_get("/healthz", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        # Strangers learn that it runs, not whose books it serves.
        return web.json_response({"ok": True})

    async def _read_body(self, request: web.Request) -> bytes | None:
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        """None when the headers carry a fresh signature of ``body`` by the tenant's secret."""
        tenant_id = _header(request, "X-Billstream-Tenant")
        timestamp = _header(request, "X-Billstream-Timestamp")
        signature = _header(request, "X-Billstream-Signature")
        if not (TIMESTAMP.fullmatch(timestamp) and SIGNATURE.fullmatch(signature)):
            return _refuse(
                401,
                "bad_signature",
                "X-Billstream-Timestamp must be Unix seconds and X-Billstream-Signature "
                "'sha256=<64 hex digits>': HMAC-SHA256 of timestamp + '.' + raw body",
            )
        accepted = self.secrets.get(tenant_id, [])
        if not any(
            hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode())
            for secret in accepted
        ):
            return _refuse(
                401,
                "bad_signature",
                "the signature does not match: HMAC-SHA256 of timestamp + '.' + raw body, "
                "with the tenant's secret, as 'sha256=<hex>'",
            )
        if abs(self.clock() - int(timestamp)) > MAX_SKEW_SECONDS:
            return _refuse(
                401,
                "stale_timestamp",
                f"X-Billstream-Timestamp must be Unix seconds within {MAX_SKEW_SECONDS} s of "
                "now; sign each request when it is sent",
            )
        return None

    def _bearer(self, request: web.Request) -> str | web.Response:
        """The tenant whose token the ``Authorization`` header carries, or the refusal."""
        scheme, _, token = _header(request, "Authorization").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _refuse(401, "bad_token", "Authorization must be 'Bearer <token>'")
        found = None
        for tenant_id, accepted in self.tokens.items():
            for candidate in accepted:
                # Every token is compared, so the time taken says nothing about which matched.
                if hmac.compare_digest(candidate.encode(), token.encode()):
                    found = tenant_id
        named = _header(request, "X-Billstream-Tenant")
        if found is None or found not in self.tenants.tenants or named not in ("", found):
            return _refuse(
                401,
                "bad_token",
                f"the token is not one of a tenant's {ENV_TOKEN_PREFIX}<TENANT> tokens"
                + (" for the tenant named in X-Billstream-Tenant" if named else ""),
            )
        return found

    def _signer(self, request: web.Request) -> str | web.Response:
        names = ("X-Billstream-Tenant", "X-Billstream-Timestamp", "X-Billstream-Signature")
        missing = [name for name in names if not request.headers.get(name, "").strip()]
        if missing:
            return _refuse(
                401,
                "missing_headers",
                f"missing header(s): {', '.join(missing)} (or send Authorization: Bearer)",
            )
        tenant_id = _header(request, "X-Billstream-Tenant")
        if tenant_id not in self.tenants.tenants or not self.secrets.get(tenant_id):
            shown = tenant_id if TENANT.fullmatch(tenant_id) else "(not a tenant id)"
            return _refuse(
                401,
                "unknown_tenant",
                f"tenant {shown!r} does not take signed pushes (no such tenant, or no "
                f"{secret_env(shown)} configured)",
            )
        return tenant_id

    async def receive(self, request: web.Request) -> web.Response:
        request_id = _header(request, "X-Request-Id")
        if not REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        bearer = bool(request.headers.get("Authorization", "").strip())
        who = self._bearer(request) if bearer else self._signer(request)
        if isinstance(who, web.Response):
            return who
        tenant_id = who
        content_type = request.headers.get("Content-Type", "")
        if not (_is_json(content_type) or _is_einvoice_type(content_type) or is_form(content_type)):
            return _refuse(
                415,
                "unsupported_media_type",
                "send the items as JSON (application/json) or a form "
                "(application/x-www-form-urlencoded), or one e-invoice as "
                "application/xml or application/pdf",
            )
        try:
            body = await self._read_body(request)
        except ConnectionResetError:
            # The client hung up mid-body: nothing was accepted, nobody reads the answer, and
            # a stranger's dropped connection is not worth a traceback in the log.
            log.info("push: the client closed the connection before the body ended")
            return _refuse(400, "incomplete_body", "the connection closed before the body ended")
        if body is None:
            return _refuse(
                413, "too_large", f"the body is over the {self.max_body_bytes} bytes cap"
            )
        refused = None if bearer else self._authenticate(request, body)
        if refused is not None:
            return refused
        tenant = self.tenants.get(tenant_id)
        if is_form(content_type):
            try:
                raws = [form_fields(body)]
            except ItemFormatError as exc:
                return _refuse(400, "invalid_form", str(exc))
        elif _is_einvoice_type(content_type) or looks_like_einvoice(body) or is_pdf(body):
            return await self._receive_einvoice(request, body, tenant, request_id)
        else:
            try:
                raws = loads_items(body)
            except ItemFormatError as exc:
                return _refuse(400, "invalid_json", str(exc))
        if not raws:
            return _refuse(400, "invalid_item", "no items in the body")
        if len(raws) > self.max_items:
            return _refuse(413, "too_many_items", f"at most {self.max_items} items per request")
        batch, problems, too_large = self._source_items(raws, tenant, request_id)
        if problems:
            return _refuse(
                413 if too_large else 400,
                "too_large" if too_large else "invalid_item",
                "nothing was accepted; fix these items",
                problems=problems,
            )
        keys = [si.key for si in batch]
        if len(set(keys)) != len(keys):
            return _refuse(400, "invalid_item", "the same item id appears twice in the body")
        conflicts = [si.key for si in batch if self.state.seen(si.key) not in (None, si.digest)]
        if conflicts:
            return _conflict(conflicts)
        results: list[dict[str, str]] = []
        for si in batch:
            outcome = await self._accept(si, request_id)
            if isinstance(outcome, web.Response):
                return outcome
            results.append({"key": si.key, "status": outcome})
        answer: dict[str, Any] = {"items": results, "request_id": request_id}
        if len(results) == 1:
            answer |= results[0]
        return web.json_response(answer, status=202)

    async def _receive_einvoice(
        self, request: web.Request, body: bytes, tenant: Tenant, request_id: str
    ) -> web.Response:
        """One e-invoice body: one item, the body kept as its document."""
        if not tenant.document_dirs:
            return _refuse(
                400,
                "no_document_folder",
                f"tenant {tenant.id} has no document_dirs: a pushed e-invoice is kept in the "
                "first of them for the attach stage; add one in the tenants file",
            )
        given = _header(request, "X-Billstream-Filename")
        filename = (
            given
            if FILENAME.fullmatch(given)
            else ("e-invoice.pdf" if is_pdf(body) else "e-invoice.xml")
        )
        try:
            # A PDF's parse is CPU work; the loop keeps serving meanwhile.
            read = await asyncio.to_thread(read_einvoice, body, filename)
        except EInvoiceError as exc:
            problems = [{"code": exc.code, "message": exc.message}]
            return _refuse(400, "invalid_einvoice", exc.message, problems=problems)
        refused = read.problems or check_item(read.item)
        if refused:
            return _refuse(
                400,
                "invalid_einvoice",
                "nothing was accepted; the e-invoice cannot become a bill as it is",
                problems=[{"code": p.code, "message": p.message} for p in refused],
            )
        folder = Path(tenant.document_dirs[0])
        try:
            ref = await asyncio.to_thread(keep_pushed, read, body, filename, folder)
        except OSError as exc:
            log.error("push %s: keeping the e-invoice in %s failed: %s", request_id, folder, exc)
            return _refuse(503, "unavailable", "the e-invoice could not be stored; send it again")
        si = SourceItem(tenant.id, read.item, ref, f"push request {request_id}")
        outcome = await self._accept(si, request_id)
        if isinstance(outcome, web.Response):
            return outcome
        result = {"key": si.key, "status": outcome}
        answer = {"items": [result], "request_id": request_id, **result}
        return web.json_response(answer, status=202)

    def _source_items(
        self, raws: list[dict[str, Any]], tenant: Tenant, request_id: str
    ) -> tuple[list[SourceItem], list[dict[str, Any]], bool]:
        """The items to accept, every problem by index, and whether size was one of them."""
        problems: list[dict[str, Any]] = []
        batch: list[SourceItem] = []
        too_large = False
        for n, raw in enumerate(raws):
            if is_flat(raw):
                try:
                    raw = flat_item(raw, tenant)
                except RowError as exc:
                    problems.append({"index": n, "code": "invalid_fields", "message": str(exc)})
                    continue
            item, ref = canonical_item(raw)
            refused = check_item(item)
            if refused:
                too_large |= ItemRefused(refused).too_large
                problems += [{"index": n, "code": p.code, "message": p.message} for p in refused]
                continue
            if ref is not None:
                why = self.documents.check(ref, tenant)
                if why is not None:
                    problems.append(
                        {"index": n, "code": "document_refused", "message": f"document: {why}"}
                    )
                    continue
            batch.append(SourceItem(tenant.id, item, ref, f"push request {request_id}"))
        return batch, problems, too_large

    async def _accept(self, si: SourceItem, request_id: str) -> str | web.Response:
        lock = self._locks[int(hashlib.sha256(si.key.encode()).hexdigest(), 16) % len(self._locks)]
        async with lock:
            seen = self.state.seen(si.key)
            if seen == si.digest:
                return "duplicate"
            if seen is not None:
                return _conflict([si.key])
            try:
                await self.sink.publish_received(
                    si.tenant, si.item, source="push", document=si.document, origin=si.origin
                )
            except ItemRefused as exc:  # checked above; kept so a gap is a 400, not a retry
                return _refuse(400, "invalid_item", str(exc))
            except (KafkaError, OSError, TimeoutError) as exc:
                # The broker did not take it: only this is worth sending again.
                log.error("push %s: publishing %s failed: %s", request_id, si.key, exc)
                return _refuse(503, "unavailable", "the item could not be stored; send it again")
            self.state.record(si, request_id)
            return "accepted"
