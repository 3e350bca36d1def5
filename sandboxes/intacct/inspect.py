"""``inspect`` and ``lookup`` in the Intacct sandbox: what fields an object has.

``<inspect><object>APBILL</object></inspect>`` names the fields
(``<Type Name="APBILL"><Fields><Field>RECORDNO</Field>...``); with ``detail="1"`` each field
comes with its label, whether it is required or read-only, its data type and valid values;
``<object>*</object>`` lists the objects. ``lookup`` gives the queryable fields (``ID``,
``LABEL``, ``DESCRIPTION``, ``REQUIRED``, ``READONLY``, ``DATATYPE``, ``VALIDVALUES``,
``ISCUSTOM``) and the relationships, as developer.intacct.com/web-services/queries/ shows
it. Our reference material does not show ``inspect``'s answer; its shape follows Intacct's
published function documentation. An unknown object fails as a query on it does.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from adapters.intacct.xml import element
from sandboxes.intacct.core import Context, Reply, SandboxCore
from sandboxes.intacct.errors import E_QUERY, refuse
from sandboxes.intacct.objects import (
    READ_ONLY,
    RELATIONSHIPS,
    REQUIRED,
    SINGULAR,
    VALID_VALUES,
    datatype,
    label,
)
from sandboxes.intacct.state import OBJECT_FIELDS, Company, text_of


def known_object(body: Element) -> str:
    obj = text_of(body, "object").upper()
    if obj not in OBJECT_FIELDS:
        raise refuse(E_QUERY, f"Object definition {obj} not found")
    return obj


def field_detail(obj: str, name: str, tags: tuple[str, ...]) -> Element:
    """One field: ``tags`` are the element names for id, label, description, required,
    read-only, data type and custom, in that order."""
    values = (
        name,
        label(name),
        label(name),
        str(name in REQUIRED.get(obj, ())).lower(),
        str(name in READ_ONLY).lower(),
        datatype(obj, name),
        "false",
    )
    field = Element("Field")
    for tag, value in zip(tags, values, strict=True):
        SubElement(field, tag).text = value
        if tag in {"DATATYPE", "DataType"} and (obj, name) in VALID_VALUES:
            valid = SubElement(field, "VALIDVALUES")
            for v in VALID_VALUES[(obj, name)]:
                SubElement(valid, "VALIDVALUE").text = v
    return field


INSPECT_TAGS = ("Name", "DisplayLabel", "Description", "isRequired", "isReadOnly", "DataType")


class InspectMixin(SandboxCore):
    """inspect and lookup."""

    def _inspect(self, company: Company, body: Element, ctx: Context) -> Reply:
        if text_of(body, "object") == "*":
            types = [
                element("Type", SINGULAR.get(obj, (obj, obj))[1], {"typename": obj})
                for obj in OBJECT_FIELDS
            ]
            return element("data", types, {"listtype": "All", "count": str(len(types))}), None
        obj = known_object(body)
        detail = body.get("detail", "0") == "1"
        singular, plural = SINGULAR.get(obj, (obj, obj))
        type_el = Element("Type", {"Name": obj})
        if detail:
            type_el.append(
                element(
                    "Attributes",
                    {"SingularName": singular, "PluralName": plural, "Description": plural},
                )
            )
        fields = SubElement(type_el, "Fields")
        for name in OBJECT_FIELDS[obj]:
            if detail:
                fields.append(field_detail(obj, name, (*INSPECT_TAGS, "isCustom")))
            else:
                SubElement(fields, "Field").text = name
        return element("data", type_el, {"listtype": "All", "count": "1"}), None

    def _lookup(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = known_object(body)
        type_el = Element("Type", {"Name": obj, "DocumentType": ""})
        fields = SubElement(type_el, "Fields")
        tags = ("ID", "LABEL", "DESCRIPTION", "REQUIRED", "READONLY", "DATATYPE", "ISCUSTOM")
        for name in OBJECT_FIELDS[obj]:
            fields.append(field_detail(obj, name, tags))
        relationships = SubElement(type_el, "Relationships")
        for path, related, kind, by in RELATIONSHIPS.get(obj, ()):
            relationships.append(
                element(
                    "Relationship",
                    {
                        "OBJECTPATH": path,
                        "OBJECTNAME": related,
                        "LABEL": "",
                        "RELATIONSHIPTYPE": kind,
                        "RELATEDBY": by,
                    },
                )
            )
        return element("data", type_el, {"listtype": "All", "count": "1"}), None
