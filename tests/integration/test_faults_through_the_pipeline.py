"""Faults through the whole pipeline: the Intacct sandbox failing one request in five
(throttled, down, or failing after the write happened) with a closed period. After the
period reopens and the parked items are replayed, every good item is attached exactly once.
"""

from __future__ import annotations

import pytest

from streams.config import Settings
from streams.demo import DemoOptions, run_demo

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.mark.parametrize("ledger", ["intacct", "sage-accounting"])
def test_fail_rate_and_a_closed_period_end_with_every_good_item_attached_once(
    isolated: Settings, ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLSTREAM_SAGE_CALLS_PER_MINUTE", "3000")
    if ledger == "intacct":
        options: dict[str, object] = {"fail_rate": 0.2, "latency_ms": 5}
    else:
        # A "timeout" fault answers after the client gave up, so the write is uncertain.
        options = {"sandbox_args": ["--fail-rate", "0.2", "--hang-seconds", "3"]}
        for tenant in ("ACME_UK", "GLOBEX_US"):
            monkeypatch.setenv(f"BILLSTREAM_SAGE_{tenant}_TIMEOUT", "1.5")
    result = run_demo(
        DemoOptions(
            items=138,
            scenario="period-reopen",
            ledger=ledger,
            ledger_options=options,
            data_dir=isolated.data_dir,
            progress=False,
            timeout=300,
        ),
        isolated,
    )
    assert result.replayed > 0
    assert result.received == 138
    # The sample set's bad items fail for their own reasons; nothing else is left parked.
    assert set(result.failed) <= {"validation", "currency_mismatch", "mapping_missing", "duplicate"}
    assert result.attached == 122  # two cycles of the 61 good items
    assert result.bills == result.attachments == result.attached
    assert result.duplicates == 0
    assert all(bills == 1 and atts == 1 for bills, atts in result.inventory.values())
