"""The generic ``create``, ``update`` and ``delete`` functions of the Intacct sandbox.

They take any of the objects the sandbox keeps (VENDOR, APBILL, APADJUSTMENT) and hand
each to its family; deleting a document dated in a closed period is refused.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from adapters.intacct.xml import ErrorDetail, element, parse_date
from sandboxes.intacct.bills import BillsMixin, document_fields
from sandboxes.intacct.core import Context, Reply
from sandboxes.intacct.errors import CLOSED_TEXT, E_CREATE, E_FIELD, Refusal, refuse
from sandboxes.intacct.state import DOCUMENTS, Company, flat_fields, text_of
from sandboxes.intacct.vendors import VendorsMixin


class RecordsMixin(VendorsMixin, BillsMixin):
    """create / update / delete over every object the sandbox keeps."""

    def _create(self, company: Company, body: Element, ctx: Context) -> Reply:
        created = []
        for obj_el in body:
            obj = obj_el.tag.upper()
            if obj == "VENDOR":
                created.append(self._create_vendor(company, obj_el))
            elif obj in DOCUMENTS:
                fields, lines = document_fields(obj_el, obj)
                recordno = self._create_document(company, obj, fields, lines)
                created.append(element(obj.lower(), {"RECORDNO": str(recordno)}))
            else:
                raise refuse(E_CREATE, f"Object {obj} is not supported by this sandbox")
        if not created:
            raise refuse(E_FIELD, "Required field missing", "create holds no object.")
        return element("data", created, {"listtype": "objects", "count": str(len(created))}), None

    def _update(self, company: Company, body: Element, ctx: Context) -> Reply:
        updated = []
        for obj_el in body:
            obj = obj_el.tag.upper()
            values = {k: v for k, v in flat_fields(obj_el).items() if isinstance(v, str)}
            if obj == "VENDOR":
                updated.append(self._update_vendor(company, values))
            elif obj in DOCUMENTS:
                updated.append(self._update_document(company, obj, obj_el, values))
            else:
                raise refuse(E_CREATE, f"Object {obj} is not supported by this sandbox")
        return element("data", updated, {"listtype": "objects", "count": str(len(updated))}), None

    def _delete(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = text_of(body, "object").upper()
        keys = [k.strip() for k in text_of(body, "keys").split(",") if k.strip()]
        for key in keys:
            if obj == "VENDOR":
                if not key.isdigit() or company.vendors.pop(int(key), None) is None:
                    raise refuse(E_CREATE, "Could not delete Vendor record!", f"No vendor {key}.")
            elif obj in DOCUMENTS:
                record = company.documents.get(int(key)) if key.isdigit() else None
                if record is None or record["_object"] != obj:
                    raise refuse(E_CREATE, "Could not delete record!", f"No {obj} {key}.")
                when = record.get("WHENPOSTED") or record.get("WHENCREATED")
                if when and company.period_closed(parse_date(when)):
                    raise Refusal(
                        ErrorDetail(
                            E_CREATE, "Could not delete record!", CLOSED_TEXT.format(date=when)
                        )
                    )
                del company.documents[int(key)]
            else:
                raise refuse(E_CREATE, f"Object {obj} is not supported by this sandbox")
        return None, None
