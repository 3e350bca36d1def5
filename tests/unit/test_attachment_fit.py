"""Documents made to fit a ledger's attachment limits, or refused with the sizes: images
re-encoded and downscaled, multi-page scans as one PDF, PDFs recompressed; what cannot fit
or be converted is attachment_too_large / attachment_type, never dropped."""

from __future__ import annotations

import io
import os
import random

import pikepdf
import pytest
from PIL import Image
from pypdf import PdfReader

from adapters.attachment_fit import fit_document
from adapters.intacct.attachments import LIMITS as INTACCT
from adapters.sage_accounting.attachments import LIMITS as SAGE
from domain.errors import LedgerError, Reason
from domain.models import AttachmentLimits, Document

SMALL = AttachmentLimits("a small ledger", 200_000, frozenset({"application/pdf", "image/jpeg"}))


def photo(side: int, fmt: str = "PNG") -> bytes:
    """A scan-like picture: smooth paper with noise, so it neither vanishes nor explodes."""
    rng = random.Random(side)
    image = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    noise = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    Image.blend(image, noise, 0.35).save(out, fmt)
    return out.getvalue()


def pdf_with_image(side: int) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(photo(side))).save(out, "PDF", resolution=300)
    return out.getvalue()


def test_what_fits_goes_as_it_is() -> None:
    doc = Document.of("scan.pdf", "application/pdf", pdf_with_image(200))
    fitted = fit_document(doc, SAGE)
    assert fitted.document is doc and fitted.reencoded_from is None


def test_a_large_png_is_re_encoded_until_it_fits_sage() -> None:
    data = photo(2400)
    assert len(data) > SAGE.max_bytes
    fitted = fit_document(Document.of("receipt.png", "image/png", data), SAGE)
    made, original = fitted.document, fitted.reencoded_from
    assert original is not None
    assert len(made.content) <= SAGE.max_bytes and made.content_type == "image/jpeg"
    assert made.filename == "receipt.jpg"
    assert (original.size, original.content_type) == (len(data), "image/png")
    assert original.sha256 != made.sha256 and "JPEG quality" in original.how
    assert Image.open(io.BytesIO(made.content)).format == "JPEG"


def test_downscaling_when_quality_alone_is_not_enough() -> None:
    fitted = fit_document(Document.of("big.png", "image/png", photo(1800)), SMALL)
    assert fitted.reencoded_from is not None
    width, height = Image.open(io.BytesIO(fitted.document.content)).size
    assert max(width, height) < 1800 and len(fitted.document.content) <= SMALL.max_bytes
    assert f"{width} x {height} px" in fitted.reencoded_from.how


def test_a_multi_page_tiff_becomes_one_pdf_with_every_page() -> None:
    pages = [Image.open(io.BytesIO(photo(300))) for _ in range(3)]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:])
    fitted = fit_document(Document.of("scan.tif", "image/tiff", out.getvalue()), SAGE)
    assert fitted.document.content_type == "application/pdf"
    assert len(PdfReader(io.BytesIO(fitted.document.content)).pages) == 3
    assert fitted.reencoded_from is not None and "3 pages" in fitted.reencoded_from.how


def test_a_small_gif_is_converted_because_sage_refuses_gif() -> None:
    out = io.BytesIO()
    Image.new("RGB", (50, 50), "white").save(out, "GIF")
    fitted = fit_document(Document.of("logo.gif", "image/gif", out.getvalue()), SAGE)
    assert fitted.document.content_type == "image/jpeg"
    assert fitted.reencoded_from is not None
    # Intacct takes any type: the same file goes as it is.
    assert (
        fit_document(Document.of("logo.gif", "image/gif", out.getvalue()), INTACCT).reencoded_from
        is None
    )


def test_a_type_that_cannot_be_converted_is_attachment_type() -> None:
    doc = Document.of("invoice.docx", "application/vnd.openxmlformats", b"PK\x03\x04" + b"x" * 99)
    with pytest.raises(LedgerError) as caught:
        fit_document(doc, SAGE)
    assert caught.value.reason is Reason.ATTACHMENT_TYPE
    assert "application/vnd.openxmlformats" in caught.value.message
    assert "image/jpeg" in caught.value.message


def test_an_unreadable_image_is_attachment_type() -> None:
    doc = Document.of("x.png", "image/png", b"\x89PNG\r\n\x1a\n" + os.urandom(3_000_000))
    with pytest.raises(LedgerError) as caught:
        fit_document(doc, SAGE)
    assert caught.value.reason is Reason.ATTACHMENT_TYPE


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")  # tiny file, 400 megapixels
    doc = Document.of("bomb.png", "image/png", out.getvalue() + b"\0" * SMALL.max_bytes)
    with pytest.raises(LedgerError) as caught:
        fit_document(doc, SMALL)
    assert caught.value.reason is Reason.ATTACHMENT_TYPE and "pixels" in caught.value.message


def test_a_pdf_with_a_heavy_scan_is_compressed_to_fit() -> None:
    data = pdf_with_image(1600)
    assert len(data) > SMALL.max_bytes
    fitted = fit_document(Document.of("scan.pdf", "application/pdf", data), SMALL)
    assert len(fitted.document.content) <= SMALL.max_bytes
    assert fitted.document.filename == "scan.pdf"
    with pikepdf.open(io.BytesIO(fitted.document.content)) as pdf:
        assert len(pdf.pages) == 1
    assert fitted.reencoded_from is not None and "images at" in fitted.reencoded_from.how


def test_a_pdf_that_cannot_shrink_is_too_large_with_the_sizes() -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    # incompressible content that is not an image: nothing to re-encode
    pdf.attachments["data.bin"] = pikepdf.AttachedFileSpec(pdf, os.urandom(300_000))
    out = io.BytesIO()
    pdf.save(out)
    doc = Document.of("annex.pdf", "application/pdf", out.getvalue())
    with pytest.raises(LedgerError) as caught:
        fit_document(doc, SMALL)
    err = caught.value
    assert err.reason is Reason.ATTACHMENT_TOO_LARGE
    assert f"{len(doc.content):,} bytes" in err.message and "200,000" in err.message
    assert err.detail["limit"] == SMALL.max_bytes and err.detail["size"] == len(doc.content)


def test_an_encrypted_pdf_over_the_limit_is_too_large() -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.attachments["data.bin"] = pikepdf.AttachedFileSpec(pdf, os.urandom(300_000))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(owner="o", user="u"))
    with pytest.raises(LedgerError) as caught:
        fit_document(Document.of("locked.pdf", "application/pdf", out.getvalue()), SMALL)
    assert caught.value.reason is Reason.ATTACHMENT_TOO_LARGE
    assert "cannot be opened" in caught.value.message
