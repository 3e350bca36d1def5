"""Keeping a pushed e-invoice as a file, so the attach stage can read its document.

A file dropped in the export folder is already where the attach stage reads documents; a
pushed one exists only as a request body. It is written under the tenant's first document
folder (one the attach stage reads, per the tenants file), in ``.billstream/pushed/``, which
the folder source never scans. The name is the content's hash: the same push twice writes
nothing new. An XML invoice's document is its PDF rendering (``render``), as in the folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from adapters.einvoice.reader import EInvoiceRead
from adapters.einvoice.render import write_rendering
from domain.models import DocumentRef

PUSHED = Path(".billstream") / "pushed"


def keep_pushed(read: EInvoiceRead, data: bytes, filename: str, folder: Path) -> DocumentRef:
    """Write the pushed file ``data`` (and an XML's rendering) under ``folder``; the
    document to attach, with ``read.item``'s ``document`` set to match."""
    target = folder.resolve() / PUSHED
    target.mkdir(parents=True, exist_ok=True)
    suffix = ".pdf" if read.embedded_name else ".xml"
    original = target / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    if not original.exists():
        partial = original.with_name(original.name + ".part")
        partial.write_bytes(data)
        partial.replace(original)
    read.item["einvoice"]["original_filename"] = filename
    if read.embedded_name:
        return DocumentRef(url=original.as_uri(), filename=filename, content_type="application/pdf")
    rendering = write_rendering(read.invoice, data, filename, target)
    name = f"{Path(filename).stem}.pdf"
    read.item["document"] = {"filename": name, "content_type": "application/pdf"}
    return DocumentRef(url=rendering.as_uri(), filename=name, content_type="application/pdf")
