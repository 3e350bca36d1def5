"""Contacts in the Sage Accounting sandbox: suppliers (and customers) by id, list, create.

A new contact needs a name (at most 100 characters) and a VENDOR or CUSTOMER type; its
reference (at most 10 characters, unique) is numbered when left out. Its main contact
person's e-mail is what the ``email`` filter matches.
"""

from __future__ import annotations

import re
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
from sandboxes.sage_accounting.state import Business


class ContactsMixin(SageCore):
    """``/contacts``: list with search, read one, create."""

    async def get_contacts(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        q = request.query
        items = sorted(biz.contacts.values(), key=lambda c: (c["created_at"], c["id"]))
        if q.get("contact_type_id"):
            items = [
                c for c in items if any(t["id"] == q["contact_type_id"] for t in c["contact_types"])
            ]
        term = q.get("search", "").casefold()
        if term:
            items = [
                c
                for c in items
                if term in c["name"].casefold() or term in c.get("reference", "").casefold()
            ]
        email = q.get("email", "").strip().casefold()
        if email:
            # the contact person's address, matched whole (case does not matter in e-mail)
            items = [c for c in items if c.get("email", "").casefold() == email]
        return self._page(request, "/contacts", items)

    async def get_contact(self, request: web.Request, biz: Business, _: Any) -> web.Response:
        contact = biz.contacts.get(request.match_info["key"])
        if contact is None:
            raise ApiError(404, [issue("key", "Contact not found", "RecordNotFound")])
        return sage_json(self._project(contact, request.query.get("attributes", "all")))

    async def post_contacts(self, request: web.Request, biz: Business, body: Any) -> web.Response:
        c = body["contact"]
        replay = self._replay(biz, "contact", c)
        if replay is not None:
            return replay
        issues = []
        issues += self._email_issues(c)
        name = str(c["name"]).strip()
        if not name:
            issues.append(issue("name", "This field is required."))
        if len(name) > 100:
            issues.append(issue("name", "is too long (maximum is 100 characters)"))
        types = c["contact_type_ids"]
        if not types or any(t not in {"VENDOR", "CUSTOMER"} for t in types):
            issues.append(issue("contact_type_ids", "has to be either CUSTOMER or VENDOR"))
        tax = c.get("tax_number")
        if tax is not None and not re.fullmatch(r"[A-Za-z0-9 .\-/]{4,30}", tax):
            issues.append(issue("tax_number", f"Tax number {tax} is invalid"))
        ref = c.get("reference")
        n = biz.next_number()
        if ref is None:
            ref = f"V{n:05d}"
        if len(ref) > 10:
            issues.append(issue("reference", "is too long (maximum is 10 characters)"))
        elif any(x.get("reference") == ref for x in biz.contacts.values()):
            issues.append(issue("reference", "has already been taken"))
        currency = c.get("currency_id", biz.base_currency)
        if currency not in biz.currencies:
            issues.append(issue("currency_id", f"Currency {currency} is not enabled"))
        if issues:
            raise ApiError(422, issues)
        cid = new_id()
        now = now_iso()
        contact = {
            **base_object("contacts", cid, f"{name} ({ref})"),
            "created_at": now,
            "updated_at": now,
            "contact_types": [
                base_object("contact_types", t, "Supplier" if t == "VENDOR" else "Customer")
                for t in types
            ],
            "name": name,
            "reference": ref,
            "currency": base_object("currencies", currency, currency),
            "deletable": True,
            "system": False,
        }
        if tax:
            contact["tax_number"] = tax
        if c.get("notes"):
            contact["notes"] = str(c["notes"])[:4000]
        person = c.get("main_contact_person")
        if person:
            contact["main_contact_person"] = self._contact_person(person, name)
            if person.get("email"):
                contact["email"] = person["email"]
        biz.contacts[cid] = contact
        self._remember(biz, "contact", c, 201, contact)
        self._dirty = True
        return sage_json(contact, 201)

    @staticmethod
    def _email_issues(contact: dict[str, Any]) -> list[dict[str, str]]:
        email = str((contact.get("main_contact_person") or {}).get("email") or "")
        if email and (len(email) > 100 or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email)):
            return [issue("main_contact_person.email", f"Email {email} is invalid")]
        return []

    @staticmethod
    def _contact_person(person: dict[str, Any], contact_name: str) -> dict[str, Any]:
        pid = new_id()
        now = now_iso()
        shown = str(person.get("name") or contact_name)[:50]
        out: dict[str, Any] = {
            **base_object("contact_persons", pid, shown),
            "name": shown,
            "is_main_contact": True,
            "created_at": now,
            "updated_at": now,
        }
        for key in ("email", "telephone", "mobile", "job_title"):
            if person.get(key):
                out[key] = str(person[key])
        return out
