"""A stand-in for the provisional Dext items API (see ``adapters/dext/api.py``), over the
sample set, so the poller, the demo and anyone without partner access can run the whole path
over HTTP.

It plays the contract the poller speaks, and nothing more:

- ``POST /oauth/token``: OAuth2 ``client_credentials`` (client id and secret as form fields
  or HTTP Basic) and ``refresh_token`` grants; access tokens expire (``token_ttl``). A fixed
  personal token is accepted too, like Dext's personal API tokens.
- ``GET /v1/accounts``: the Dext accounts the token sees.
- ``GET /v1/accounts/{account}/items?status=ready&cursor=C&limit=N``: items whose current
  status is one of ``status`` and that changed after cursor ``C``, oldest change first.
  Answer: ``{"items": [...], "next_cursor": "...", "has_more": bool}``. Every change to an
  item (a new status, an edit) moves it to the end of the feed.
- ``GET /v1/documents/{account}/{item}/{filename}?expires=&signature=``: the original
  document, through a signed link (HMAC, expiring) as ``item.document.url``; no bearer token.

On demand it misbehaves: latency, a request budget per window with ``X-RateLimit-*``
headers and 429 + ``Retry-After`` once it is spent, a 503 every N requests, short-lived
tokens. A control API under ``/_sandbox`` lets tests and demos move items along (make the
next items ready, change an item) and read counters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from adapters.dext.items import guess_content_type
from adapters.dext.web import start_app

DEFAULT_CLIENT_ID = "billstream-sandbox"
DEFAULT_CLIENT_SECRET = "dext-sandbox-secret"
DEFAULT_TOKEN = "dext-sandbox-token"
MAX_PAGE = 200


@dataclass
class SandboxItem:
    account: str
    item: dict[str, Any]
    document_path: Path | None
    status: str
    seq: int


@dataclass
class _Window:
    started: float
    used: int = 0


@dataclass
class Faults:
    latency_ms: int = 0
    rate_limit: int = 0  # requests per window and token; 0 = no limit
    rate_window: float = 60.0
    fail_every: int = 0  # every Nth API request answers 503; 0 = never


@dataclass
class Stats:
    requests: int = 0
    rate_limited: int = 0
    failed: int = 0
    tokens_issued: int = 0
    documents: int = 0
    pages: int = 0
    per_path: dict[str, int] = field(default_factory=dict)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor") from exc
    version, _, seq = text.partition(":")
    if version != "v1" or not seq.isdigit():
        raise ValueError("not a cursor")
    return int(seq)


def _error(status: int, error: str, description: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )


class DextSandbox:
    """The sandbox's state and its aiohttp application."""

    def __init__(
        self,
        items: Iterable[tuple[str, dict[str, Any], Path | None]],
        *,
        accounts: Iterable[str] = (),
        ready: int | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token: str | None = DEFAULT_TOKEN,
        token_ttl: float = 3600.0,
        url_ttl: float = 7 * 24 * 3600.0,
        faults: Faults | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.static_token = token
        self.token_ttl = token_ttl
        self.url_ttl = url_ttl
        self.faults = faults or Faults()
        self.stats = Stats()
        self._seq = 0
        self.items: dict[tuple[str, str], SandboxItem] = {}
        for n, (account, item, path) in enumerate(items):
            self._seq += 1
            status = str(item.get("status") or "ready")
            if ready is not None and n >= ready:
                status = "processing"
            self.items[(account, str(item["id"]))] = SandboxItem(
                account, dict(item), path, status, self._seq
            )
        self.accounts = sorted({a for a, _ in self.items} | set(accounts))
        self._tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self._refresh: set[str] = set()
        self._windows: dict[str, _Window] = {}
        # Document links stay valid across restarts of the sandbox with the same secret.
        self._sign_key = hashlib.sha256(f"dext-sandbox-documents:{client_secret}".encode()).digest()

    # --- application -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults_middleware])
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/v1/accounts", self._accounts)
        app.router.add_get("/v1/accounts/{account}/items", self._list)
        app.router.add_get("/v1/accounts/{account}/items/{item_id}", self._one)
        app.router.add_get("/v1/documents/{account}/{item_id}/{filename}", self._document)
        app.router.add_get("/_sandbox/stats", self._stats)
        app.router.add_post("/_sandbox/advance", self._advance)
        app.router.add_post("/_sandbox/items/{account}/{item_id}", self._patch)
        app.router.add_post("/_sandbox/faults", self._set_faults)
        return app

    def credentials(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "token": self.static_token,
            "token_url": "/oauth/token",
            "accounts": self.accounts,
        }

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sandbox"):
            response: web.StreamResponse = await handler(request)
            return response
        self.stats.requests += 1
        route = "documents" if path.startswith("/v1/documents") else path.split("/")[-1]
        self.stats.per_path[route] = self.stats.per_path.get(route, 0) + 1
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if self.faults.fail_every and self.stats.requests % self.faults.fail_every == 0:
            self.stats.failed += 1
            return _error(503, "unavailable", "The sandbox failed this request on purpose.")
        response = await handler(request)
        return response

    # --- auth ------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        client_secret = str(form.get("client_secret", ""))
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                pair = base64.b64decode(auth[6:]).decode()
            except (binascii.Error, UnicodeDecodeError):
                pair = ""
            client_id, _, client_secret = pair.partition(":")
        id_ok = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        secret_ok = hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        if not (id_ok and secret_ok):
            return _error(401, "invalid_client", "Unknown client or wrong secret.")
        grant = str(form.get("grant_type", ""))
        if grant == "refresh_token":
            if str(form.get("refresh_token", "")) not in self._refresh:
                return _error(400, "invalid_grant", "Unknown refresh token.")
        elif grant != "client_credentials":
            return _error(400, "unsupported_grant_type", f"Grant {grant!r} is not supported.")
        access = secrets.token_urlsafe(24)
        refresh = secrets.token_urlsafe(24)
        self._tokens[access] = time.monotonic() + self.token_ttl
        self._refresh.add(refresh)
        self.stats.tokens_issued += 1
        return web.json_response(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": int(self.token_ttl),
                "refresh_token": refresh,
                "scope": "items:read documents:read",
            }
        )

    def _authorize(self, request: web.Request) -> str | web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return _error(
                401,
                "invalid_request",
                "A Bearer token is required.",
                **{"WWW-Authenticate": "Bearer"},
            )
        token = auth[7:].strip()
        if self.static_token and hmac.compare_digest(token.encode(), self.static_token.encode()):
            return token
        expiry = self._tokens.get(token)
        if expiry is None or expiry < time.monotonic():
            self._tokens.pop(token, None)
            return _error(
                401,
                "invalid_token",
                "The access token is unknown or expired.",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return token

    def _rate(self, token: str) -> tuple[dict[str, str], web.Response | None]:
        limit = self.faults.rate_limit
        if limit <= 0:
            return {}, None
        now = time.monotonic()
        window = self._windows.get(token)
        if window is None or now - window.started >= self.faults.rate_window:
            window = self._windows[token] = _Window(started=now)
        reset = max(1, math.ceil(window.started + self.faults.rate_window - now))
        if window.used >= limit:
            self.stats.rate_limited += 1
            headers = {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "Retry-After": str(reset),
            }
            return headers, _error(429, "rate_limited", "Too many requests.", **headers)
        window.used += 1
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - window.used),
            "X-RateLimit-Reset": str(reset),
        }, None

    def _guard(self, request: web.Request) -> tuple[dict[str, str], web.Response | None]:
        token = self._authorize(request)
        if isinstance(token, web.Response):
            return {}, token
        headers, refused = self._rate(token)
        if refused is not None:
            return headers, refused
        account = request.match_info.get("account")
        if account is not None and account not in self.accounts:
            return headers, _error(404, "not_found", f"No Dext account {account!r}.", **headers)
        return headers, None

    # --- API -------------------------------------------------------------------------------

    async def _accounts(self, request: web.Request) -> web.Response:
        headers, refused = self._guard(request)
        if refused is not None:
            return refused
        return web.json_response({"accounts": [{"id": a} for a in self.accounts]}, headers=headers)

    async def _list(self, request: web.Request) -> web.Response:
        headers, refused = self._guard(request)
        if refused is not None:
            return refused
        account = request.match_info["account"]
        statuses = {s.strip().lower() for s in request.query.get("status", "ready").split(",")}
        statuses.discard("")
        try:
            after = decode_cursor(request.query["cursor"]) if request.query.get("cursor") else 0
            limit = int(request.query.get("limit", "50"))
        except ValueError:
            return _error(400, "invalid_request", "Bad cursor or limit.", **headers)
        if not 1 <= limit <= MAX_PAGE:
            return _error(400, "invalid_request", f"limit must be 1..{MAX_PAGE}.", **headers)
        matching = sorted(
            (
                it
                for it in self.items.values()
                if it.account == account and it.status in statuses and it.seq > after
            ),
            key=lambda it: it.seq,
        )
        page = matching[:limit]
        self.stats.pages += 1
        next_seq = page[-1].seq if page else after
        body = {
            "items": [self._render(request, it) for it in page],
            "next_cursor": encode_cursor(next_seq),
            "has_more": len(matching) > limit,
        }
        return web.json_response(body, headers=headers)

    async def _one(self, request: web.Request) -> web.Response:
        headers, refused = self._guard(request)
        if refused is not None:
            return refused
        it = self.items.get((request.match_info["account"], request.match_info["item_id"]))
        if it is None:
            return _error(404, "not_found", "No such item.", **headers)
        return web.json_response(self._render(request, it), headers=headers)

    def _render(self, request: web.Request, it: SandboxItem) -> dict[str, Any]:
        item = dict(it.item)
        item["status"] = it.status
        doc = item.get("document")
        filename = None
        if isinstance(doc, dict) and doc.get("filename"):
            filename = str(doc["filename"])
        elif it.document_path is not None:
            filename = it.document_path.name
        if filename is not None:
            content_type = (doc or {}).get("content_type") if isinstance(doc, dict) else None
            item["document"] = {
                "url": self.document_url(str(request.url.origin()), it, filename),
                "filename": filename,
                "content_type": content_type or guess_content_type(filename),
            }
        return item

    def _signature(self, account: str, item_id: str, filename: str, expires: int) -> str:
        message = f"{account}/{item_id}/{filename}/{expires}".encode()
        return hmac.new(self._sign_key, message, hashlib.sha256).hexdigest()

    def document_url(self, origin: str, it: SandboxItem, filename: str) -> str:
        expires = int(time.time() + self.url_ttl)
        item_id = str(it.item["id"])
        signature = self._signature(it.account, item_id, filename, expires)
        path = "/".join(quote(p, safe="") for p in (it.account, item_id, filename))
        return f"{origin}/v1/documents/{path}?expires={expires}&signature={signature}"

    async def _document(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        item_id = request.match_info["item_id"]
        filename = request.match_info["filename"]
        expires_text = request.query.get("expires", "")
        signature = request.query.get("signature", "")
        if not expires_text.isdigit():
            return _error(403, "invalid_signature", "The link is not signed.")
        wanted = self._signature(account, item_id, filename, int(expires_text))
        if not hmac.compare_digest(wanted, signature):
            return _error(403, "invalid_signature", "The link's signature does not match.")
        if int(expires_text) < time.time():
            return _error(403, "expired", "The link has expired.")
        it = self.items.get((account, item_id))
        if it is None or it.document_path is None or not it.document_path.is_file():
            return _error(404, "not_found", "No such document.")
        self.stats.documents += 1
        content_type = guess_content_type(filename) or "application/octet-stream"
        return web.Response(body=it.document_path.read_bytes(), content_type=content_type)

    # --- control ---------------------------------------------------------------------------

    async def _stats(self, request: web.Request) -> web.Response:
        counts: dict[str, int] = {}
        for it in self.items.values():
            counts[it.status] = counts.get(it.status, 0) + 1
        return web.json_response(
            {
                "requests": self.stats.requests,
                "rate_limited": self.stats.rate_limited,
                "failed": self.stats.failed,
                "tokens_issued": self.stats.tokens_issued,
                "documents": self.stats.documents,
                "pages": self.stats.pages,
                "per_path": self.stats.per_path,
                "statuses": counts,
            }
        )

    def _bump(self, it: SandboxItem) -> None:
        self._seq += 1
        it.seq = self._seq

    def advance(self, count: int, status: str = "ready") -> list[str]:
        """Move the next ``count`` items still processing to ``status`` (Dext finished them)."""
        moved: list[str] = []
        for it in sorted(self.items.values(), key=lambda i: i.seq):
            if len(moved) >= count:
                break
            if it.status == "processing":
                it.status = status
                self._bump(it)
                moved.append(str(it.item["id"]))
        return moved

    async def _advance(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        moved = self.advance(int(body.get("count", 1)), str(body.get("status", "ready")))
        return web.json_response({"moved": moved})

    async def _patch(self, request: web.Request) -> web.Response:
        it = self.items.get((request.match_info["account"], request.match_info["item_id"]))
        if it is None:
            return _error(404, "not_found", "No such item.")
        body = await request.json()
        if "status" in body:
            it.status = str(body["status"])
        for key, value in dict(body.get("fields") or {}).items():
            it.item[key] = value
        self._bump(it)
        return web.json_response({"id": it.item["id"], "status": it.status})

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        for name in ("latency_ms", "rate_limit", "fail_every"):
            if name in body:
                setattr(self.faults, name, int(body[name]))
        if "rate_window" in body:
            self.faults.rate_window = float(body["rate_window"])
            self._windows.clear()
        return web.json_response(self.faults.__dict__)


async def start_sandbox(
    sandbox: DextSandbox, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve the sandbox; returns the runner (``await runner.cleanup()`` to stop) and its URL."""
    return await start_app(sandbox.app(), host, port)
