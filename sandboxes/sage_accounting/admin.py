"""The Sage Accounting sandbox's admin endpoints (``/_admin``), for tests and the demo.

Counters, new businesses and refresh tokens, expiring tokens, faults at run time; per
business: inventory per item key, lock date, closing and opening a month, and deleting
bills, suppliers and attachments as a user would by hand.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import json
from typing import Any

from aiohttp import web

from sandboxes.sage_accounting.answers import plain_json
from sandboxes.sage_accounting.bills import BillsMixin
from sandboxes.sage_accounting.core import empty_stats
from sandboxes.sage_accounting.oauth import OAuthMixin
from sandboxes.sage_accounting.state import FAIL_MODES, ITEM_RE, Business, make_business


class AdminMixin(OAuthMixin, BillsMixin):
    """``/_admin/{action}`` and ``/_admin/businesses/{business}/{action}``."""

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
            mark = ITEM_RE.search(bill.get("notes", ""))
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
                self.stats = empty_stats()
            return plain_json(self.stats)
        if action == "businesses" and request.method == "POST":
            biz = make_business(data)
            if biz.id in self.businesses:
                return web.json_response({"error": "exists"}, status=409)
            self.businesses[biz.id] = biz
            token = self.mint_refresh_token(self.options.client_id)
            self.ready_tokens[biz.id] = token
            return plain_json({"business_id": biz.id, "refresh_token": token}, 201)
        if action == "refresh_tokens" and request.method == "POST":
            return plain_json(
                {"refresh_token": self.mint_refresh_token(self.options.client_id)}, 201
            )
        if action == "expire_refresh_tokens":
            wanted = data.get("refresh_token")
            n = 0
            for tok, grant in self.refresh_tokens.items():
                if wanted in (None, tok) and not grant.used:
                    grant.expires_at = 0.0
                    n += 1
            return plain_json({"expired": n})
        if action == "expire_access_tokens":
            n = len(self.access_tokens)
            self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)
            return plain_json({"expired": n})
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
            return plain_json(
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
            return plain_json(self.inventory(biz))
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
            return plain_json({"deleted": len(gone)})
        else:
            raise web.HTTPNotFound(text=f"unknown admin action {action}")
        self._dirty = True
        return plain_json({"lock_date": biz.lock_date.isoformat() if biz.lock_date else None})
