"""The duplicate check before a bill is created: has billstream seen this invoice before,
under another spelling of its number or supplier, as the same file, or re-issued with a new
number? Pure; the pipeline keeps one ``DuplicateIndex`` per tenant and asks it per item.
"""

from domain.duplicates.index import (
    BUCKET_CAP,
    Candidate,
    Decision,
    DuplicateIndex,
    Verdict,
)
from domain.duplicates.keys import (
    amount_text,
    invoice_number_key,
    supplier_name_key,
    tax_number_key,
)
from domain.duplicates.rules import ALL_RULES, DuplicateRules, Rule

__all__ = [
    "ALL_RULES",
    "BUCKET_CAP",
    "Candidate",
    "Decision",
    "DuplicateIndex",
    "DuplicateRules",
    "Rule",
    "Verdict",
    "amount_text",
    "invoice_number_key",
    "supplier_name_key",
    "tax_number_key",
]
