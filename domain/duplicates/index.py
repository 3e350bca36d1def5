"""The per-tenant duplicate index: everything billstream has seen for a tenant, in hash
buckets, so a check costs the same at the millionth invoice as at the first.

Buckets (a key of plain text, a short list of plain tuples; ``rows`` and ``from_rows`` move
them in and out of a table):

* ``n|<supplier>|<kind>|<number key>`` -> ``(item key, number as written, tax key)``;
* ``d|<kind>|<sha256>`` -> ``(item key,)``;
* ``a|<supplier>|<kind>|<currency>|<total>`` -> ``(item key, date ordinal, total, tax key)``.

``<kind>`` is ``i`` for invoices and ``c`` for credit notes: a credit note only ever meets
credit notes, so it is never a duplicate of the invoice it credits. ``<supplier>`` is
``t:<tax number key>`` and ``s:<name key>``; an item is filed under each it has, so a
supplier read with its VAT number on one invoice and without it on the next is still one
supplier. Under a name, two items whose tax numbers are both known and differ are two
suppliers that happen to share a name, never a match. A bucket keeps at most ``BUCKET_CAP``
entries (the most recent by date for totals, the latest added otherwise), which is what
bounds a check: a monthly subscription of the same amount fills one bucket, not the index.

Size, measured by tests/unit/test_duplicates.py over 100,000 synthetic items (half with a
tax number): 400,000 buckets, about 320 bytes an item as JSON rows (32 MB per 100,000
items), about 125 MB as Python objects in a dict; a check reads at most 9 buckets.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from domain.duplicates.keys import (
    amount_text,
    invoice_number_key,
    supplier_name_key,
    tax_number_key,
)
from domain.duplicates.rules import DuplicateRules, Rule
from domain.models import Invoice, item_key

BUCKET_CAP = 16

NumberEntry = tuple[str, str, str]  # item key, number as written, tax key ("" when none)
DocumentEntry = tuple[str]  # item key
AmountEntry = tuple[str, int, str, str]  # item key, date ordinal, total, tax key
Entry = NumberEntry | DocumentEntry | AmountEntry


class Decision(StrEnum):
    NEW = "new"  # nothing alike seen before: create the bill
    HOLD = "hold"  # looks like an earlier item: a person decides (parked, possible_duplicate)
    DUPLICATE = "duplicate"  # the same number, as written, from the same supplier


@dataclass(frozen=True)
class Candidate:
    """What the check needs of an invoice; amounts positive, ``credit_note`` says which."""

    tenant: str
    key: str  # the item key, ``tenant:dext_id``
    supplier: str
    supplier_tax_number: str | None
    number: str
    date: dt.date
    currency: str
    total: Decimal
    credit_note: bool = False
    document_sha256: str | None = None

    @classmethod
    def of_invoice(
        cls,
        invoice: Invoice,
        tenant: str,
        *,
        key: str | None = None,
        document_sha256: str | None = None,
    ) -> Candidate:
        return cls(
            tenant=tenant,
            key=key if key is not None else item_key(tenant, invoice.dext_id),
            supplier=invoice.supplier,
            supplier_tax_number=invoice.supplier_tax_number,
            number=invoice.number,
            date=invoice.date,
            currency=invoice.currency,
            total=invoice.total,
            credit_note=invoice.credit_note,
            document_sha256=document_sha256,
        )


@dataclass(frozen=True)
class Verdict:
    """The check's answer: the decision, the strongest rule that matched and the earlier
    items it matched (strongest rule first); ``by_rule`` has every rule that matched."""

    key: str
    decision: Decision
    rule: Rule | None = None
    matches: tuple[str, ...] = ()
    by_rule: tuple[tuple[Rule, tuple[str, ...]], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "decision": self.decision.value,
            "rule": self.rule.value if self.rule else None,
            "matches": list(self.matches),
            "rules": {rule.value: list(keys) for rule, keys in self.by_rule},
        }


def written_number(number: str) -> str:
    """The number as written, for the exact rule: only surrounding and repeated spaces go."""
    return " ".join(unicodedata.normalize("NFC", number).split())


@dataclass(frozen=True)
class _Keys:
    """A candidate's bucket keys, worked out once per check or add."""

    kind: str
    tax: str
    suppliers: tuple[tuple[str, bool], ...]  # (supplier key, is a name)
    number: str
    written: str
    amount: str
    amount_buckets: tuple[str, ...]
    ordinal: int


