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

The parts: ``auth`` (tokens, rate limit), ``feed`` (items, documents), ``control``
(``/_sandbox``); this module puts them together and serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.dext.api import DextApiConfig
from adapters.dext.web import start_app
from sandboxes.dext.control import ControlMixin
from sandboxes.dext.feed import FeedMixin
from sandboxes.dext.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TOKEN,
    Faults,
    SandboxItem,
    Stats,
    Window,
    decode_cursor,
    encode_cursor,
    error,
)
from sandboxes.serving import serve_until_stopped

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_TOKEN",
    "DextSandbox",
    "Faults",
    "SandboxItem",
    "decode_cursor",
    "encode_cursor",
    "ready_line",
    "serve",
    "start_sandbox",
]


class DextSandbox(FeedMixin, ControlMixin):
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
        self._windows: dict[str, Window] = {}
        # Document links stay valid across restarts of the sandbox with the same secret.
        self._sign_key = hashlib.sha256(f"dext-sandbox-documents:{client_secret}".encode()).digest()

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
            return error(503, "unavailable", "The sandbox failed this request on purpose.")
        response = await handler(request)
        return response


async def start_sandbox(
    sandbox: DextSandbox, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve the sandbox; returns the runner (``await runner.cleanup()`` to stop) and its URL."""
    return await start_app(sandbox.app(), host, port)


def ready_line(sandbox: DextSandbox, url: str, host: str, items: int) -> dict[str, Any]:
    """What ``billstream sandbox dext`` prints: also the variables the poller needs."""
    config = DextApiConfig(
        url=url, client_id=sandbox.client_id, client_secret=sandbox.client_secret
    )
    return {
        "url": url,
        "credentials": sandbox.credentials(),
        "env": config.env(),
        "document_host": host,
        "items": items,
    }


async def serve(sandbox: DextSandbox, host: str, port: int, *, items: int) -> None:
    """Serve until SIGTERM or SIGINT, announcing readiness with one JSON line."""

    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[str]:
        runner, url = await start_sandbox(sandbox, host, port)
        try:
            yield url
        finally:
            await runner.cleanup()

    await serve_until_stopped(serving(), lambda url: ready_line(sandbox, url, host, items))
