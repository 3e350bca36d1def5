"""``billstream check`` line by line, with ledgers that answer as told (no network)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_ledger import LocalLedger
from domain.errors import LedgerError, Reason
from domain.ports import Ledger
from domain.tenants import Tenant, Tenants, parse_tenants
from streams.config import Settings
from streams.ops.check import (
    AccountCatalog,
    Check,
    all_green,
    check_dext,
    check_documents,
    check_mapping,
    check_notify,
    check_period,
    run_checks,
)

TODAY = dt.date(2026, 11, 27)

TENANTS = """
[tenants.books]
name = "Books Ltd"
base_currency = "GBP"
closed_period = "hold"
[tenants.books.ledger]
kind = "sage-accounting"
company = "biz-1"
credentials_env = "T_SAGE"
[tenants.books.gl_accounts]
"Office Supplies" = "7500"
"Travel" = "7400"
[tenants.books.tax_codes]
"20" = "S20"
"0" = "Z0"
[tenants.books.suppliers."Smith & Co"]
gl_account = "7710"

[tenants.later]
base_currency = "GBP"
closed_period = "redate"
ledger = { kind = "local", company = "later" }
"""


class Catalog:
    """A ledger with a chart of accounts and periods, as a test sets them."""

    kind = "sage-accounting"

    def __init__(
        self,
        accounts: set[str] | None = None,
        taxes: set[str] | None = None,
        closed: set[str] = frozenset(),  # type: ignore[assignment]
        refuse: LedgerError | None = None,
    ) -> None:
        self.accounts, self.taxes, self.closed, self.refuse = accounts, taxes, closed, refuse
        self.closed_calls = 0

    async def check_connection(self) -> None:
        if self.refuse:
            raise self.refuse

    async def unknown_gl_accounts(self, codes: Collection[str]) -> list[str] | None:
        return None if self.accounts is None else sorted(set(codes) - self.accounts)

    async def unknown_tax_codes(self, codes: Collection[str]) -> list[str] | None:
        return None if self.taxes is None else sorted(set(codes) - self.taxes)

    async def period_is_open(self, day: dt.date) -> bool:
        return f"{day:%Y-%m}" not in self.closed

    async def next_open_day(self, day: dt.date) -> dt.date | None:
        return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)

    async def aclose(self) -> None:
        pass


def catalog(**kw: Any) -> Ledger:
    ledger: Any = Catalog(**kw)
    return ledger  # type: ignore[no-any-return]


@pytest.fixture
def tenants() -> Tenants:
    return parse_tenants(TENANTS)


@pytest.fixture
def books(tenants: Tenants) -> Tenant:
    return tenants.get("books")


def test_the_catalog_protocol_is_what_the_sage_ledgers_offer() -> None:
    from adapters.intacct.ledger import IntacctLedger
    from adapters.sage_accounting.ledger import SageAccountingLedger

    assert isinstance(Catalog(), AccountCatalog)
    for cls in (IntacctLedger, SageAccountingLedger):
        assert callable(cls.unknown_gl_accounts) and callable(cls.unknown_tax_codes)
    assert not hasattr(LocalLedger, "unknown_gl_accounts")


async def test_mapping_names_every_missing_code(books: Tenant) -> None:
    found = await check_mapping(books, catalog(accounts={"7500"}, taxes={"S20"}))
    assert found.status == "fail"
    assert "GL account 7400 (Travel)" in found.detail
    assert "GL account 7710 (a supplier rule)" in found.detail
    assert "tax code Z0 (rate 0)" in found.detail
    assert "[tenants.books.gl_accounts]" in found.advice


async def test_mapping_green_when_every_code_exists(books: Tenant) -> None:
    found = await check_mapping(
        books, catalog(accounts={"7500", "7400", "7710"}, taxes={"S20", "Z0"})
    )
    assert (found.status, found.detail) == ("ok", "all 3 GL accounts and 2 tax codes exist")


async def test_mapping_unreadable_is_said_not_faked(books: Tenant, tmp_path: Path) -> None:
    found = await check_mapping(books, catalog())
    assert found.status == "skip" and "does not let the API read" in found.detail
    local = await check_mapping(books, LocalLedger(tmp_path / "l.sqlite"))
    assert local.status == "skip" and "keeps no chart of accounts" in local.detail


async def test_a_closed_current_period_is_red_unless_redated(tenants: Tenants) -> None:
    closed = catalog(closed={"2026-11"})
    red = await check_period(tenants.get("books"), closed, TODAY)
    assert red.status == "fail" and "closed period (2026-11)" in red.detail
    assert red.advice.startswith("Reopen 2026-11 in Sage")
    redate = await check_period(tenants.get("later"), closed, TODAY)
    assert redate.status == "ok" and "posts bills on 2026-12-01" in redate.detail
    assert (await check_period(tenants.get("books"), catalog(), TODAY)).status == "ok"


async def test_a_refused_ledger_is_one_red_line_and_the_rest_say_why_not_checked(
    tenants: Tenants, tmp_path: Path
) -> None:
    refused = LedgerError(Reason.AUTH, "Sage refused the refresh token of tenant books.")
    settings = Settings(data_dir=tmp_path, kafka_url=None, document_dirs=[tmp_path])

    def ledgers(tenant: Tenant) -> Ledger:
        if tenant.id == "books":
            return catalog(refuse=refused)
        return LocalLedger(tmp_path / "later.sqlite")

    checks = await run_checks(settings, tenants, env={}, ledger_for=ledgers, today=TODAY)
    red = [c for c in checks if c.status == "fail"]
    assert [(c.tenant, c.name) for c in red] == [("books", "ledger")]
    assert "billstream connect sage-accounting --tenant books" in red[0].advice
    by = {(c.tenant, c.name): c for c in checks}
    assert by[("books", "mapping")].status == by[("books", "period")].status == "skip"
    assert by[("later", "ledger")].status == "ok" and by[("later", "period")].status == "ok"
    assert not all_green(checks)


def test_documents_folder_missing_is_red(books: Tenant, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, document_dirs=[tmp_path / "nowhere"])
    found = check_documents(books, settings)
    assert found.status == "fail" and "nowhere does not exist" in found.detail
    assert check_documents(books, Settings(document_dirs=[tmp_path])).status == "ok"


async def test_dext_without_any_source_is_a_skip_not_a_pass(books: Tenant) -> None:
    found = await check_dext(books, {})
    assert found.status == "skip" and "BILLSTREAM_DEXT_API_URL" in found.detail
    pushed = await check_dext(books, {"BILLSTREAM_PUSH_SECRET_BOOKS": "x" * 20})
    assert pushed.status == "ok"
    unnamed = await check_dext(books, {"BILLSTREAM_DEXT_API_URL": "http://127.0.0.1:1"})
    assert unnamed.status == "fail" and "names no dext_account" in unnamed.detail


async def test_notify_names_missing_variables() -> None:
    tenant = parse_tenants(
        TENANTS + '\n[tenants.books.notify]\nslack_webhook_env = "T_BOOKS_SLACK"\n'
    ).get("books")
    found = await check_notify(tenant, {})
    assert isinstance(found, Check) and found.status == "fail"
    assert "T_BOOKS_SLACK is not set" in found.detail
    ok = await check_notify(tenant, {"T_BOOKS_SLACK": "https://hooks.example/x"})
    assert ok is not None and ok.status == "ok" and "hooks.example" not in ok.detail
    assert await check_notify(parse_tenants(TENANTS).get("later"), {}) is None


async def test_embedded_log_near_its_ceiling_is_a_warning_not_red(tmp_path: Path) -> None:
    from streams.kafka.broker import EMBEDDED_LOG_LIMIT_BYTES, SNAPSHOT
    from streams.ops.check import check_kafka

    settings = Settings(data_dir=tmp_path)
    assert (await check_kafka(settings)).status == "ok"
    settings.broker_dir.mkdir(parents=True)
    snapshot = settings.broker_dir / SNAPSHOT
    snapshot.touch()
    os.truncate(snapshot, int(EMBEDDED_LOG_LIMIT_BYTES * 0.7))  # sparse: no disk used
    assert (await check_kafka(settings)).status == "ok"
    os.truncate(snapshot, int(EMBEDDED_LOG_LIMIT_BYTES * 0.9))
    found = await check_kafka(settings)
    assert found.status == "warn"
    assert "90%" in found.detail and "BILLSTREAM_KAFKA_URL" in found.advice
    assert all_green([found])
