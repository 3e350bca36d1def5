"""The Dext sandbox's items feed and documents, as the poller reads them.

``/v1/accounts``, ``/v1/accounts/{account}/items`` (by status, after a cursor, oldest
change first, in pages), one item, and each item's document through a signed link that
expires (HMAC over account, item, filename and expiry; no bearer token needed).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from adapters.dext.items import guess_content_type
from sandboxes.dext.auth import AuthMixin
from sandboxes.dext.state import MAX_PAGE, SandboxItem, decode_cursor, encode_cursor, error


class FeedMixin(AuthMixin):
    """Accounts, items and documents."""

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
            return error(400, "invalid_request", "Bad cursor or limit.", **headers)
        if not 1 <= limit <= MAX_PAGE:
            return error(400, "invalid_request", f"limit must be 1..{MAX_PAGE}.", **headers)
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
            return error(404, "not_found", "No such item.", **headers)
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
            return error(403, "invalid_signature", "The link is not signed.")
        wanted = self._signature(account, item_id, filename, int(expires_text))
        if not hmac.compare_digest(wanted, signature):
            return error(403, "invalid_signature", "The link's signature does not match.")
        if int(expires_text) < time.time():
            return error(403, "expired", "The link has expired.")
        it = self.items.get((account, item_id))
        if it is None or it.document_path is None or not it.document_path.is_file():
            return error(404, "not_found", "No such document.")
        self.stats.documents += 1
        content_type = guess_content_type(filename) or "application/octet-stream"
        return web.Response(body=it.document_path.read_bytes(), content_type=content_type)
