"""The invoice XML embedded in a Factur-X / ZUGFeRD / XRechnung PDF (PDF/A-3 attachment).

pypdf (pure Python, maintained) lists the PDF's embedded files. The ``factur-x`` package
does the same over pypdf, but it parses the XML with lxml's default parser and swallows every
error into a log line, so a PDF with a broken XML would read as one with none; reading the
attachments here lets the hardened parser (``adapters.einvoice.xml``) see the bytes first and
the report say which of the two it is.
"""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError

from adapters.einvoice import errors as E

# What each generation calls the invoice: Factur-X and ZUGFeRD 2.1+, ZUGFeRD 2.0, ZUGFeRD
# 1.0, XRechnung in ZUGFeRD. Compared without case; any other .xml is a last resort.
KNOWN_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml")
MAX_PDF_BYTES = 20 * 1024 * 1024
_MAX_ATTACHMENTS = 100

# pypdf warns through logging about every oddity of a real-world PDF; not ours to report.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def embedded_xml(data: bytes) -> tuple[str, bytes]:
    """The name and bytes of the invoice XML inside the PDF ``data``, best candidate first;
    ``EInvoiceError`` when the PDF cannot be read or holds no XML."""
    candidates = attachments(data)
    xml = [(name, content) for name, content in candidates if name.lower().endswith(".xml")]
    if not xml:
        names = ", ".join(name for name, _ in candidates) or "no files"
        raise E.EInvoiceError(
            E.NO_EMBEDDED_XML,
            f"the PDF embeds no invoice XML ({names}); it is a plain PDF, not Factur-X or ZUGFeRD",
        )
    # In the order of KNOWN_NAMES: a PDF carrying ZUGFeRD 1 and 2 is read by its newer XML.
    known = sorted(
        (pair for pair in xml if pair[0].lower() in KNOWN_NAMES),
        key=lambda pair: KNOWN_NAMES.index(pair[0].lower()),
    )
    return (known or xml)[0]


def attachments(data: bytes) -> list[tuple[str, bytes]]:
    """Every embedded file of the PDF as (name, bytes)."""
    if len(data) > MAX_PDF_BYTES:
        raise E.EInvoiceError(
            E.TOO_LARGE, f"the PDF is {len(data)} bytes; at most {MAX_PDF_BYTES} bytes are read"
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        found: list[tuple[str, bytes]] = []
        for attachment in reader.attachment_list:
            found.append((str(attachment.name), bytes(attachment.content)))
            if len(found) >= _MAX_ATTACHMENTS:
                break
        return found
    except FileNotDecryptedError:
        raise E.EInvoiceError(
            E.BROKEN_PDF, "the PDF is encrypted, so its embedded invoice cannot be read"
        ) from None
    except Exception as exc:
        # A hostile or damaged PDF makes pypdf raise almost anything (its own errors, but
        # also KeyError, TypeError, RecursionError...): each is the same fact for the sender.
        raise E.EInvoiceError(
            E.BROKEN_PDF, f"the PDF cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
