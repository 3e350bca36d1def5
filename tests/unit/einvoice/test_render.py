"""The PDF rendering of XML-only invoices: readable, the original XML inside byte for byte,
the same bytes for the same XML, and any text drawn without failing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from adapters.einvoice.facturx import attachments
from adapters.einvoice.reader import parse_einvoice, read_einvoice
from adapters.einvoice.render import latin1, render_pdf, write_rendering

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "einvoices"
XML_SAMPLES = sorted(p.name for p in FIXTURES.glob("*.xml"))


def text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.parametrize("name", XML_SAMPLES)
def test_each_sample_renders_with_its_xml_inside(name: str) -> None:
    original = (FIXTURES / name).read_bytes()
    invoice, _ = parse_einvoice(original)
    pdf = render_pdf(invoice, original, name)
    assert pdf.startswith(b"%PDF-")
    assert attachments(pdf) == [(name, original)]
    shown = text(pdf)
    assert invoice.number is not None and latin1(invoice.number) in shown
    assert invoice.tax_inclusive is not None
    assert f"{invoice.tax_inclusive:,.2f}" in shown
    assert render_pdf(invoice, original, name) == pdf  # named by content: must be stable
    # A rendering is read back as the same invoice (it is a PDF with the XML embedded).
    again = read_einvoice(pdf, "rendering.pdf")
    assert again.item["id"] == read_einvoice(original, name).item["id"]


def test_text_beyond_latin1_is_drawn_not_refused() -> None:
    original = (FIXTURES / "01.01a-INVOICE_ubl.xml").read_bytes()
    odd = original.replace(b"[Seller name]", "株式会社 \u2013 Ærø € \U0001f600".encode())
    invoice, _ = parse_einvoice(odd)
    assert invoice.seller_name is not None and "株" in invoice.seller_name
    shown = text(render_pdf(invoice, odd, "odd.xml"))
    assert "Ærø EUR" in shown


def test_a_rendering_is_written_once(tmp_path: Path) -> None:
    original = (FIXTURES / "CII_example4.xml").read_bytes()
    invoice, _ = parse_einvoice(original)
    first = write_rendering(invoice, original, "CII_example4.xml", tmp_path / "r")
    stamp = first.stat().st_mtime_ns
    assert first.name.startswith("CII_example4-") and first.suffix == ".pdf"
    assert write_rendering(invoice, original, "CII_example4.xml", tmp_path / "r") == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "r").iterdir()] == [first.name]  # no .part left
