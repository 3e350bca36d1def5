"""Reference data in the Sage Accounting sandbox: ledger accounts, tax rates, settings.

``/ledger_accounts`` (with ``visible_in`` and ``search``), ``/tax_rates`` (with
``updated_or_created_since`` and ``cis_only``),
``/financial_settings`` (GET and PUT: the lock date lives there) and ``/businesses``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from sandboxes.sage_accounting.answers import (
    ApiError,
    base_object,
    issue,
    moment,
    query_moment,
    sage_json,
)
from sandboxes.sage_accounting.core import SageCore
from sandboxes.sage_accounting.state import Business


class ReferenceMixin(SageCore):
    """The chart, tax rates, financial settings and the businesses list."""

    async def get_ledger_accounts(
        self, request: web.Request, biz: Business, _: Any
    ) -> web.Response:
        items = sorted(biz.ledger_accounts.values(), key=lambda a: a["nominal_code"])
        visible = request.query.get("visible_in")
        if visible:
            items = [a for a in items if a.get(f"visible_in_{visible}")]
        search = request.query.get("search", "").casefold()
        if search:
            items = [a for a in items if search in f"{a['nominal_code']} {a['name']}".casefold()]
        return self._page(request, "/ledger_accounts", items)

    async def get_tax_rates(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        """The Swagger's filters for GET /tax_rates. It defines no ``usage`` parameter (nor
        any sales/purchase split of rates), so ``usage`` is refused as any undeclared query
        parameter is (422, before this runs); the sandbox keeps no historical, CIS or
        regional rates, so ``include_historical_data`` and ``address_region_id`` leave the
        list as it is and ``cis_only=true`` leaves nothing."""
        items = list(biz.tax_rates.values())
        since = query_moment(request.query, "updated_or_created_since")
        if since is not None:
            items = [r for r in items if moment(r["updated_at"]) >= since]  # inclusive
        if request.query.get("cis_only") == "true":
            items = []
        return self._page(request, "/tax_rates", items)

    async def get_financial_settings(
        self, request: web.Request, biz: Business, _: Any
    ) -> web.Response:
        return sage_json(biz.settings())

    async def put_financial_settings(
        self, request: web.Request, biz: Business, body: Any
    ) -> web.Response:
        fs = body["financial_settings"]
        try:
            if "year_end_lockdown_date" in fs:
                biz.lock_date = dt.date.fromisoformat(fs["year_end_lockdown_date"])
            if "accounts_start_date" in fs:
                biz.accounts_start = dt.date.fromisoformat(fs["accounts_start_date"])
            if "year_end_date" in fs:
                biz.year_end = dt.date.fromisoformat(fs["year_end_date"])
        except ValueError:
            raise ApiError(422, [issue("financial_settings", "Invalid date.")]) from None
        if "multi_currency_enabled" in fs:
            biz.multi_currency = bool(fs["multi_currency_enabled"])
        self._dirty = True
        return sage_json(biz.settings())

    async def get_businesses(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        items = [
            {**base_object("businesses", b.id, b.name), "name": b.name}
            for b in self.businesses.values()
        ]
        return self._page(request, "/businesses", items)
