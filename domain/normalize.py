"""Supplier names normalised for matching: "ACME Ltd." and "Acme Limited" are one vendor."""

from __future__ import annotations

import re
import unicodedata

# Legal-form suffixes, compared after punctuation is gone; longest first so "pty ltd" wins.
_LEGAL_SUFFIXES = sorted(
    {
        "ltd",
        "limited",
        "plc",
        "llp",
        "lp",
        "llc",
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "kg",
        "ug",
        "mbh",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "aps",
        "pty ltd",
        "pty",
        "pte ltd",
        "pte",
        "sl",
        "kft",
        "sro",
        "sp z oo",
        "ltda",
        "cic",
        "lda",
        "pvt ltd",
        "pvt",
        "private limited",
        "public limited company",
        "limited liability company",
        "limited liability partnership",
        "and co",
        "and company",
        "se",
        "ohg",
        "sdn bhd",
        "bhd",
        "kk",
        "sa de cv",
        "sp zoo",
    },
    key=len,
    reverse=True,
)
_SUFFIX_RE = re.compile(r"(?:\s+(?:" + "|".join(re.escape(s) for s in _LEGAL_SUFFIXES) + r"))+$")


def vendor_match_key(name: str) -> str:
    """Case-, accent-, spacing- and punctuation-insensitive key, legal suffixes removed."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("&", " and ")
    # "O'Brien" and "OBrien" are one name; a space would split it into two words.
    text = re.sub(r"['\u2019`]", "", text)
    # "Trainline.com Ltd" is "Trainline Ltd" on the next invoice.
    text = re.sub(r"(?<=\w)\.(?:com|net|org|io|co\.uk|de|fr)\b", "", text)
    text = re.sub(r"[^\w\s]", " ", text)  # punctuation becomes space: "A.C.M.E" -> "a c m e"
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\b(\w) (?=\w\b)", r"\1", text)  # rejoin initials: "a c m e" -> "acme"
    stripped = _SUFFIX_RE.sub("", text).strip()
    stripped = re.sub(r"^the ", "", stripped)
    return stripped or text


def clean_text(text: str) -> str:
    """Whitespace collapsed and trimmed; what a person sees, with its case kept."""
    return " ".join(text.split())


def label_key(label: str) -> str:
    """How category and tax-rate labels compare: "Office  supplies" is "Office Supplies"."""
    return " ".join(unicodedata.normalize("NFKC", label).casefold().split())
