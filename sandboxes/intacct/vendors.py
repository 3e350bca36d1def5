"""VENDOR in the Intacct sandbox: creating and updating vendors, finding one by VENDORID.

A vendor needs a NAME and DISPLAYCONTACT.PRINTAS; VENDORID is required unless the company
numbers vendors itself (``--vendor-sequence``), is at most 20 characters and unique
regardless of case.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from adapters.intacct.xml import ErrorDetail, element
from sandboxes.intacct.core import SandboxCore
from sandboxes.intacct.errors import E_CREATE, E_EXISTS, E_FIELD, cannot_create, missing, refuse
from sandboxes.intacct.objects import READ_ONLY
from sandboxes.intacct.state import (
    OBJECT_FIELDS,
    VENDOR_ID_MAX,
    Company,
    find_ci,
    flat_fields,
    now_text,
    text_of,
)


def vendor_by_id(company: Company, vendor_id: str) -> dict[str, str] | None:
    for vendor in company.vendors.values():
        if vendor["VENDORID"].casefold() == vendor_id.casefold():
            return vendor
    return None


class VendorsMixin(SandboxCore):
    """Creating and updating VENDOR records."""

    def _create_vendor(self, company: Company, el: Element) -> Element:
        values = {k: v for k, v in flat_fields(el).items() if isinstance(v, str)}
        contact = find_ci(el, "DISPLAYCONTACT")
        printas = text_of(contact, "PRINTAS") if contact is not None else ""
        name = values.get("NAME", "")
        if not name:
            raise cannot_create("VENDOR", missing("NAME"))
        if contact is None or not printas:
            raise cannot_create("VENDOR", missing("DISPLAYCONTACT.PRINTAS"))
        vendor_id = values.get("VENDORID", "")
        if not vendor_id:
            if not company.vendor_sequence:
                raise cannot_create("VENDOR", missing("VENDORID"))
            vendor_id = f"V{len(company.vendors) + 1:05d}"
            while any(v["VENDORID"] == vendor_id for v in company.vendors.values()):
                vendor_id = f"V{int(vendor_id[1:]) + 1:05d}"
        if len(vendor_id) > VENDOR_ID_MAX:
            raise cannot_create(
                "VENDOR",
                ErrorDetail(
                    E_FIELD,
                    "Field too long",
                    f"VENDORID '{vendor_id}' is longer than {VENDOR_ID_MAX} characters.",
                ),
            )
        if any(v["VENDORID"].casefold() == vendor_id.casefold() for v in company.vendors.values()):
            raise cannot_create(
                "VENDOR",
                ErrorDetail(
                    E_EXISTS,
                    "Another Vendor with the given value(s) already exists",
                    f"Another record with the value '{vendor_id}' already exists.",
                    "Use a unique value instead.",
                ),
            )
        # The display contact is a CONTACT record of its own, unique by name; without a
        # CONTACTNAME Intacct names it NAME(VVENDORID).
        contact_name = text_of(contact, "CONTACTNAME") or f"{name}(V{vendor_id})"
        if contact_name.casefold() in company.contact_names():
            raise cannot_create(
                "VENDOR",
                ErrorDetail(
                    E_EXISTS,
                    "Another Contact with the given value(s) already exists",
                    f"Another record with the value '{contact_name}' already exists.",
                    "Use a unique value instead.",
                ),
            )
        recordno = self._next_recordno()
        now = now_text()
        company.vendors[recordno] = {
            "RECORDNO": str(recordno),
            "VENDORID": vendor_id,
            "NAME": name,
            "TAXID": values.get("TAXID", ""),
            "STATUS": values.get("STATUS", "active") or "active",
            "PRINTAS": printas,
            "DISPLAYCONTACT.PRINTAS": printas,
            "DISPLAYCONTACT.CONTACTNAME": contact_name,
            "EMAIL1": text_of(contact, "EMAIL1") if contact is not None else "",
            "TERMNAME": values.get("TERMNAME", ""),
            "CURRENCY": values.get("CURRENCY", ""),
            "VENDTYPE": values.get("VENDTYPE", ""),
            "ONHOLD": values.get("ONHOLD", "false"),
            "WHENCREATED": now,
            "WHENMODIFIED": now,
        }
        self.stats.vendors_created += 1
        return element("vendor", {"RECORDNO": str(recordno), "VENDORID": vendor_id})

    def _update_vendor(self, company: Company, values: dict[str, str]) -> Element:
        vendor = None
        if values.get("RECORDNO", "").isdigit():
            vendor = company.vendors.get(int(values["RECORDNO"]))
        elif values.get("VENDORID"):
            vendor = vendor_by_id(company, values["VENDORID"])
        if vendor is None:
            raise refuse(E_CREATE, "Could not update Vendor record!", "No such vendor.")
        changes = {
            k: v for k, v in values.items() if k in OBJECT_FIELDS["VENDOR"] and k not in READ_ONLY
        }
        changes.pop("RECORDNO", None)
        changes.pop("VENDORID", None)
        new = {**vendor, **changes, "WHENMODIFIED": now_text()}
        company.vendors[int(vendor["RECORDNO"])] = new
        return element("vendor", {"RECORDNO": new["RECORDNO"], "VENDORID": new["VENDORID"]})
