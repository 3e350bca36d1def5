"""Parsing untrusted XML safely, and reading its values exactly.

An e-invoice comes from outside, so the parser is the attack surface: defusedxml (over the
standard library's expat) refuses any DTD, entity declaration or external reference, which
rules out billion laughs, XXE and network fetches in one rule. E-invoices never need a DTD.
Size is capped before a byte is parsed and nesting while parsing, so 50 MB or a million
nested elements end as a clear error, not as memory or time spent.

Values are read as the schemas define them: amounts are xs:decimal (no grouping, no
exponent) and become ``Decimal`` from their text, never a float.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from adapters.einvoice import errors as E

# The attach stage takes documents up to 20 MiB (adapters.documents); an invoice XML with
# embedded attachments is smaller than the PDF it would be, so the same cap is generous.
MAX_XML_BYTES = 20 * 1024 * 1024
# UBL and CII invoices nest about a dozen levels; 64 leaves room for extensions.
MAX_DEPTH = 64
# xs:decimal as invoices write it, within bounds: 15 integer digits is past any amount or
# quantity (validation refuses amounts over 10^13), and 12 decimals past any unit price. The
# bounds keep every product and quotient of two values exact in Decimal's 28 digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,15}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})")
_MAX_DECIMAL_CHARS = 30


def parse_xml(data: bytes) -> Element:
    """The root element of ``data``, or ``EInvoiceError`` saying why it cannot be parsed."""
    if len(data) > MAX_XML_BYTES:
        raise E.EInvoiceError(
            E.TOO_LARGE,
            f"the XML is {len(data)} bytes; at most {MAX_XML_BYTES} bytes are read",
        )
    depth = 0
    root: Element | None = None
    try:
        for event, element in iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
            if event == "start":
                depth += 1
                if depth > MAX_DEPTH:
                    raise E.EInvoiceError(
                        E.TOO_DEEP, f"the XML nests more than {MAX_DEPTH} elements deep"
                    )
                if root is None:
                    root = element
            else:
                depth -= 1
    except E.EInvoiceError:
        raise
    except DefusedXmlException as exc:
        raise E.EInvoiceError(
            E.FORBIDDEN_XML,
            f"the XML declares a DTD or entities ({type(exc).__name__}); e-invoices never "
            "need them, and they are how XML attacks work, so the file is refused",
        ) from None
    except ParseError as exc:
        raise E.EInvoiceError(E.NOT_XML, f"not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        # expat raises these for an unknown or impossible declared encoding.
        raise E.EInvoiceError(E.NOT_XML, f"not readable XML: {exc}") from None
    if root is None:
        raise E.EInvoiceError(E.NOT_XML, "the file holds no XML element")
    return root


def namespace(element: Element) -> str:
    """The namespace URI of ``element`` ("" when it has none)."""
    tag = element.tag
    return tag[1:].partition("}")[0] if isinstance(tag, str) and tag.startswith("{") else ""


def local_name(element: Element) -> str:
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def text_of(element: Element | None) -> str | None:
    """The element's text, spaces collapsed; None when absent or blank."""
    if element is None or element.text is None:
        return None
    text = " ".join(element.text.split())
    return text or None


def decimal_of(text: str | None, what: str) -> Decimal | None:
    """An xs:decimal as ``Decimal``; None when absent; ``EInvoiceError`` when not a decimal."""
    if text is None:
        return None
    value = text.strip()
    if len(value) > _MAX_DECIMAL_CHARS or not _DECIMAL.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise E.EInvoiceError(
            E.INVALID_VALUE,
            f"{what} is {shown!r}, not a decimal number (digits and a decimal point, at most "
            "15 digits before it and 12 after)",
        )
    return Decimal(value)


def date_of(text: str | None, what: str, *, compact: bool = False) -> dt.date | None:
    """An ISO date (UBL) or, with ``compact``, CII's format 102 (``YYYYMMDD``)."""
    if text is None:
        return None
    value = text.strip()
    pattern = r"([0-9]{4})([0-9]{2})([0-9]{2})" if compact else r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    match = re.fullmatch(pattern, value)
    try:
        if match is None:
            raise ValueError
        year, month, day = (int(g) for g in match.groups())
        return dt.date(year, month, day)
    except ValueError:
        form = "YYYYMMDD" if compact else "YYYY-MM-DD"
        raise E.EInvoiceError(
            E.INVALID_VALUE, f"{what} is {value[:40]!r}, not a date written {form}"
        ) from None


def required(value: Decimal | None, what: str) -> Decimal:
    """``value``, or ``EInvoiceError`` naming the missing business term."""
    if value is None:
        raise E.EInvoiceError(E.MISSING_FIELD, f"{what} is missing")
    return value
