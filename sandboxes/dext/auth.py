"""Tokens and limits in the Dext sandbox: who may call, and how often.

``POST /oauth/token`` grants ``client_credentials`` (form fields or HTTP Basic) and
``refresh_token``; access tokens expire, a fixed personal token is accepted too. A
request budget per window and token answers 429 with ``X-RateLimit-*`` and
``Retry-After`` once spent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import secrets
import time

from aiohttp import web

from sandboxes.dext.state import DextCore, Window, error


class AuthMixin(DextCore):
    """The token endpoint, bearer checks and the rate limit."""

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
            return error(401, "invalid_client", "Unknown client or wrong secret.")
        grant = str(form.get("grant_type", ""))
        if grant == "refresh_token":
            if str(form.get("refresh_token", "")) not in self._refresh:
                return error(400, "invalid_grant", "Unknown refresh token.")
        elif grant != "client_credentials":
            return error(400, "unsupported_grant_type", f"Grant {grant!r} is not supported.")
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
            return error(
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
            return error(
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
            window = self._windows[token] = Window(started=now)
        reset = max(1, math.ceil(window.started + self.faults.rate_window - now))
        if window.used >= limit:
            self.stats.rate_limited += 1
            headers = {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "Retry-After": str(reset),
            }
            return headers, error(429, "rate_limited", "Too many requests.", **headers)
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
            return headers, error(404, "not_found", f"No Dext account {account!r}.", **headers)
        return headers, None
