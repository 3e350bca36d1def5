"""Reference data in the Sage Accounting sandbox: ledger accounts, tax rates, settings.

``/ledger_accounts`` (with ``visible_in`` and ``search``), ``/tax_rates``,
``/financial_settings`` (GET and PUT: the lock date lives there) and ``/businesses``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from sandboxes.sage_accounting.answers import ApiError, base_object, issue, sage_json
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
        return self._page(request, "/tax_rates", list(biz.tax_rates.values()))

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
