"""Dext document references: what the log keeps instead of a signed download link.

Dext hands out document links signed for days; copied into every topic and changelog they
would be credentials kept for as long as the audit log. So a source that reads the Dext API
records ``dext://<account>/<item id>/<file name>`` and the attach stage, when it needs the
bytes, asks Dext for the item again (``adapters.dext.api.DextDocumentLinks``) and downloads
from the fresh link it gets.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from domain.errors import Reason, StageError
from domain.models import DocumentRef

SCHEME = "dext"


def document_reference(account: str, item_id: str, ref: DocumentRef) -> DocumentRef:
    """The reference the log keeps for ``ref``, the document of ``item_id`` in ``account``."""
    parts = "/".join(quote(p, safe="") for p in (item_id, ref.filename))
    return ref.model_copy(update={"url": f"{SCHEME}://{quote(account, safe='')}/{parts}"})


def parse_reference(url: str) -> tuple[str, str, str] | None:
    """(account, item id, file name) of a ``dext:`` reference, or None if it is not one."""
    parts = urlsplit(url)
    segments = parts.path.lstrip("/").split("/")
    if parts.scheme != SCHEME or not parts.netloc or len(segments) != 2 or not all(segments):
        return None
    return unquote(parts.netloc), unquote(segments[0]), unquote(segments[1])


def unavailable(ref: DocumentRef, why: str) -> StageError:
    return StageError(
        Reason.DOCUMENT_UNAVAILABLE,
        f"Document {ref.filename!r} is unavailable: {why}.",
        detail={"filename": ref.filename},
    )
