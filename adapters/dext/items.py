"""What every Dext source shares: the canonical item, where its document lives, the sink.

The three sources (API poller, export folder, signed push) must put the *same* event on the
received topic for the same Dext item. The only thing that honestly differs between them is
where the original document can be downloaded from (a signed API link, a file in the export
folder, a URL a pushing tool gave). So the location is taken out of the item and carried in
``Received.document``; the item keeps what Dext says about the document (its file name and
type), which is the same whatever the route.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from domain.dext import document_ref, item_id
from domain.models import DocumentRef, item_key

# Keys that only say where the document can be fetched from (domain.dext.document_ref reads
# them); they depend on the route an item took, so the canonical item drops them.
LOCATION_KEYS = ("document_url", "image_url", "direct_download_url")


class ReceivedSink(Protocol):
    """Where a source hands its items: ``streams.kafka.publish.Publisher`` satisfies this.

    ``publish_received`` must return only once the broker acknowledged the event, because
    sources advance their durable state (cursor, processed files) right after it.
    """

    async def publish_received(
        self,
        tenant_id: str,
        item: Mapping[str, Any],
        *,
        source: str,
        document: DocumentRef | None = None,
        origin: str | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class SourceItem:
    """One item ready to publish: whose books, the canonical item, where its document is."""

    tenant: str
    item: dict[str, Any]
    document: DocumentRef | None
    origin: str

    @property
    def key(self) -> str:
        return item_key(self.tenant, require_id(self.item))

    @property
    def digest(self) -> str:
        return item_digest(self.item)


def guess_content_type(filename: str) -> str | None:
    mime, _ = mimetypes.guess_type(filename, strict=False)
    return mime


def canonical_item(raw: Mapping[str, Any]) -> tuple[dict[str, Any], DocumentRef | None]:
    """The item without its document's location, and that location as a ``DocumentRef``.

    The item's ``document`` keeps ``filename`` and ``content_type`` (guessed from the name
    when Dext gave none), so the same item reads the same through every source.
    """
    ref = document_ref(raw)
    item = {k: v for k, v in raw.items() if k not in LOCATION_KEYS}
    dext_id = item_id(raw)
    if dext_id is not None:
        # One spelling of the id for every key: the push dedup, the Kafka key, the audit.
        item["id"] = dext_id
    doc = raw.get("document")
    if ref is not None or isinstance(doc, Mapping):
        filename = None
        content_type = None
        if isinstance(doc, Mapping):
            filename = doc.get("filename")
            content_type = doc.get("content_type")
        if not filename and ref is not None:
            filename = ref.filename
        if filename:
            filename = str(filename)
            item["document"] = {
                "filename": filename,
                "content_type": content_type or guess_content_type(filename),
            }
        else:
            item.pop("document", None)
    if ref is not None and ref.content_type is None and isinstance(item.get("document"), dict):
        ref = ref.model_copy(update={"content_type": item["document"]["content_type"]})
    return item, ref


def item_digest(item: Mapping[str, Any]) -> str:
    """A stable hash of an item's content (key order does not matter)."""
    text = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def require_id(item: Mapping[str, Any]) -> str:
    found = item_id(item)
    if found is None:
        raise ValueError("the item has no Dext id")
    return found


def env_suffix(name: str) -> str:
    """``acme-uk`` -> ``ACME_UK``: how a tenant or account is spelt in an env var name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()
