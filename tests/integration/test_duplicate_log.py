"""The shared duplicate index on a real broker: what one worker checks, another sees; a
restarted worker reads only what it missed; memory is a SQLite file, not the history."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from domain.duplicates import Candidate, Decision
from domain.tenants import load_tenants
from streams.kafka.duplicate_log import SharedDuplicateLog
from tests.support import REPO_ROOT, run_settings

pytestmark = [pytest.mark.broker]


def invoice(key: str, number: str, *, total: str = "120.00") -> Candidate:
    return Candidate(
        tenant="acme-uk",
        key=f"acme-uk:{key}",
        supplier="Viking Direct Ltd",
        supplier_tax_number="GB123456789",
        number=number,
        date=dt.date(2026, 10, 15),
        currency="GBP",
        total=Decimal(total),
    )


async def test_two_workers_share_one_index(tmp_path: Path, kafka_url: str) -> None:
    settings = run_settings(
        tmp_path, kafka_url, "duplog", tenants_from=REPO_ROOT / "tenants.example.toml"
    )
    tenants = load_tenants(settings.tenants_file)
    one, two = (SharedDuplicateLog(settings, kafka_url, tenants) for _ in range(2))
    try:
        first = await one.check(invoice("DX-1", "INV-0042"))
        assert first.decision is Decision.NEW
        # The other worker's view has it once the record has travelled; a check first waits
        # for its view to catch up with the topic, so a fresh view sees it at once.
        seen = await two.check(invoice("DX-2", "42"))
        assert (seen.decision, seen.matches) == (Decision.HOLD, ("acme-uk:DX-1",))
        for _ in range(100):  # and the first worker learns of the second's by tailing
            if (await one.check(invoice("DX-3", "0042", total="5.00"))).matches[1:]:
                break
            await asyncio.sleep(0.1)
        again = await one.check(invoice("DX-3", "0042", total="5.00"))
        assert set(again.matches) == {"acme-uk:DX-1", "acme-uk:DX-2"}
    finally:
        await one.stop()
        await two.stop()
    # Restarted on the same data folder: the view is there, only what it missed is read.
    three = SharedDuplicateLog(settings, kafka_url, tenants)
    try:
        assert three._next_offset() > 0
        late = await three.check(invoice("DX-4", "INV 42"))
        assert late.decision is Decision.HOLD and "acme-uk:DX-1" in late.matches
    finally:
        await three.stop()
