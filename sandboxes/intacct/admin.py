"""The Intacct sandbox's admin endpoints (JSON under ``/admin``), for tests and the demo.

Health and counters, adding companies (with a chart of accounts and dimension lists),
closing and opening periods, paying a bill, bills, vendors and
attachments per company, inventory per item key, deleting a bill or an attachment as a
user would by hand, queueing faults and expiring sessions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from adapters.intacct.keys import item_key_of
from adapters.intacct.xml import format_date
from sandboxes.intacct.core import SandboxCore
from sandboxes.intacct.state import (
    DIMENSIONS,
    FAULT_MODES,
    Company,
    Stats,
    check_period,
    money,
)


class AdminMixin(SandboxCore):
    """The ``/admin`` routes and their handlers."""

    def _admin_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/health", self._admin_health),
            web.get("/admin/stats", self._admin_stats),
            web.post("/admin/stats/reset", self._admin_reset_stats),
            web.post("/admin/companies", self._admin_add_company),
            web.post("/admin/periods", self._admin_period),
            web.post("/admin/contacts", self._admin_contact),
            web.post("/admin/payments", self._admin_payment),
            web.get("/admin/inventory", self._admin_inventory),
            web.get("/admin/bills", self._admin_bills),
            web.get("/admin/vendors", self._admin_vendors),
            web.get("/admin/supdocs", self._admin_supdocs),
            web.delete("/admin/bills/{company}/{recordno}", self._admin_delete_bill),
            web.delete("/admin/attachments/{company}/{recordno}", self._admin_delete_attachment),
            web.post("/admin/faults", self._admin_faults),
            web.post("/admin/sessions/expire", self._admin_expire_sessions),
        ]

    async def _admin_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _admin_stats(self, request: web.Request) -> web.Response:
        stats = self.stats.as_dict()
        stats["bills"] = sum(len(c.documents) for c in self.companies.values())
        stats["supdocs"] = sum(len(c.supdocs) for c in self.companies.values())
        stats["vendors"] = sum(len(c.vendors) for c in self.companies.values())
        return web.json_response(stats)

    async def _admin_reset_stats(self, request: web.Request) -> web.Response:
        self.stats = Stats()
        return web.json_response({"ok": True})

    async def _admin_add_company(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        company_id = str(body.get("company_id") or f"SANDBOX-{secrets.token_hex(4).upper()}")
        accounts = body.get("accounts")
        company = self.add_company(
            company_id, accounts=accounts if isinstance(accounts, list) else None
        )
        if body.get("vendor_sequence") is not None:
            company.vendor_sequence = bool(body["vendor_sequence"])
        dimensions = body.get("dimensions") or {}
        if not isinstance(dimensions, dict) or set(dimensions) - set(DIMENSIONS):
            raise web.HTTPBadRequest(text=f"dimensions are among {', '.join(DIMENSIONS)}")
        for name, ids in dimensions.items():
            company.dimensions[name] = {str(i) for i in ids}
        return web.json_response({"company_id": company.id})

    def _admin_company(self, request: web.Request) -> Company:
        name = request.query.get("company") or request.match_info.get("company") or ""
        try:
            return self.company(name)
        except KeyError:
            raise web.HTTPNotFound(text=f"no company {name!r}") from None

    async def _admin_period(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        try:
            period = check_period(str(body.get("period", "")))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        status = body.get("status")
        if status not in {"open", "closed"}:
            raise web.HTTPBadRequest(text="status must be 'open' or 'closed'")
        targets = (
            [self._company_by_name(str(body["company"]))]
            if body.get("company")
            else list(self.companies.values())
        )
        for company in targets:
            if status == "closed":
                company.closed.add(period)
            else:
                company.closed.discard(period)
        return web.json_response(
            {"period": period, "status": status, "companies": [c.id for c in targets]}
        )

    async def _admin_contact(self, request: web.Request) -> web.Response:
        """A contact with no vendor (left behind by a vendor deleted in the UI, say)."""
        body = await json_body(request)
        company = self._company_by_name(str(body.get("company", "")))
        name = str(body.get("name", "")).strip()
        if not name:
            raise web.HTTPBadRequest(text="a contact needs a name")
        company.stray_contacts.add(name)
        return web.json_response({"company": company.id, "contact": name})

    async def _admin_payment(self, request: web.Request) -> web.Response:
        """A payment applied to a posted bill, as a user pays it in the product."""
        body = await json_body(request)
        company = self._company_by_name(str(body.get("company", "")))
        recordno = str(body.get("recordno", ""))
        record = company.documents.get(int(recordno)) if recordno.isdigit() else None
        if record is None or record["_object"] != "APBILL":
            raise web.HTTPNotFound(text=f"no bill {recordno}")
        if record.get("STATE") == "Draft":
            raise web.HTTPBadRequest(text="a draft bill cannot be paid")
        try:
            amount = Decimal(str(body.get("amount", "")))
            day = dt.date.fromisoformat(str(body.get("date") or dt.date.today().isoformat()))
        except (InvalidOperation, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"amount and date (YYYY-MM-DD): {exc}") from None
        entered = Decimal(str(record["TRX_TOTALENTERED"]))
        paid = Decimal(str(record.get("TRX_TOTALPAID") or 0)) + amount
        if amount <= 0 or paid > entered:
            raise web.HTTPBadRequest(
                text=f"amount must be above 0 and at most {entered - paid + amount}"
            )
        company.documents[int(recordno)] = {
            **record,
            "TRX_TOTALPAID": money(paid),
            "TOTALPAID": money(paid),
            "TRX_TOTALDUE": money(entered - paid),
            "TOTALDUE": money(entered - paid),
            "WHENPAID": format_date(day),
            "STATE": "Paid" if paid == entered else "Partially Paid",
        }
        return web.json_response(
            {"recordno": recordno, "paid": money(paid), "due": money(entered - paid)}
        )

    def _company_by_name(self, name: str) -> Company:
        try:
            return self.company(name)
        except KeyError:
            raise web.HTTPNotFound(text=f"no company {name!r}") from None

    async def _admin_inventory(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        return web.json_response({"company": company.id, "items": inventory(company)})

    async def _admin_bills(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        bills = [
            {
                **{k: v for k, v in r.items() if not k.startswith("_")},
                "OBJECT": r["_object"],
                "LINES": r["_lines"],
            }
            for r in company.documents.values()
        ]
        return web.json_response({"company": company.id, "bills": bills})

    async def _admin_vendors(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        return web.json_response({"company": company.id, "vendors": list(company.vendors.values())})

    async def _admin_supdocs(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        docs = [
            {
                "supdocid": d["supdocid"],
                "supdocname": d["supdocname"],
                "folder": d["folder"],
                "description": d["description"],
                "files": [
                    {
                        "name": f["name"],
                        "type": f["type"],
                        "size": len(f["content"]),
                        "sha256": hashlib.sha256(f["content"]).hexdigest(),
                    }
                    for f in d["files"]
                ],
            }
            for d in company.supdocs.values()
        ]
        return web.json_response({"company": company.id, "supdocs": docs})

    async def _admin_delete_bill(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        recordno = request.match_info["recordno"]
        if not recordno.isdigit() or company.documents.pop(int(recordno), None) is None:
            raise web.HTTPNotFound(text=f"no bill {recordno}")
        return web.json_response({"deleted": recordno})

    async def _admin_delete_attachment(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        recordno = request.match_info["recordno"]
        record = company.documents.get(int(recordno)) if recordno.isdigit() else None
        if record is None or not record.get("SUPDOCID"):
            raise web.HTTPNotFound(text=f"bill {recordno} has no attachment")
        company.supdocs.pop(record["SUPDOCID"], None)
        company.documents[int(recordno)] = {**record, "SUPDOCID": ""}
        return web.json_response({"deleted": record["SUPDOCID"], "bill": recordno})

    async def _admin_faults(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        try:
            if "fail_rate" in body:
                rate = float(body["fail_rate"])
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("fail_rate must be between 0 and 1")
                self.fail_rate = rate
            if "modes" in body:
                modes = tuple(str(m) for m in body["modes"])
                if set(modes) - set(FAULT_MODES):
                    raise ValueError(f"modes must be among {', '.join(FAULT_MODES)}")
                self.fail_modes = modes
            if "next" in body:
                queued = [str(m) for m in body["next"]]
                if set(queued) - {*FAULT_MODES, "ok"}:
                    raise ValueError(f"next must be among ok, {', '.join(FAULT_MODES)}")
                self.fault_queue.extend(queued)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response(
            {
                "fail_rate": self.fail_rate,
                "modes": list(self.fail_modes),
                "next": list(self.fault_queue),
            }
        )

    async def _admin_expire_sessions(self, request: web.Request) -> web.Response:
        expired = len(self.sessions)
        self.sessions.clear()
        return web.json_response({"expired": expired})


def inventory(company: Company) -> dict[str, dict[str, int]]:
    """Item key -> bills carrying it and how many of them have an existing attachment."""
    items: dict[str, dict[str, int]] = {}
    for record in company.documents.values():
        key = item_key_of(record.get("DESCRIPTION"))
        if key is None:
            continue
        entry = items.setdefault(key, {"bills": 0, "attachments": 0})
        entry["bills"] += 1
        if record.get("SUPDOCID") and record["SUPDOCID"] in company.supdocs:
            entry["attachments"] += 1
    return items


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body
