"""Hostile and careless Dext items, and hostile push headers, from a seeded generator.

Each item starts from a real sample and is bent the ways attackers and sloppy tools bend
input: wrong types, huge or empty strings, odd Unicode (lone surrogates, control and
bidi characters), deep nesting, numbers past every range, ids that differ only by spaces,
amounts that do not add up. Same seed, same items: a failure can be replayed.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from typing import Any

from domain.limits import MAX_DEPTH, MAX_ITEM_BYTES
from sandboxes.dext.samples import sample_items

Item = dict[str, Any]

WEIRD_TEXT = [
    "",
    " ",
    "\u0000",
    "\u202e gnirts desrever",
    "\ufeffBOM",
    "e\u0301",
    "😀" * 50,
    "<script>alert(1)</script>",
    "'; DROP TABLE bills; --",
    "${jndi:ldap://x}",
    "%s%s%n",
    "\r\n\r\nX-Injected: 1",
    "NaN",
    "Infinity",
    "-0",
    "1e400",
    "0x1F",
    "\u0661\u0662\u0663\u066b\u0664\u0665",  # Arabic-Indic digits and decimal separator
    "1,234,567.891",
    "1.234.567,89",
    "\uff19\uff19",  # full-width nines
]
WEIRD_VALUES: list[Any] = [None, True, False, [], {}, [1, 2], {"a": "b"}, "9" * 400, 0, -1]
AMOUNT_FIELDS = ("total_amount", "vat_amount", "net_amount")
DATE_FIELDS = ("date", "due_date")
DATES = ["31/12/99", "29/02/2025", "2026-13-01", "0000-00-00", "9999-12-31", "1/2/3", "yesterday"]


def _nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"n": value}
    return value


class Hostile:
    """A seeded stream of bent items."""

    def __init__(self, seed: int = 12) -> None:
        self.rng = random.Random(seed)
        self.bases = [s for s in sample_items(69) if "_expect" not in s.item]
        self.mutations: list[Callable[[Item], None]] = [
            self._wrong_type,
            self._weird_text,
            self._amounts,
            self._dates,
            self._lines,
            self._deep,
            self._big,
            self._id,
            self._drop,
            self._currency,
        ]

    def item(self, n: int) -> tuple[str, Item]:
        """(tenant, item) number ``n``: one to three mutations of a sample."""
        base = self.rng.choice(self.bases)
        item = copy.deepcopy(base.item)
        item["id"] = f"FZ-{n:06d}"
        item.pop("document", None)
        for mutate in self.rng.sample(self.mutations, self.rng.randint(1, 3)):
            mutate(item)
        return base.tenant, item

    def items(self, count: int) -> Iterator[tuple[str, Item]]:
        for n in range(count):
            yield self.item(n)

    def _field(self, item: Item) -> str:
        return self.rng.choice(sorted(item) or ["payee"])

    def _wrong_type(self, item: Item) -> None:
        item[self._field(item)] = self.rng.choice(WEIRD_VALUES)

    def _weird_text(self, item: Item) -> None:
        field = self.rng.choice(["payee", "invoice_number", "description", "category"])
        item[field] = self.rng.choice(WEIRD_TEXT)

    def _amounts(self, item: Item) -> None:
        field = self.rng.choice(AMOUNT_FIELDS)
        item[field] = self.rng.choice(
            [
                "0.001",
                "-0.001",
                "150.00",
                "-20",
                "1e9",
                "99999999999999999999.99",
                "0",
                "abc",
                *WEIRD_TEXT[12:21],
            ]
        )

    def _dates(self, item: Item) -> None:
        item[self.rng.choice(DATE_FIELDS)] = self.rng.choice(DATES + WEIRD_TEXT[:6])

    def _lines(self, item: Item) -> None:
        lines = item.get("line_items")
        choice = self.rng.randrange(4)
        if choice == 0:
            item["line_items"] = "not a list"
        elif choice == 1 and isinstance(lines, list) and lines:
            item["line_items"] = lines * self.rng.randint(2, 80)
        elif choice == 2:
            item["line_items"] = [self.rng.choice(WEIRD_VALUES) for _ in range(5)]
        else:
            item["line_items"] = [{"total_amount": "1.00", "tax_rate": "abc"}] * 3

    def _deep(self, item: Item) -> None:
        item["extra"] = _nested(self.rng.choice([5, MAX_DEPTH - 2, MAX_DEPTH + 5, 200]))

    def _big(self, item: Item) -> None:
        size = self.rng.choice([10_000, MAX_ITEM_BYTES // 2, MAX_ITEM_BYTES + 100])
        item[self.rng.choice(["description", "notes"])] = "x" * size

    def _id(self, item: Item) -> None:
        given = str(item.get("id"))
        item["id"] = self.rng.choice(
            [f" {given} ", given.lower(), "", "   ", [], 12345, "a\u0000b", "x" * 300]
        )

    def _drop(self, item: Item) -> None:
        for field in self.rng.sample(sorted(item), min(len(item), self.rng.randint(1, 4))):
            if field != "id":
                item.pop(field, None)

    def _currency(self, item: Item) -> None:
        item["currency"] = self.rng.choice(["XXX", "gbp", "BHD", "JPY", "", "€", "EURO", None])


def hostile_headers(rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, header overrides) for requests that must be refused, never a 500."""
    yield "non-utf8 timestamp", {"X-Billstream-Timestamp": b"17\xff\xfe"}
    yield "non-utf8 signature", {"X-Billstream-Signature": b"sha256=\xff" + b"0" * 63}
    yield "non-utf8 tenant", {"X-Billstream-Tenant": b"acme\xff"}
    yield "400-digit timestamp", {"X-Billstream-Timestamp": "9" * 400}
    yield "negative timestamp", {"X-Billstream-Timestamp": "-5"}
    yield "short signature", {"X-Billstream-Signature": "sha256=abc"}
    yield "no signature", {"X-Billstream-Signature": ""}
    yield "unknown tenant", {"X-Billstream-Tenant": "nobody"}
    yield "xml content type", {"Content-Type": "application/xml"}
    yield "huge request id", {"X-Request-Id": "r" * 5000}
    # Any byte a client can put in a header (HTTP allows obs-text, 0x80-0xFF); not a space at
    # either end, which is not part of the value (RFC 9110 5.5) and which h11 refuses to send.
    legal = [*range(0x20, 0x7F), *range(0x80, 0x100)]
    inner = bytes(rng.choice(legal) for _ in range(38))
    ends = [b for b in legal if b != 0x20]
    value = bytes([rng.choice(ends)]) + inner + bytes([rng.choice(ends)])
    yield "random bytes", {"X-Billstream-Signature": value}
