"""The keys duplicates are compared by: invoice numbers, tax numbers and supplier identities,
each normalised so that the spellings one invoice gets on its way through OCR compare equal.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from domain.normalize import vendor_match_key

# Words an invoice number is written after, never part of it: "INV-0042", "Invoice No. 42",
# "Rechnung Nr. 42", "Facture n° 42". Only at the start, only as whole letter runs, so
# "NOV-42" and "INVEST-1" keep their letters.
_NUMBER_PREFIXES = frozenset(
    {
        "inv",
        "invoice",
        "invoices",
        "taxinvoice",
        "no",
        "nr",
        "nro",
        "num",
        "number",
        "ref",
        "rechnung",
        "rechnungsnr",
        "rechnungsnummer",
        "rg",
        "rgnr",
        "facture",
        "fact",
        "factura",
        "fattura",
        "faktura",
        "tax",
        "bill",
    }
)
# "n°", "nº" and "n." are "number" in most European languages; "nº" becomes "no" under NFKC
# but "°" is a degree sign, punctuation, and would leave a lone "n" behind.
_NUMERO = re.compile(r"(?<![^\W\d_])n\s*[°º]")
_LEADING_LETTERS = re.compile(r"^[^\W\d_]+")
# Zero padding where a number starts: at the very start or straight after letters
# ("SO-00042" is "SO-42"), never inside digits ("2024-0042" keeps its zeros after 2024).
_PADDING = re.compile(r"(?:^|(?<=[^\W\d_]))0+(?=\d)")
_LONGEST_PREFIX = max(map(len, _NUMBER_PREFIXES))


def _fold(text: str) -> str:
    # Casefolding can produce text NFKC changes again ("ﬁ"), so NFKC runs on both sides.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def _prefix_length(letters: str) -> int:
    """How many of ``letters`` are prefix words run together, the longest such start:
    "invno" ("Inv. No.") is 5, "nof" ("No. F052") 2, "acme" 0."""
    ends = {0}
    for end in range(1, min(len(letters), 4 * _LONGEST_PREFIX) + 1):
        if any(
            start in ends and letters[start:end] in _NUMBER_PREFIXES
            for start in range(max(0, end - _LONGEST_PREFIX), end)
        ):
            ends.add(end)
    return max(ends)


def invoice_number_key(number: str) -> str:
    """Case-, space-, punctuation-, prefix- and zero-padding-insensitive invoice number.

    "INV-0042", "inv 42", "#42" and "No. 0042" are all "42"; "42A" stays "42a" and "INV-420"
    stays "420"; "Invoice No. SI-7" is "si7". Separators are dropped before prefixes are
    looked for, so "Inv.No.42" and "INV NO 42" agree (and "NOV-42" is "v42": a number is
    only ever compared with the same supplier's, where that costs nothing). A number that is
    nothing but prefixes keeps its letters ("INV" is "inv") and zeros keep one ("000" is
    "0"): no real number has an empty key. The key is empty only when the text holds no
    letter or digit at all, and an empty key matches nothing.
    """
    text = _alnum(_fold(_NUMERO.sub(" no ", unicodedata.normalize("NFKC", number).casefold())))
    # Separators are gone, so a prefix and a series run together ("No. F052" is "nof052"):
    # the longest start made of prefix words goes, whatever letters follow it.
    found = _LEADING_LETTERS.match(text)
    rest = text[_prefix_length(found.group()) :] if found else text
    return _PADDING.sub("", rest) or _PADDING.sub("", text)


# Labels printed before a tax number, read into the field by OCR: "VAT Reg No GB 123...".
_TAX_LABELS = re.compile(
    r"^(?:VATREGNO|VATREG|VATNO|VAT|USTIDNR|USTID|UST|TVA|IVA|BTW|MWST|MOMS|ABN|GST|TIN|NIF)"
)
# Country prefixes of VAT numbers (EU, GB, XI for Northern Ireland, CH, NO). "GB123456789"
# and "123456789" are one number: Dext reads the prefix on some invoices and not others.
_VAT_COUNTRIES = frozenset(
    {
        *("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "GR", "HR"),
        *("HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"),
        *("GB", "XI", "CH", "NO"),
    }
)
_MIN_TAX_KEY = 5  # shorter than any real tax number: an OCR fragment, not an identity


def tax_number_key(tax_number: str | None) -> str | None:
    """A tax number as an identity: capitals, no spaces or punctuation, no label, no VAT
    country prefix; None when there is none or too little of one to identify anyone.

    Dropping the country prefix means GB123456789 and DE123456789 share a key; a match
    also needs the same invoice number, document or total, so that collision is harmless.
    """
    if not tax_number:
        return None
    text = _alnum(unicodedata.normalize("NFKC", tax_number)).upper()
    text = _TAX_LABELS.sub("", text)
    if len(text) > 2 and text[:2] in _VAT_COUNTRIES and not text[:2].isdigit():
        text = text[2:]
    return text if len(text) >= _MIN_TAX_KEY else None


# Characters OCR reads for letters in a name: "Br0wn", "Acrne", "1td". Folded on both
# sides, so only names that differ by such a misreading meet; a digit in a real name
# ("Studio 54") is folded the same way every time.
_CONFUSABLE = str.maketrans({"0": "o", "1": "l", "|": "l", "5": "s"})


def supplier_name_key(name: str) -> str | None:
    """The supplier's name as an identity: ``vendor_match_key`` of the name with OCR's
    look-alike characters folded; None when it has no letters or digits, which would
    otherwise make every nameless supplier one."""
    folded = unicodedata.normalize("NFKC", name).casefold().replace("rn", "m")
    key = vendor_match_key(folded.translate(_CONFUSABLE))
    return key if _alnum(key) else None


def amount_text(total: Decimal) -> str:
    """The canonical text of an amount: 180, 180.0 and 180.00 are all "180"."""
    text = format(total.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")
