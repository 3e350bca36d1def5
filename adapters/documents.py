"""Fetching an item's original document for the attach stage, safely.

Only what a tenant allows is read: ``file:`` documents from configured folders (the sample
set, an export folder). Anything else is ``document_unavailable`` with the reason.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import unquote, urlparse

from domain.errors import Reason, StageError
from domain.models import Document, DocumentRef
from domain.tenants import Tenant

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024

_MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
]


def sniff(content: bytes) -> str | None:
    """The real type of a document from its first bytes, whatever its name says."""
    for magic, mime in _MAGIC:
        if content.startswith(magic):
            return mime
    return None


def _unavailable(ref: DocumentRef, why: str) -> StageError:
    # The URL's query may be a signature: name the file, never the full URL.
    return StageError(
        Reason.DOCUMENT_UNAVAILABLE,
        f"Document {ref.filename!r} is unavailable: {why}.",
        detail={"filename": ref.filename},
    )


class DocumentFetcher:
    """The ``DocumentSource`` port: file documents from allowed folders."""

    def __init__(
        self, *, allowed_dirs: list[Path], max_bytes: int = MAX_DOCUMENT_BYTES
    ) -> None:
        self.allowed_dirs = [d.resolve() for d in allowed_dirs]
        self.max_bytes = max_bytes

    async def fetch(self, ref: DocumentRef, tenant: Tenant) -> Document:
        scheme = urlparse(ref.url).scheme
        if scheme == "file":
            content = await asyncio.to_thread(self._read_file, ref, tenant)
        else:
            raise _unavailable(ref, f"the {scheme or 'missing'} URL scheme is not allowed")
        mime = sniff(content)
        if mime is None:
            raise _unavailable(ref, "it is not a PDF, PNG, JPEG or TIFF file")
        return Document.of(ref.filename, mime, content)

    def _read_file(self, ref: DocumentRef, tenant: Tenant) -> bytes:
        path = Path(unquote(urlparse(ref.url).path)).resolve()
        roots = self.allowed_dirs + [Path(d).resolve() for d in tenant.document_dirs]
        if not any(path.is_relative_to(root) for root in roots):
            raise _unavailable(ref, "its folder is not one this tenant allows")
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise _unavailable(ref, f"it is {size} bytes, over the {self.max_bytes} cap")
            return path.read_bytes()
        except FileNotFoundError:
            raise _unavailable(ref, "the file does not exist") from None
        except OSError as exc:
            raise _unavailable(ref, exc.strerror or "it cannot be read") from None
