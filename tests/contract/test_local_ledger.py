"""The ledger contract on the local SQLite ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.sqlite_ledger import LocalLedger
from tests.contract.ledger_contract import LedgerContract


class TestLocalLedger(LedgerContract):
    @pytest.fixture
    async def ledger(self, tmp_path: Path) -> AsyncIterator[LocalLedger]:
        ledger = LocalLedger(tmp_path / "ledger.sqlite", company="contract")
        yield ledger
        await ledger.aclose()

    async def close_period(self, ledger: LocalLedger, period: str) -> None:  # type: ignore[override]
        ledger.close_period(period)

    async def open_period(self, ledger: LocalLedger, period: str) -> None:  # type: ignore[override]
        ledger.open_period(period)

    async def test_survives_reopening_the_file(self, ledger: LocalLedger) -> None:
        vendor = await ledger.create_vendor("Persistent Ltd")
        again = LocalLedger(ledger.path)
        assert await again.find_vendor("persistent limited") == vendor
        await again.aclose()
