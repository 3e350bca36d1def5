"""readByQuery's SQL-like filter language, parsed into a predicate over a row.

``NAME = 'Jane\\'s Deli' AND (STATUS = 'T' OR TAXID IS NOT NULL)``: comparisons, ``IN``,
``LIKE``, ``IS [NOT] NULL``, ``NOT``, ``AND``, ``OR`` and parentheses, values typed as the
``query`` filters type them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sandboxes.intacct.filters import COMPARE, like, typed_value

SQL_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|''|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<op><=|>=|<>|!=|=|<|>)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def sql_tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = SQL_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unexpected text at {pos}: {text[pos : pos + 10]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)|''", lambda g: g.group(1) or "'", value[1:-1])
        tokens.append((kind, value))
        pos = m.end()
    return tokens


Predicate = Callable[[Mapping[str, Any]], bool]

_OPERATORS = {
    "=": COMPARE["equalto"],
    "!=": COMPARE["notequalto"],
    "<>": COMPARE["notequalto"],
    "<": COMPARE["lessthan"],
    "<=": COMPARE["lessthanorequalto"],
    ">": COMPARE["greaterthan"],
    ">=": COMPARE["greaterthanorequalto"],
}


def parse_sql(text: str) -> Predicate:
    """``NAME = 'Jane\\'s Deli' AND STATUS = 'T'``: readByQuery's filter as a predicate."""
    return _Parser(sql_tokens(text)).parse()


class _Parser:
    """Recursive descent: OR binds loosest, then AND, then NOT, then one condition."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos][1]!r}")
        return predicate

    def peek(self, word: str | None = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        kind, value = self.tokens[self.pos]
        return word is None or (kind == "word" and value.upper() == word)

    def peek_kind(self, kind: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos][0] == kind

    def take(self, kind: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ValueError("query ends too early")
        token = self.tokens[self.pos]
        if kind is not None and token[0] != kind:
            raise ValueError(f"expected {kind}, found {token[1]!r}")
        self.pos += 1
        return token

    def value(self) -> str:
        kind, text_value = self.take()
        if kind not in {"str", "num"}:
            raise ValueError(f"expected a value, found {text_value!r}")
        return text_value

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek("OR"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.peek("AND"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def not_expr(self) -> Predicate:
        if self.peek("NOT"):
            self.take()
            inner = self.not_expr()
            return lambda r: not inner(r)
        return self.primary()

    def primary(self) -> Predicate:
        if self.peek_kind("lp"):
            self.take("lp")
            inner = self.or_expr()
            self.take("rp")
            return inner
        _, name = self.take("word")
        name = name.upper()
        if self.peek("IS"):
            return self.is_null(name)
        negate = self.peek("NOT")
        if negate:
            self.take()
        if self.peek("IN"):
            return self.in_list(name, negate)
        if self.peek("LIKE"):
            self.take()
            pattern = self.value()
            return lambda r: like(pattern, str(r.get(name, "")), False) != negate
        if negate:
            raise ValueError("NOT must be followed by IN or LIKE here")
        _, op = self.take("op")
        right = typed_value(name, self.value(), False)
        compare = _OPERATORS[op]
        return lambda r: compare(typed_value(name, str(r.get(name, "")), False), right)

    def is_null(self, name: str) -> Predicate:
        self.take()
        negate = self.peek("NOT")
        if negate:
            self.take()
        if not self.peek("NULL"):
            raise ValueError("expected NULL after IS")
        self.take()
        return lambda r: (str(r.get(name, "")) == "") != negate

    def in_list(self, name: str, negate: bool) -> Predicate:
        self.take()
        self.take("lp")
        options = [self.value()]
        while self.peek_kind("comma"):
            self.take("comma")
            options.append(self.value())
        self.take("rp")
        wanted = {typed_value(name, o, False) for o in options}
        return lambda r: (typed_value(name, str(r.get(name, "")), False) in wanted) != negate
