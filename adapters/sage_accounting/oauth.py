"""OAuth 2.0 for Sage Accounting: authorization code, rotating refresh tokens, a shared store.

Sage's access tokens live 5 minutes; refresh tokens live 31 days and *rotate*: each refresh
returns a new one and kills the old. Losing the new one in a race means the user has to
connect again, so:

- tokens live in one file per tenant (mode 0600), replaced atomically (write a new file,
  fsync, rename): a crash leaves the old file or the new one, never half of one;
- every refresh happens under an ``asyncio.Lock`` (coroutines of one worker) *and* an
  ``flock`` on a lock file (other workers on the same token directory), and re-reads the
  file first: whoever comes second finds the fresh token and uses it;
- the new token set is stored before the new access token is used;
- access tokens are refreshed early (a fifth of their life, at most 60 s, before expiry).

The RFC 6749 pieces (authorization URL, token request bodies, callback parsing with the
``state`` check) come from authlib's protocol core (``authlib.oauth2.rfc6749``); the HTTP is
our httpx. Storage and locking are ours because authlib's refresh lock covers one client
object in one process, and its httpx integration is deprecated in favour of a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.parameters import (
    parse_authorization_code_response,
    prepare_grant_uri,
    prepare_token_request,
)

from adapters.sage_accounting.errors import RECONNECT
from domain.errors import LedgerError, Reason

log = logging.getLogger(__name__)

REAL_API = "https://api.accounting.sage.com/v3.1"
REAL_TOKEN = "https://oauth.accounting.sage.com/token"
REAL_AUTHORIZE = "https://www.sageone.com/oauth2/auth/central?filter=apiv3.1"
CODE_LIFETIME = 60.0  # Sage: an authorization code works once, for 60 s


@dataclass(frozen=True)
class Endpoints:
    api: str
    token: str
    authorize: str

    @classmethod
    def resolve(cls, url: str | None, env: Mapping[str, str], prefix: str) -> Endpoints:
        """Sage's own endpoints, or a sandbox's when ``url`` (its root or its /v3.1) is set."""
        if not url:
            url = env.get(f"{prefix}_URL") or None
        if url:
            root = url.rstrip("/").removesuffix("/v3.1")
            api, token = f"{root}/v3.1", f"{root}/token"
            authorize = f"{root}/oauth2/auth/central?filter=apiv3.1"
        else:
            api, token, authorize = REAL_API, REAL_TOKEN, REAL_AUTHORIZE
        return cls(
            api=api,
            token=env.get(f"{prefix}_TOKEN_URL") or token,
            authorize=env.get(f"{prefix}_AUTHORIZE_URL") or authorize,
        )


@dataclass(frozen=True)
class TokenSet:
    """What the token file holds. Times are wall-clock epoch seconds (shared by processes)."""

    refresh_token: str
    access_token: str | None = None
    access_expires_at: float = 0.0
    access_lifetime: float = 300.0
    refresh_expires_at: float | None = None
    scope: str | None = None
    obtained_at: float = 0.0

    @classmethod
    def from_response(cls, data: Mapping[str, Any], now: float) -> TokenSet:
        expires_in = float(data.get("expires_in") or 300)
        refresh_in = data.get("refresh_token_expires_in")
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            access_expires_at=now + expires_in,
            access_lifetime=expires_in,
            refresh_expires_at=None if refresh_in is None else now + float(refresh_in),
            scope=None if data.get("scope") is None else str(data["scope"]),
            obtained_at=now,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        return cls(
            refresh_token=str(data["refresh_token"]),
            access_token=data.get("access_token"),
            access_expires_at=float(data.get("access_expires_at", 0.0)),
            access_lifetime=float(data.get("access_lifetime", 300.0)),
            refresh_expires_at=(
                None
                if data.get("refresh_expires_at") is None
                else float(data["refresh_expires_at"])
            ),
            scope=data.get("scope"),
            obtained_at=float(data.get("obtained_at", 0.0)),
        )

    def usable_at(self, now: float) -> bool:
        """Is the access token good for a request sent now (with the early-refresh margin)?"""
        margin = min(60.0, self.access_lifetime / 5)
        return self.access_token is not None and now < self.access_expires_at - margin

    def __repr__(self) -> str:  # tokens never reach logs, even through a repr
        return f"TokenSet(access_expires_at={self.access_expires_at}, scope={self.scope!r})"


class TokenStore:
    """One tenant's tokens in ``path`` (0600), replaced atomically, with a cross-process lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def _ensure_dir(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def read(self) -> TokenSet | None:
        import json

        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return TokenSet.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                Reason.AUTH,
                f"The Sage Accounting token file {self.path} is unreadable ({type(exc).__name__}"
                "); connect again.",
            ) from None

    def write(self, tokens: TokenSet) -> None:
        """Atomically replace the file: readers see the old set or the new one, nothing else."""
        import json

        self._ensure_dir()
        # Leftovers of a writer that died between writing and renaming: we hold the lock, so
        # no live writer owns them.
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        data = json.dumps(asdict(tokens), sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.asynccontextmanager
    async def locked(self, wait_limit: float = 120.0) -> AsyncIterator[None]:
        """Exclusive across processes (flock) without blocking the event loop."""
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait_limit
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                # polling, not a blocking flock in a thread: a cancelled waiter must not
                # take the lock later and keep it forever
                if time.monotonic() > deadline:
                    raise LedgerError(
                        Reason.UNAVAILABLE,
                        f"Timed out waiting for the Sage token lock {self.lock_path}.",
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def token_store_for(token_dir: Path, tenant_id: str) -> TokenStore:
    """Where a tenant's Sage Accounting tokens live (written by ``billstream connect``)."""
    return TokenStore(token_dir / f"sage-accounting-{tenant_id}.json")


class SageOAuth:
    """Hands out a valid access token; refreshes under the locks; stores before use."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        endpoints: Endpoints,
        store: TokenStore,
        tenant_id: str,
        seed_refresh_token: str | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.endpoints = endpoints
        self.store = store
        self.tenant_id = tenant_id
        self._seed = seed_refresh_token
        self._timeout = timeout
        self._clock = clock
        self._transport = transport
        self._tokens: TokenSet | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0  # refresh grants this object performed (metrics, tests)

    def __repr__(self) -> str:
        return f"SageOAuth(client_id={self.client_id!r}, tenant={self.tenant_id!r})"

    def _reconnect(self) -> str:
        return RECONNECT.format(tenant=self.tenant_id)

    async def _token_request(self, body: str, doing: str) -> dict[str, Any]:
        """POST to the token endpoint (client_secret_post, as Sage's samples do)."""
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
                response = await http.post(
                    self.endpoints.token,
                    content=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                )
        except httpx.HTTPError as exc:
            # A timeout may hide a refresh that happened: the next try with the old token
            # then gets invalid_grant and says so; nothing better exists with rotation.
            raise LedgerError(
                Reason.UNAVAILABLE,
                f"Could not reach Sage's token endpoint while {doing} ({type(exc).__name__}).",
                uncertain=True,
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code == 200 and isinstance(data, dict) and "access_token" in data:
            return data
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            raise self._token_error(data["error"], doing)
        raise self._http_error(response.status_code, response)

    # -- tokens for API calls ------------------------------------------------------------------

    async def access_token(self) -> str:
        tokens = self._tokens
        if tokens is not None and tokens.usable_at(self._clock()):
            assert tokens.access_token is not None
            return tokens.access_token
        return await self._renew(rejected=None)

    async def after_unauthorized(self, rejected: str) -> str:
        """Sage said 401 to ``rejected``: get a token that is newer, refreshing if needed."""
        return await self._renew(rejected=rejected)

    async def _renew(self, rejected: str | None) -> str:
        async with self._lock:
            tokens = self._tokens
            now = self._clock()
            if tokens is not None and tokens.usable_at(now) and tokens.access_token != rejected:
                return tokens.access_token  # type: ignore[return-value]
            async with self.store.locked():
                # Another worker may have refreshed while we waited: its file is the truth.
                stored = self.store.read()
                if stored is None:
                    if not self._seed:
                        raise LedgerError(
                            Reason.AUTH,
                            f"Tenant {self.tenant_id} is not connected to Sage Accounting; run "
                            f"`{self._reconnect()}`.",
                        )
                    stored = TokenSet(refresh_token=self._seed)
                now = self._clock()
                if stored.usable_at(now) and stored.access_token != rejected:
                    self._tokens = stored
                    return stored.access_token  # type: ignore[return-value]
                fresh = await self._refresh(stored)
                self.store.write(fresh)  # stored before it is used: see the module docstring
                self._tokens = fresh
                assert fresh.access_token is not None
                return fresh.access_token

    async def _refresh(self, stored: TokenSet) -> TokenSet:
        now = self._clock()
        if stored.refresh_expires_at is not None and now >= stored.refresh_expires_at:
            raise LedgerError(
                Reason.AUTH,
                f"The Sage Accounting connection of tenant {self.tenant_id} expired (refresh "
                f"tokens last 31 days); reconnect with `{self._reconnect()}`.",
            )
        body = prepare_token_request(
            "refresh_token",
            refresh_token=stored.refresh_token,
            client_id=self.client_id,
            client_secret=self._client_secret,
        )
        data = await self._token_request(body, "refreshing the access token")
        self.refreshes += 1
        log.info("sage-accounting: refreshed the access token of tenant %s", self.tenant_id)
        return TokenSet.from_response(data, self._clock())

    def _token_error(self, error: str, doing: str) -> LedgerError:
        detail = {"oauth_error": error}
        if error == "invalid_client":
            return LedgerError(
                Reason.AUTH,
                f"Sage refused the client id/secret while {doing} for tenant {self.tenant_id}: "
                "check the CLIENT_ID and CLIENT_SECRET variables of its credentials_env.",
                detail=detail,
            )
        if error == "invalid_grant":
            return LedgerError(
                Reason.AUTH,
                f"Sage refused the refresh token of tenant {self.tenant_id} (expired after 31 "
                f"days, revoked, or already used); reconnect with `{self._reconnect()}`.",
                detail=detail,
            )
        return LedgerError(
            Reason.AUTH, f"Sage's token endpoint said {error!r} while {doing}.", detail=detail
        )

    def _http_error(self, status: int, response: httpx.Response) -> LedgerError:
        if status == 429:
            after = response.headers.get("Retry-After")
            return LedgerError(
                Reason.RATE_LIMITED,
                "Sage's token endpoint throttled us.",
                retry_after=float(after) if after and after.isdigit() else None,
            )
        if status >= 500:
            return LedgerError(
                Reason.UNAVAILABLE, f"Sage's token endpoint failed (HTTP {status}).", uncertain=True
            )
        return LedgerError(Reason.AUTH, f"Sage's token endpoint refused us (HTTP {status}).")

    # -- connecting (authorization code) ---------------------------------------------------------

    def authorization_url(
        self, redirect_uri: str, *, state: str | None = None, country: str | None = None
    ) -> tuple[str, str]:
        """The URL to open in a browser, and the ``state`` the callback must bring back."""
        state = state or secrets.token_urlsafe(24)
        extra = {"country": country} if country else {}
        url = prepare_grant_uri(
            self.endpoints.authorize,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope="full_access",
            state=state,
            **extra,
        )
        return str(url), state

    async def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Swap a fresh code for tokens and store them (under the lock, like a refresh)."""
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            client_id=self.client_id,
            client_secret=self._client_secret,
        )
        try:
            data = await self._token_request(body, "exchanging the authorization code")
        except LedgerError as exc:
            if "invalid_grant" in exc.detail.get("oauth_error", ""):
                raise LedgerError(
                    Reason.AUTH,
                    "Sage refused the authorization code: it works once, for 60 s, and only "
                    "with the exact redirect URI registered for the app.",
                ) from None
            raise
        tokens = TokenSet.from_response(data, self._clock())
        async with self._lock, self.store.locked():
            self.store.write(tokens)
            self._tokens = tokens
        return tokens


@dataclass(frozen=True)
class Callback:
    code: str
    country: str | None
    received_at: float


async def receive_callback(
    oauth: SageOAuth,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    path: str = "/callback",
    wait_limit: float = 300.0,
    on_url: Callable[[str], Awaitable[None] | None] = print,
    on_ready: Callable[[str], None] | None = None,
) -> tuple[Callback, str]:
    """Serve the loopback redirect URI, hand out the authorise URL, wait for the code.

    Returns the callback and the redirect URI used (the exchange must repeat it exactly).
    """
    from aiohttp import web

    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("the OAuth callback only listens on loopback")
    done: asyncio.Future[Callback] = asyncio.get_running_loop().create_future()
    expected_state: list[str] = []

    async def callback(request: web.Request) -> web.Response:
        q = request.query
        if not expected_state or not secrets.compare_digest(q.get("state", ""), expected_state[0]):
            # Not our flow (CSRF, or a stale tab): refuse, keep waiting for the real one.
            return web.Response(status=400, text="Unknown or missing state; start again.")
        if "error" in q:
            if not done.done():
                done.set_exception(
                    LedgerError(
                        Reason.AUTH,
                        f"Sage refused the connection: {q.get('error')} "
                        f"{q.get('error_description', '')}".strip(),
                    )
                )
            return web.Response(status=400, text="Sage refused the connection.")
        try:
            params = parse_authorization_code_response(str(request.url), expected_state[0])
        except OAuth2Error as exc:
            return web.Response(status=400, text=f"Bad callback: {exc.error}.")
        if not done.done():
            done.set_result(
                Callback(code=params["code"], country=q.get("country"), received_at=time.time())
            )
        body = "<p>billstream is connected to Sage Accounting. You can close this tab.</p>"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get(path, callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        bound = runner.addresses[0][1] if port == 0 else port
        netloc = f"[{host}]" if ":" in host else host
        redirect_uri = f"http://{netloc}:{bound}{path}"
        url, state = oauth.authorization_url(redirect_uri)
        expected_state.append(state)
        if on_ready is not None:
            on_ready(redirect_uri)
        shown = on_url(url)
        if shown is not None:
            await shown
        try:
            cb = await asyncio.wait_for(done, wait_limit)
        except TimeoutError:
            raise LedgerError(
                Reason.AUTH, f"No callback from Sage within {wait_limit:.0f} s; try again."
            ) from None
        return cb, redirect_uri
    finally:
        await runner.cleanup()