class DuplicateIndex:
    """One tenant's index. ``check`` and ``add`` each touch a fixed number of buckets of at
    most ``BUCKET_CAP`` entries: O(1) in the number of items seen."""

    def __init__(
        self,
        tenant: str,
        rules: DuplicateRules | None = None,
        store: MutableMapping[str, list[Any]] | None = None,
    ) -> None:
        """``store`` holds the buckets (a dict by default): any mapping of text to lists, such
        as a table whose values come back from JSON as lists rather than tuples."""
        self.tenant = tenant
        self.rules = rules or DuplicateRules()
        self._buckets: MutableMapping[str, list[Any]] = store if store is not None else {}

    # -- reading -----------------------------------------------------------------------------

    def check(self, c: Candidate) -> Verdict:
        """Whether ``c`` looks like an item added before (never like itself: a replayed item
        is not its own duplicate)."""
        k = self._keys(c)
        found: dict[Rule, list[str]] = {}
        for rule, key in (*self._by_number(k), *self._by_document(c, k), *self._by_total(c, k)):
            if key != c.key and self.rules.holds(rule):
                keys = found.setdefault(rule, [])
                if key not in keys:
                    keys.append(key)
        return _verdict(c.key, found)

    def _by_number(self, k: _Keys) -> Iterator[tuple[Rule, str]]:
        if not k.number:
            return
        for supplier, is_name in k.suppliers:
            for key, written, tax in self._get(f"n|{supplier}|{k.kind}|{k.number}"):
                if _same_supplier(is_name, k.tax, tax):
                    yield (Rule.SAME_NUMBER if written == k.written else Rule.NUMBER_VARIANT), key

    def _by_document(self, c: Candidate, k: _Keys) -> Iterator[tuple[Rule, str]]:
        if c.document_sha256:
            for (key,) in self._get(f"d|{k.kind}|{c.document_sha256.lower()}"):
                yield Rule.SAME_DOCUMENT, key

    def _by_total(self, c: Candidate, k: _Keys) -> Iterator[tuple[Rule, str]]:
        window, tolerance = self.rules.window_days, self.rules.amount_tolerance
        for supplier, is_name in k.suppliers:
            for bucket in k.amount_buckets:
                for key, ordinal, total, tax in self._get(f"a|{supplier}|{k.kind}|{bucket}"):
                    if (
                        abs(ordinal - k.ordinal) <= window
                        and abs(Decimal(total) - c.total) <= tolerance
                        and _same_supplier(is_name, k.tax, tax)
                    ):
                        yield Rule.SAME_TOTAL_NEAR_DATE, key

    def _get(self, bucket: str) -> list[Any]:
        return self._buckets.get(bucket, [])

    # -- writing -----------------------------------------------------------------------------

    def add(self, c: Candidate) -> None:
        """File ``c`` under each of its buckets. Adding the same item again replaces its entry
        in each bucket it is filed under again. An item re-read with another number or total
        stays under the old ones as well (entries are never removed, only crowded out), so
        a later item can still meet it there: at worst a hold that a person releases."""
        k = self._keys(c)
        for supplier, is_name in k.suppliers:
            tax = k.tax if is_name else ""
            if k.number:
                self._put(f"n|{supplier}|{k.kind}|{k.number}", (c.key, k.written, tax))
            if k.amount:
                entry = (c.key, k.ordinal, amount_text(c.total), tax)
                self._put(f"a|{supplier}|{k.kind}|{k.amount}", entry, by_date=True)
        if c.document_sha256:
            self._put(f"d|{k.kind}|{c.document_sha256.lower()}", (c.key,))

    def check_and_add(self, c: Candidate) -> Verdict:
        """Check, then add whatever the decision: a held item is still one seen."""
        verdict = self.check(c)
        self.add(c)
        return verdict

    def _put(self, bucket: str, entry: Entry, *, by_date: bool = False) -> None:
        entries = [e for e in self._buckets.get(bucket, []) if e[0] != entry[0]]
        entries.append(entry)
        if len(entries) > BUCKET_CAP:
            if by_date:
                entries.sort(key=lambda e: e[1])
            del entries[: len(entries) - BUCKET_CAP]
        self._buckets[bucket] = entries

    def _keys(self, c: Candidate) -> _Keys:
        if c.tenant != self.tenant:
            raise ValueError(f"item {c.key} is tenant {c.tenant}'s, this index is {self.tenant}'s")
        tax = tax_number_key(c.supplier_tax_number) or ""
        name = supplier_name_key(c.supplier) or ""
        suppliers = tuple(
            (key, is_name) for key, is_name in ((f"t:{tax}", False), (f"s:{name}", True)) if key[2:]
        )
        amount = ""
        buckets: tuple[str, ...] = ()
        if c.total.is_finite() and c.total != 0:  # a zero total says nothing about an invoice
            amount = f"{c.currency}|{self._amount_bucket(c.total)}"
            buckets = (amount,)
            if self.rules.amount_tolerance > 0:
                step = int(self._amount_bucket(c.total))
                buckets = tuple(f"{c.currency}|{step + d}" for d in (-1, 0, 1))
        return _Keys(
            kind="c" if c.credit_note else "i",
            tax=tax,
            suppliers=suppliers,
            number=invoice_number_key(c.number),
            written=written_number(c.number),
            amount=amount,
            amount_buckets=buckets,
            ordinal=c.date.toordinal(),
        )

    def _amount_bucket(self, total: Decimal) -> str:
        # With a tolerance, totals are filed by tolerance-wide steps and a check reads its
        # own step and both neighbours: every total within the tolerance is in one of them.
        tolerance = self.rules.amount_tolerance
        if tolerance > 0:
            return str(int((total / tolerance).to_integral_value(rounding="ROUND_FLOOR")))
        return amount_text(total)

    # -- moving to and from a table ----------------------------------------------------------

    def rows(self) -> Iterator[tuple[str, list[Entry]]]:
        """Every bucket as (key, entries): plain text, integers and tuples only."""
        for bucket, entries in self._buckets.items():
            yield bucket, list(entries)

    @classmethod
    def from_rows(
        cls,
        tenant: str,
        rows: Iterable[tuple[str, Iterable[Iterable[Any]]]],
        rules: DuplicateRules | None = None,
    ) -> DuplicateIndex:
        """An index from ``rows`` (entries may come back as lists, as JSON gives them). The
        rules' amount_tolerance must be the one the rows were filed with."""
        index = cls(tenant, rules)
        for bucket, entries in rows:
            index._buckets[bucket] = [tuple(e) for e in entries]
        return index

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)


def _same_supplier(is_name: bool, tax: str, earlier_tax: str) -> bool:
    return not (is_name and tax and earlier_tax and tax != earlier_tax)


_ORDER = (Rule.SAME_NUMBER, Rule.NUMBER_VARIANT, Rule.SAME_DOCUMENT, Rule.SAME_TOTAL_NEAR_DATE)


def _verdict(key: str, found: dict[Rule, list[str]]) -> Verdict:
    if not found:
        return Verdict(key=key, decision=Decision.NEW)
    by_rule = tuple((rule, tuple(found[rule])) for rule in _ORDER if rule in found)
    strongest = by_rule[0][0]
    matches = tuple(dict.fromkeys(k for _, keys in by_rule for k in keys))
    decision = Decision.DUPLICATE if strongest is Rule.SAME_NUMBER else Decision.HOLD
    return Verdict(key=key, decision=decision, rule=strongest, matches=matches, by_rule=by_rule)
