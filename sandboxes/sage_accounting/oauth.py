"""OAuth in the Sage Accounting sandbox: the consent page and the token endpoint.

``GET /oauth2/auth/central`` consents at once and redirects with a code (60 s, one use);
``POST /token`` takes that code or a refresh token. Refresh tokens rotate on every use,
so an old one is refused once it has been spent.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from sandboxes.sage_accounting.answers import sage_json
from sandboxes.sage_accounting.core import SageCore
from sandboxes.sage_accounting.state import CODE_TTL, Grant


class OAuthMixin(SageCore):
    """Authorization codes, access tokens and rotating refresh tokens."""

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
            return sage_json({"error": "invalid_client"}, 401)
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
                return sage_json({"error": "invalid_grant"}, 400)
            return sage_json(self._issue_tokens(client_id))
        if grant == "refresh_token":
            old = str(form.get("refresh_token", ""))
            g = self.refresh_tokens.get(old)
            if g is None or g.used or g.client_id != client_id or time.time() >= g.expires_at:
                self.stats["token_failures"] += 1
                return sage_json({"error": "invalid_grant"}, 400)
            g.used = True  # rotation: the old one is dead from now on
            self.stats["token_refreshes"] += 1
            return sage_json(self._issue_tokens(client_id))
        self.stats["token_failures"] += 1
        return sage_json({"error": "unsupported_grant_type"}, 400)
