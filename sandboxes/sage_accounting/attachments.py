"""Attachments in the Sage Accounting sandbox: files on purchase invoices and credit notes.

A file is base64, at most 2.5 MiB, of an accepted type, and belongs to the bill named by
its attachment context; ``attributes=file`` (or ``all``) brings the content back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandboxes.sage_accounting.answers import (
    ApiError,
    base_object,
    issue,
    new_id,
    now_iso,
    sage_json,
)
from sandboxes.sage_accounting.core import SageCore
from sandboxes.sage_accounting.state import MAX_FILE_SIZE, MIME_TYPES, Business


class AttachmentsMixin(SageCore):
    """``/attachments``: list by context, read one (with its file), create, delete."""

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
                    issue(
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
            raise ApiError(404, [issue("key", "Record not found", "RecordNotFound")])
        view = self._attachment_view(biz)
        return sage_json(view(att, request.query.get("attributes", "all")))

    async def delete_attachment(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        if biz.attachments.pop(request.match_info["key"], None) is None:
            raise ApiError(404, [issue("key", "Record not found", "RecordNotFound")])
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
            raise ApiError(422, [issue("file", "is not valid base64")]) from None
        if len(content) > MAX_FILE_SIZE:
            issues.append(issue("file_size", f"must be at most {MAX_FILE_SIZE} bytes (2.5 MB)"))
        if "file_size" in a and a["file_size"] != len(content):
            issues.append(issue("file_size", "does not match the file"))
        if a["mime_type"] not in MIME_TYPES:
            issues.append(issue("mime_type", f"{a['mime_type']} is not an accepted file type"))
        ctx_type = a.get("attachment_context_type_id")
        ctx_id = a.get("attachment_context_id")
        context = None
        if ctx_type is not None:
            kind = self._CONTEXTS.get(ctx_type)
            if kind is None:
                issues.append(issue("attachment_context_type_id", "is not supported"))
            else:
                context = biz.collection(kind).get(str(ctx_id))
                if context is None:
                    issues.append(issue("attachment_context_id", "Record not found"))
        if issues:
            raise ApiError(422, issues)
        aid = new_id()
        now = now_iso()
        att: dict[str, Any] = {
            **base_object("attachments", aid, a["file_name"]),
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
            att["attachment_context_type"] = base_object(
                "attachment_context_types", ctx_type, ctx_type.replace("_", " ").title()
            )
            att["attachment_context"] = base_object(
                self._CONTEXTS[ctx_type], context["id"], context["displayed_as"]
            )
        biz.attachments[aid] = att
        biz.files[aid] = a["file"]
        self._dirty = True
        return sage_json(att, 201)
