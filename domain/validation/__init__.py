"""Turn a Dext item into a clean invoice and a coded draft bill, or name every problem at once.

The validate stage calls ``validate_item`` and nothing else; the CLI ``billstream validate``
calls it too, so the pipeline and the command can never disagree.

The steps, each adding problems rather than stopping, one module each:

1. read every field leniently (amounts and dates by the tenant's locale, unknown fields kept)
   (``reading``: one field; ``fields``: the item's header; ``lines``: its lines);
2. work out the document's direction: a credit note (by type or by a negative total) is
   turned positive and marked, so ledgers post it as a credit note (``arithmetic.orient``);
3. check the arithmetic on the amounts as written (line net + tax = total, quantity x price,
   tax at the stated rate, lines against the header) within the tenant's tolerance
   (``arithmetic``), and the dates by the tenant's policy (``dates``);
4. check the tenant's configuration: currency enabled, every category and rate mapped
   (``coding``);
5. only when nothing is wrong: round to the currency's minor unit, put any rounding
   difference on the largest line so the bill adds up to the penny, and code each line
   (``building``).

``validate`` runs them in order. Only the names below are the package's interface.
"""

from domain.validation.dates import MAX_TERMS_DAYS
from domain.validation.fields import KNOWN_FIELDS
from domain.validation.validate import ValidationResult, validate_item

__all__ = ["KNOWN_FIELDS", "MAX_TERMS_DAYS", "ValidationResult", "validate_item"]
