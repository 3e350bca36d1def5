"""The generic ``create`` and ``update`` functions of the Intacct sandbox.

They take any of the objects the sandbox keeps (VENDOR, APBILL, APADJUSTMENT) and hand
each to its family; ``delete`` lives in ``sandboxes.intacct.deletes``.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from adapters.intacct.xml import element
from sandboxes.intacct.bills import BillsMixin, document_fields
from sandboxes.intacct.core import Context, Reply
from sandboxes.intacct.errors import E_CREATE, E_FIELD, refuse
from sandboxes.intacct.state import DOCUMENTS, Company, flat_fields
from sandboxes.intacct.vendors import VendorsMixin


class RecordsMixin(VendorsMixin, BillsMixin):
    """create / update over every object the sandbox keeps."""

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
