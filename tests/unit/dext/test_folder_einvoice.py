"""E-invoices dropped in the export folder: one item each, the file its document, the item
through the wire and validation; plain PDFs stay documents; bad files reported by code."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.dext.folder import ExportFolder, FolderState
from adapters.documents import DocumentFetcher
from adapters.einvoice import errors as E
from adapters.einvoice.arithmetic import TAX_INCLUSIVE
from adapters.einvoice.reader import read_einvoice
from domain.events import Envelope, Received
from domain.validation import validate_item
from tests.support import RecordingSink, make_tenants

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "einvoices"
PLAIN_PDF = b"%PDF-1.4\n%%EOF\n"


def drop(root: Path, name: str, data: bytes | None = None) -> Path:
    """Put a file in the folder, finished a minute ago (past the settle time)."""
    path = root / name
    path.write_bytes((FIXTURES / name).read_bytes() if data is None else data)
    then = time.time() - 60
    os.utime(path, (then, then))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def source(
    root: Path, sink: RecordingSink, tmp_path: Path, tenant: str | None = "acme-uk"
) -> ExportFolder:
    return ExportFolder(
        root,
        tenants=make_tenants(docs_dirs=[str(root)]),
        sink=sink,
        state=FolderState(tmp_path / "state.sqlite"),
        tenant=tenant,
        settle=2.0,
    )


async def test_ubl_and_facturx_become_items_that_validate(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path)
    ubl = drop(root, "01.01a-INVOICE_ubl.xml")
    pdf = drop(root, "EN16931_Einfach.pdf")
    drop(root, "receipt.pdf", PLAIN_PDF)  # a document for some CSV row, not an item
    reports = await folder.scan_once()
    assert sorted((r.file, r.outcome, r.published, r.problems) for r in reports) == [
        ("01.01a-INVOICE_ubl.xml", "processed", 1, []),
        ("EN16931_Einfach.pdf", "processed", 1, []),
    ]
    docs = {e.data.document.filename: e.data.document for e in sink.events}  # type: ignore[union-attr]
    # The Factur-X PDF is its own document; the XML's is its rendering, the XML inside.
    assert docs["EN16931_Einfach.pdf"].url == pdf.as_uri()
    assert docs["EN16931_Einfach.pdf"].content_type == "application/pdf"
    rendering = docs["01.01a-INVOICE_ubl.pdf"]
    assert rendering.content_type == "application/pdf"
    assert rendering.url.startswith((root / ".billstream" / "rendered").as_uri())
    tenant = make_tenants(docs_dirs=[str(root)]).get("acme-uk")
    fetched = await DocumentFetcher(allowed_dirs=[root]).fetch(rendering, tenant)
    assert fetched.content_type == "application/pdf"  # what the attach stage takes
    inside = read_einvoice(fetched.content, "rendering.pdf")
    assert inside.embedded_name == ubl.name
    assert inside.item["invoice_number"] == "123456XX"
    # The rendering is billstream's own: never scanned as an item or a document.
    assert [r.file for r in await folder.scan_once() if r.outcome != "duplicate"] == []

    coded = tenant.model_copy(
        update={
            "currencies": ["GBP", "EUR"],
            "max_invoice_age_days": 5000,
            "gl_accounts": {"Office Supplies": "7500"},
            "tax_codes": {"7": "R7", "19": "S19"},
        }
    )
    for event in sink.events:
        # As the validate stage gets it: off the wire, not the dict the source built.
        received = Envelope.from_bytes(event.to_bytes()).data
        assert isinstance(received, Received)
        item = {**received.item, "category": "Office Supplies"}  # a supplier rule's job
        issued = dt.date.fromisoformat(item["date"])
        result = validate_item(item, coded, today=issued + dt.timedelta(days=5))
        assert result.ok, result.problems
    totals = sorted(Decimal(e.data.item["total_amount"]) for e in sink.events)  # type: ignore[union-attr]
    assert totals == [Decimal("336.9"), Decimal("529.87")]


async def test_files_are_read_once_and_plain_pdfs_are_not_reported(
    root: Path, tmp_path: Path
) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path)
    drop(root, "CII_example4.xml")
    drop(root, "receipt.pdf", PLAIN_PDF)
    (first,) = await folder.scan_once()
    assert (first.outcome, first.published) == ("processed", 1)
    (again,) = await folder.scan_once()
    assert again.outcome == "duplicate"
    # The same invoice under another name is the same content: not a second item.
    shutil.copy(root / "CII_example4.xml", root / "copy.xml")
    os.utime(root / "copy.xml", (time.time() - 60, time.time() - 60))
    reports = {r.file: r for r in await folder.scan_once()}
    assert reports["copy.xml"].outcome == "duplicate"
    assert len(sink.events) == 1


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("garbage.xml", b"\x00\x01 not xml at all", E.NOT_XML),
        (
            "bomb.xml",
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><Invoice>&b;</Invoice>',
            E.FORBIDDEN_XML,
        ),
        ("order.xml", b'<Order xmlns="urn:example:order"/>', E.UNKNOWN_FORMAT),
    ],
)
async def test_a_bad_file_is_reported_with_its_code(
    root: Path, tmp_path: Path, name: str, data: bytes, code: str
) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path)
    drop(root, name, data)
    (report,) = await folder.scan_once()
    assert report.outcome == "processed" and report.published == 0
    (problem,) = report.problems
    assert (problem.file, problem.code) == (name, code)
    assert problem.to_json()["code"] == code
    assert sink.events == []


async def test_totals_that_do_not_add_up_are_reported_not_published(
    root: Path, tmp_path: Path
) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path)
    text = (FIXTURES / "01.01a-INVOICE_ubl.xml").read_text(encoding="utf-8")
    wrong = text.replace(
        '<cbc:TaxInclusiveAmount currencyID="EUR">336.9<',
        '<cbc:TaxInclusiveAmount currencyID="EUR">363.9<',
    )
    assert wrong != text
    drop(root, "wrong.xml", wrong.encode())
    (report,) = await folder.scan_once()
    assert report.published == 0
    assert TAX_INCLUSIVE in {p.code for p in report.problems}
    assert sink.events == []


async def test_a_pdf_being_written_waits_without_a_report(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path)
    pdf = root / "EN16931_Einfach.pdf"
    pdf.write_bytes((FIXTURES / pdf.name).read_bytes())  # written just now
    assert await folder.scan_once() == []  # a PDF is reported once it proves an invoice
    drop(root, pdf.name)
    (report,) = await folder.scan_once()
    assert (report.outcome, report.published) == ("processed", 1)


async def test_a_plain_pdf_is_opened_once_while_unchanged(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapters.dext.files as folder_module

    opened: list[int] = []
    real = folder_module.read_einvoice

    def counting(data: bytes, filename: str) -> object:
        opened.append(len(data))
        return real(data, filename)

    monkeypatch.setattr(folder_module, "read_einvoice", counting)
    folder = source(root, RecordingSink(), tmp_path)
    drop(root, "receipt.pdf", PLAIN_PDF)
    for _ in range(3):
        assert await folder.scan_once() == []
    assert len(opened) == 1
    drop(root, "receipt.pdf", PLAIN_PDF + b"% changed\n")
    assert await folder.scan_once() == []
    assert len(opened) == 2


async def test_without_a_tenant_a_pdf_outside_the_tenant_folders_is_left_alone(
    root: Path, tmp_path: Path
) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path, tenant=None)
    drop(root, "stray.pdf", PLAIN_PDF)
    (root / "acme-trading").mkdir()
    shutil.copy(FIXTURES / "EN16931_Einfach.pdf", root / "acme-trading" / "in.pdf")
    os.utime(root / "acme-trading" / "in.pdf", (time.time() - 60, time.time() - 60))
    (report,) = await folder.scan_once()
    assert (report.file, report.outcome, report.published) == (
        "acme-trading/in.pdf",
        "processed",
        1,
    )
    assert sink.keys[0].startswith("acme-uk:einv-")
