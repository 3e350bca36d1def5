"""The shape shared by the Intacct sandbox's parts: its state and how a function is called.

Each family of functions (vendors, bills, attachments, queries) is a mixin over
``SandboxCore``; a function's handler takes the company, the function's XML body and the
``Context`` of the request, and returns the result's data and key.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import Function, ParsedRequest
from sandboxes.intacct.state import Company, SandboxConfig, Session, Stats

Reply = tuple[Element | None, str | None]
"""A function's answer: its ``<data>`` element and its ``<key>``, each optional."""


@dataclass
class Context:
    request: ParsedRequest
    function: Function
    base_url: str
    company: Company
    user_id: str
    location_id: str


Handler = Callable[[Company, Element, Context], Reply]


class SandboxCore:
    """The state every part of the sandbox shares (``IntacctSandbox`` sets it up)."""

    config: SandboxConfig
    companies: dict[str, Company]
    sessions: dict[str, Session]
    stats: Stats
    fault_queue: collections.deque[str]
    fail_rate: float
    fail_modes: tuple[str, ...]
    handlers: dict[str, Handler]
    _rng: random.Random
    _recordno: int
    _in_flight: collections.Counter[str]
    _result_sets: dict[str, dict[str, Any]]

    def add_company(self, company_id: str, *, accounts: Iterable[str] | None = None) -> Company:
        key = company_id.casefold()
        company = self.companies.get(key)
        if company is None:
            company = Company(
                id=company_id,
                closed=set(self.config.closed_periods),
                vendor_sequence=self.config.vendor_sequence,
            )
            self.companies[key] = company
        if accounts is not None:
            company.accounts = set(accounts)
        return company

    def company(self, company_id: str) -> Company:
        company = self.companies.get(company_id.casefold())
        if company is None:
            raise KeyError(company_id)
        return company

    def _next_recordno(self) -> int:
        self._recordno += 1
        return self._recordno
