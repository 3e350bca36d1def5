"""The sample set shipped in the repo: realistic Dext items per tenant, with their PDFs.

``sample_items(n)`` cycles the set to any size; every copy gets its own Dext id and invoice
number (suffix ``-c<k>``), so copies are new invoices, not duplicates. The one deliberate
duplicate in the set stays a duplicate of its twin within each cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from domain.dext import loads_items
from domain.models import DocumentRef

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
ITEMS_DIR = SAMPLES_DIR / "items"
DOCUMENTS_DIR = SAMPLES_DIR / "documents"


@dataclass(frozen=True)
class SampleItem:
    tenant: str
    item: dict[str, Any]

    @property
    def document_path(self) -> Path:
        return DOCUMENTS_DIR / str(self.item["document"]["filename"])

    def document_ref(self) -> DocumentRef:
        doc = self.item["document"]
        return DocumentRef(
            url=self.document_path.as_uri(),
            filename=str(doc["filename"]),
            content_type=doc.get("content_type"),
        )


@cache
def _base_set() -> tuple[SampleItem, ...]:
    out: list[SampleItem] = []
    for path in sorted(ITEMS_DIR.glob("*/*.json")):
        (item,) = loads_items(path.read_bytes())
        out.append(SampleItem(tenant=path.parent.name, item=item))
    return tuple(out)


def sample_items(n: int | None = None) -> list[SampleItem]:
    """``n`` items (default: the whole set once), cycling with fresh ids and numbers."""
    base = _base_set()
    count = len(base) if n is None else n
    out: list[SampleItem] = []
    for i in range(count):
        cycle, sample = divmod(i, len(base))
        item = dict(base[sample].item)
        if cycle:
            item["id"] = f"{item['id']}-c{cycle}"
            if item.get("invoice_number"):
                item["invoice_number"] = f"{item['invoice_number']}-c{cycle}"
        out.append(SampleItem(tenant=base[sample].tenant, item=item))
    return out


EINVOICES_DIR = SAMPLES_DIR / "einvoices"
EINVOICE_TENANT = "eu-gmbh"


def einvoice_files() -> list[Path]:
    """The demo's e-invoice samples (UBL, CII, a Factur-X PDF), in name order."""
    return sorted(p for p in EINVOICES_DIR.iterdir() if p.suffix.lower() in (".xml", ".pdf"))


def einvoice_tenant_toml() -> str:
    return (EINVOICES_DIR / "tenant.toml").read_text(encoding="utf-8")
