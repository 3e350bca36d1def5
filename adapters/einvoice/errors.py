"""Why a file cannot be read as an e-invoice: one exception, a stable code per cause.

Codes are a contract like validation's (``domain.problems``): never renamed, only added. They
name the file's fault, so a report can say what to ask the supplier for.
"""

from __future__ import annotations

from typing import Final

TOO_LARGE: Final = "einvoice_too_large"  # over the size cap, refused before parsing
TOO_DEEP: Final = "einvoice_too_deep"  # elements nested past the depth cap
FORBIDDEN_XML: Final = "einvoice_forbidden_xml"  # a DTD, an entity, an external reference
NOT_XML: Final = "einvoice_not_xml"  # not well-formed XML (garbage, truncated, wrong encoding)
UNKNOWN_FORMAT: Final = "einvoice_unknown_format"  # XML, but not UBL 2.1 or CII (namespace)
MISSING_FIELD: Final = "einvoice_missing_field"  # a field EN 16931 requires is absent
INVALID_VALUE: Final = "einvoice_invalid_value"  # an amount, date or code that is not one
BROKEN_PDF: Final = "einvoice_broken_pdf"  # a PDF that cannot be read
NO_EMBEDDED_XML: Final = "einvoice_no_embedded_xml"  # a PDF without an invoice XML inside

ALL_CODES: Final = frozenset(
    {
        TOO_LARGE,
        TOO_DEEP,
        FORBIDDEN_XML,
        NOT_XML,
        UNKNOWN_FORMAT,
        MISSING_FIELD,
        INVALID_VALUE,
        BROKEN_PDF,
        NO_EMBEDDED_XML,
    }
)


class EInvoiceError(ValueError):
    """The file is not an e-invoice billstream can read; ``code`` says why, stably."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
