"""Attachments in the Intacct sandbox: supdoc folders, supdocs and reading them back.

``create_supdocfolder`` and ``create_supdoc`` (base64 files, ids of at most 20
characters, unique) and ``get`` of a ``supdoc`` or ``supdocfolder``, as the legacy API has
them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import ErrorDetail, element
from sandboxes.intacct.core import Context, Reply, SandboxCore
from sandboxes.intacct.errors import E_CREATE, E_EXISTS, E_FIELD, E_READ, Refusal, refuse
from sandboxes.intacct.state import SUPDOC_ID_MAX, Company, text_of

# Intacct documents no limit for API attachments; 20 MB is the one it documents for bills
# sent to AP Automation, and what billstream keeps to: the sandbox refuses beyond it, so a
# client that forgot the limit fails here rather than at a customer's.
MAX_FILE_BYTES = 20_000_000


class AttachmentsMixin(SandboxCore):
    """Supdoc folders and supdocs (the legacy attachment functions)."""

    def _create_supdocfolder(self, company: Company, body: Element, ctx: Context) -> Reply:
        name = text_of(body, "supdocfoldername")
        if not name:
            raise refuse(E_FIELD, "Required field missing", "supdocfoldername is required.")
        if name.casefold() in {f.casefold() for f in company.folders}:
            raise Refusal(
                ErrorDetail(
                    E_EXISTS,
                    "Another Attachment Folder with the given value(s) already exists",
                    f"Another record with the value '{name}' already exists.",
                    "Use a unique value instead.",
                )
            )
        parent = text_of(body, "supdocparentfoldername")
        if parent and parent not in company.folders:
            raise refuse(E_CREATE, "Invalid folder", f"Parent folder '{parent}' does not exist.")
        company.folders[name] = {
            "name": name,
            "description": text_of(body, "supdocfolderdescription"),
            "parent": parent,
        }
        return None, name

    def _create_supdoc(self, company: Company, body: Element, ctx: Context) -> Reply:
        supdoc = text_of(body, "supdocid")
        if not supdoc:
            raise refuse(E_FIELD, "Required field missing", "supdocid is required.")
        if len(supdoc) > SUPDOC_ID_MAX:
            raise refuse(
                E_FIELD, "Field too long", f"supdocid '{supdoc}' is longer than 20 characters."
            )
        folder = text_of(body, "supdocfoldername")
        if not folder:
            raise refuse(E_FIELD, "Required field missing", "supdocfoldername is required.")
        if folder not in company.folders:
            raise refuse(E_CREATE, "Invalid folder", f"Folder '{folder}' does not exist.")
        if supdoc in company.supdocs:
            raise Refusal(
                ErrorDetail(
                    E_EXISTS,
                    "Another Attachment with the given value(s) already exists",
                    f"Another record with the value '{supdoc}' already exists.",
                    "Use a unique value instead.",
                )
            )
        files = []
        for att in body.findall("attachments/attachment"):
            raw = text_of(att, "attachmentdata")
            try:
                content = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise refuse(
                    E_FIELD, "Invalid attachment data", "attachmentdata is not base64."
                ) from None
            if len(content) > MAX_FILE_BYTES:
                raise refuse(
                    E_FIELD,
                    "Attachment too large",
                    f"The file {text_of(att, 'attachmentname')} is {len(content)} bytes; files "
                    f"over {MAX_FILE_BYTES} bytes are not accepted.",
                )
            files.append(
                {
                    "name": text_of(att, "attachmentname"),
                    "type": text_of(att, "attachmenttype"),
                    "content": content,
                }
            )
        company.supdocs[supdoc] = {
            "recordno": str(self._next_recordno()),
            "supdocid": supdoc,
            "supdocname": text_of(body, "supdocname") or "Unnamed",
            "folder": folder,
            "description": text_of(body, "supdocdescription"),
            "creationdate": dt.date.today().strftime("%m/%d/%Y"),
            "createdby": ctx.user_id,
            "files": files,
        }
        self.stats.supdocs_created += 1
        return None, supdoc

    def _get(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = body.get("object", "").lower()
        key = body.get("key", "")
        wanted = {f.text.strip().lower() for f in body.findall("fields/field") if f.text}
        if obj == "supdoc":
            doc = company.supdocs.get(key)
            records = []
            if doc is not None:
                view: dict[str, Any] = {
                    "recordno": doc["recordno"],
                    "supdocid": doc["supdocid"],
                    "supdocname": doc["supdocname"],
                    "folder": doc["folder"],
                    "description": doc["description"],
                    "creationdate": doc["creationdate"],
                    "createdby": doc["createdby"],
                    "attachments": {
                        "attachment": [
                            {
                                "attachmentname": f["name"],
                                "attachmenttype": f["type"],
                                "attachmentdata": base64.b64encode(f["content"]).decode("ascii"),
                            }
                            for f in doc["files"]
                        ]
                    },
                }
                if wanted:
                    view = {k: v for k, v in view.items() if k in wanted}
                records.append(element("supdoc", view))
        elif obj == "supdocfolder":
            folder = company.folders.get(key)
            records = []
            if folder is not None:
                records.append(
                    element(
                        "supdocfolder",
                        {
                            "name": folder["name"],
                            "description": folder["description"],
                            "parentfolder": folder["parent"],
                        },
                    )
                )
        else:
            raise refuse(
                E_READ, "There was an error processing the request.", f"get of object '{obj}'."
            )
        return element("data", records, {"listtype": obj, "count": str(len(records))}), None
