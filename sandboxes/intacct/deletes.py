"""Deleting in the Intacct sandbox: the generic ``delete`` and the legacy ``delete_bill``
and ``delete_vendor``.

``<delete><object>APBILL</object><keys>1,2</keys></delete>`` takes RECORDNOs of VENDOR,
APBILL or APADJUSTMENT; ``<delete_bill key="RECORDNO"/>`` and
``<delete_vendor vendorid="V100"/>`` are the 2.1 shapes, answering with the key. Intacct
refuses to delete a document dated in a closed period (its own text), a bill with payments
applied, and a vendor that has transactions; our reference does not give the last two
texts, so they are the sandbox's words, with Intacct's ``BL01001973`` and its "Could not
delete ... record!" description. A deleted vendor's display contact stays behind, as a
contact record does in Intacct, and still holds its name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import ErrorDetail, parse_date
from sandboxes.intacct.core import Context, Reply, SandboxCore
from sandboxes.intacct.errors import CLOSED_TEXT, E_CREATE, E_FIELD, Refusal, refuse
from sandboxes.intacct.state import DOCUMENTS, Company, text_of
from sandboxes.intacct.vendors import vendor_by_id

LABELS = {"APBILL": "APBill", "APADJUSTMENT": "APAdjustment", "VENDOR": "Vendor"}


class DeletesMixin(SandboxCore):
    """delete, delete_bill and delete_vendor."""

    def _delete(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = text_of(body, "object").upper()
        keys = [k.strip() for k in text_of(body, "keys").split(",") if k.strip()]
        if not keys:
            raise refuse(E_FIELD, "Required field missing", "Required field keys is missing.")
        for key in keys:
            if obj == "VENDOR":
                vendor = company.vendors.get(int(key)) if key.isdigit() else None
                if vendor is None:
                    raise refuse(E_CREATE, "Could not delete Vendor record!", f"No vendor {key}.")
                delete_vendor(company, vendor)
            elif obj in DOCUMENTS:
                delete_document(company, obj, key)
            else:
                raise refuse(E_CREATE, f"Object {obj} is not supported by this sandbox")
        return None, None

    def _delete_bill(self, company: Company, body: Element, ctx: Context) -> Reply:
        key = body.get("key", "").strip()
        if not key:
            raise refuse(E_FIELD, "Required field missing", "Required attribute key is missing.")
        delete_document(company, "APBILL", key)
        return None, key

    def _delete_vendor(self, company: Company, body: Element, ctx: Context) -> Reply:
        vendor_id = body.get("vendorid", "").strip()
        if not vendor_id:
            raise refuse(
                E_FIELD, "Required field missing", "Required attribute vendorid is missing."
            )
        vendor = vendor_by_id(company, vendor_id)
        if vendor is None:
            raise refuse(
                E_CREATE, "Could not delete Vendor record!", f"Vendor '{vendor_id}' not found."
            )
        delete_vendor(company, vendor)
        return None, vendor["VENDORID"]


def delete_document(company: Company, obj: str, key: str) -> None:
    label = LABELS[obj]
    record = company.documents.get(int(key)) if key.isdigit() else None
    if record is None or record["_object"] != obj:
        raise refuse(E_CREATE, f"Could not delete {label} record!", f"No {obj} {key}.")
    when = record.get("WHENPOSTED") or record.get("WHENCREATED")
    if when and company.period_closed(parse_date(when)):
        raise Refusal(
            ErrorDetail(
                E_CREATE, f"Could not delete {label} record!", CLOSED_TEXT.format(date=when)
            )
        )
    if has_payments(record):
        raise refuse(
            E_CREATE,
            f"Could not delete {label} record!",
            f"Bill {record.get('RECORDID') or key} has payments applied to it and cannot be "
            "deleted.",
            "Reverse or void the payments first, then delete the bill.",
        )
    del company.documents[int(key)]


def delete_vendor(company: Company, vendor: dict[str, str]) -> None:
    vendor_id = vendor["VENDORID"]
    used = [
        r
        for r in company.documents.values()
        if str(r.get("VENDORID", "")).casefold() == vendor_id.casefold()
    ]
    if used:
        raise refuse(
            E_CREATE,
            "Could not delete Vendor record!",
            f"Vendor '{vendor_id}' has {len(used)} transaction(s) and cannot be deleted.",
            "Delete the vendor's transactions first, or make the vendor inactive.",
        )
    del company.vendors[int(vendor["RECORDNO"])]
    contact = vendor.get("DISPLAYCONTACT.CONTACTNAME", "")
    if contact:
        company.stray_contacts.add(contact)


def has_payments(record: dict[str, Any]) -> bool:
    return Decimal(str(record.get("TRX_TOTALPAID") or 0)) != 0
