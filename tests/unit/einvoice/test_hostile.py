"""Hostile and broken e-invoices: each ends as an ``EInvoiceError`` with its code, quickly,
never a crash, a hang, a network fetch or an entity expanded."""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter

from adapters.einvoice import errors as E
from adapters.einvoice.facturx import MAX_PDF_BYTES
from adapters.einvoice.reader import read_einvoice
from adapters.einvoice.xml import MAX_DEPTH, MAX_XML_BYTES
from domain.tenants import parse_tenants
from domain.validation import validate_item

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "einvoices"
UBL = (FIXTURES / "01.01a-INVOICE_ubl.xml").read_bytes()
CII = (FIXTURES / "CII_example4.xml").read_bytes()


def code_of(data: bytes) -> str:
    with pytest.raises(E.EInvoiceError) as caught:
        read_einvoice(data, "hostile.xml")
    assert caught.value.code in E.ALL_CODES
    assert caught.value.message
    return caught.value.code


def pdf_with(attachments: dict[str, bytes]) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    for name, data in attachments.items():
        writer.add_attachment(name, data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol9;</Invoice>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>&xxe;</ID></Invoice>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:9/invoice.dtd">
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>"""


@pytest.mark.parametrize(
    "data", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY, b"<!DOCTYPE a><a/>"]
)
def test_dtds_and_entities_are_refused(data: bytes) -> None:
    assert code_of(data) == E.FORBIDDEN_XML


def test_a_huge_file_is_refused_before_it_is_parsed() -> None:
    data = b"<a>" + b" " * (50 * 1024 * 1024) + b"</a>"
    started = time.monotonic()
    assert code_of(data) == E.TOO_LARGE
    assert time.monotonic() - started < 1.0
    assert len(data) > MAX_XML_BYTES


def test_deep_nesting_is_refused_while_parsing() -> None:
    depth = 200_000
    data = b"<a>" * depth + b"</a>" * depth
    started = time.monotonic()
    assert code_of(data) == E.TOO_DEEP
    assert time.monotonic() - started < 5.0
    assert code_of(b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1)) == E.TOO_DEEP


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"\x00\x01\x02garbage",
        b"<Invoice",
        UBL[: len(UBL) // 2],  # truncated in transfer
        b'<?xml version="1.0" encoding="no-such-encoding"?><a/>',
        "<a>\u00e9</a>".encode("latin-1"),  # declared (by default) UTF-8, written Latin-1
        b"\xff\xfe<\x00a\x00",
    ],
)
def test_garbage_is_not_xml(data: bytes) -> None:
    assert code_of(data) == E.NOT_XML


@pytest.mark.parametrize(
    "data",
    [
        # UBL's element names in a namespace that is not UBL 2.1's.
        UBL.replace(b"xsd:Invoice-2", b"xsd:Invoice-3"),
        b"<Invoice><ID>1</ID></Invoice>",
        b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>',
        CII.replace(b"CrossIndustryInvoice:100", b"CrossIndustryInvoice:99"),
    ],
)
def test_a_wrong_namespace_is_an_unknown_format(data: bytes) -> None:
    assert code_of(data) == E.UNKNOWN_FORMAT


def test_an_undeclared_prefix_is_not_xml() -> None:
    data = UBL.replace(b'xmlns:ubl="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"', b"")
    assert code_of(data) == E.NOT_XML


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b">336.9<", b">336,90<"),  # a decimal comma: not xs:decimal
        (b">336.9<", b">3.369E2<"),
        (b">336.9<", b">NaN<"),
        (b">336.9<", b">" + b"9" * 40 + b"<"),
        (b">2016-04-04<", b">04.04.2016<"),
        (b">2016-04-04<", b">2016-02-30<"),
    ],
)
def test_a_value_that_is_not_one_is_invalid(old: bytes, new: bytes) -> None:
    assert old in UBL
    assert code_of(UBL.replace(old, new, 1)) == E.INVALID_VALUE


def test_a_line_without_its_net_is_missing_a_field() -> None:
    data = UBL.replace(
        b'<cbc:LineExtensionAmount currencyID="EUR">288.79</cbc:LineExtensionAmount>', b""
    )
    assert code_of(data) == E.MISSING_FIELD


def test_an_invoice_without_its_total_is_missing_a_field() -> None:
    data = UBL.replace(
        b'<cbc:TaxInclusiveAmount currencyID="EUR">336.9</cbc:TaxInclusiveAmount>', b""
    )
    assert code_of(data) == E.MISSING_FIELD


def test_an_unknown_currency_reads_and_validation_names_it() -> None:
    item = read_einvoice(UBL.replace(b">EUR<", b">EUX<"), "x.xml").item
    tenant = parse_tenants(
        '[tenants.t]\nbase_currency = "EUR"\n[tenants.t.ledger]\ncompany = "t"\n'
    ).get("t")
    result = validate_item(item, tenant, today=dt.date(2016, 4, 10))
    assert "invalid_currency" in {p.code for p in result.problems}


def test_a_pdf_without_embedded_xml() -> None:
    assert code_of(pdf_with({})) == E.NO_EMBEDDED_XML
    assert code_of(pdf_with({"notes.txt": b"hello"})) == E.NO_EMBEDDED_XML


def test_a_pdf_with_broken_or_hostile_xml_inside() -> None:
    assert code_of(pdf_with({"factur-x.xml": CII[: len(CII) // 3]})) == E.NOT_XML
    assert code_of(pdf_with({"factur-x.xml": BILLION_LAUGHS})) == E.FORBIDDEN_XML
    assert code_of(pdf_with({"factur-x.xml": b"<Order/>"})) == E.UNKNOWN_FORMAT


def test_a_pdf_that_cannot_be_read() -> None:
    assert code_of(b"%PDF-1.7\n1 0 obj << /Type /Catalog") == E.BROKEN_PDF
    assert code_of(pdf_with({"factur-x.xml": CII})[:-200]) in (E.BROKEN_PDF, E.NO_EMBEDDED_XML)
    assert code_of(b"%PDF-1.7\n" + b" " * (MAX_PDF_BYTES + 1)) == E.TOO_LARGE


def test_the_xml_named_for_facturx_wins_over_other_attachments() -> None:
    data = pdf_with({"a-notes.xml": b"<notes/>", "factur-x.xml": CII})
    result = read_einvoice(data, "invoice.pdf")
    assert result.embedded_name == "factur-x.xml"
    assert result.item["invoice_number"] == "TOSL110"
    assert result.item["source_format"] == "facturx-pdf"


def test_an_xrechnung_ubl_embedded_in_a_pdf_reads_too() -> None:
    result = read_einvoice(pdf_with({"xrechnung.xml": UBL}), "x.pdf")
    assert result.item["invoice_number"] == "123456XX"
    assert result.item["document"]["content_type"] == "application/pdf"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        read_einvoice(data, "fuzz.xml")
    except E.EInvoiceError as exc:
        assert exc.code in E.ALL_CODES


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=len(UBL)), st.binary(min_size=1, max_size=8))
def test_a_corrupted_sample_never_crashes(at: int, junk: bytes) -> None:
    for data in (UBL[:at], UBL[:at] + junk + UBL[at:], CII[:at] + junk + CII[at:]):
        try:
            read_einvoice(data, "fuzz.xml")
        except E.EInvoiceError as exc:
            assert exc.code in E.ALL_CODES


def test_zugferd_1_is_named_and_a_pdf_with_both_is_read_by_its_newer_xml() -> None:
    v1 = b'<rsm:CrossIndustryDocument xmlns:rsm="urn:ferd:CrossIndustryDocument:invoice:1p0"/>'
    with pytest.raises(E.EInvoiceError) as caught:
        read_einvoice(pdf_with({"ZUGFeRD-invoice.xml": v1}), "old.pdf")
    assert caught.value.code == E.UNKNOWN_FORMAT and "ZUGFeRD 1.0" in caught.value.message
    both = pdf_with({"ZUGFeRD-invoice.xml": v1, "factur-x.xml": CII})
    assert read_einvoice(both, "both.pdf").embedded_name == "factur-x.xml"
