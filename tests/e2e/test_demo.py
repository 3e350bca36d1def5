"""The README's demo, as a newcomer runs it: the CLI, the embedded broker, JSON out."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def billstream(
    *args: str, data_dir: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> dict[str, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")},
        **(env or {}),
        "BILLSTREAM_DATA_DIR": str(data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    return json.loads(last)


def test_demo_300_items(tmp_path: Path) -> None:
    out = billstream("demo", "--items", "300", "--json", data_dir=tmp_path)
    assert out["received"] == 300
    assert out["attached"] + sum(out["failed"].values()) == 300
    assert out["bills"] == out["attachments"] == out["attached"]
    assert out["duplicates"] == 0
    # The sample set's bad items, cycled: each fails for its own clear reason.
    assert set(out["failed"]) == {"validation", "currency_mismatch", "mapping_missing", "duplicate"}
    assert out["attached"] > 250
    # The event log outlives the run: audit reads it back through a fresh embedded broker.
    demo_dir = tmp_path / "demo"
    ok = billstream(
        "--data-dir",
        str(demo_dir),
        "audit",
        out["examples"]["attached"],
        "--json",
        data_dir=demo_dir,
    )
    assert [s["type"] for s in ok["steps"]] == [
        "billstream.received",
        "billstream.validated",
        "billstream.vendor-resolved",
        "billstream.bill-created",
        "billstream.attached",
    ]
    bad = billstream(
        "--data-dir", str(demo_dir), "audit", out["examples"]["failed"], "--json", data_dir=demo_dir
    )
    assert bad["steps"][-1]["type"] == "billstream.failed"
    assert bad["steps"][-1]["outcome"] in out["failed"]
    # Dext's signed download links (valid for days) were copied into every topic and
    # changelog (1,010 copies after make demo); the log now keeps dext:// references only.
    records, signed, references = asyncio.run(_scan_log(demo_dir))
    assert records > 1000 and references > 0
    assert signed == 0


def test_demo_period_reopen(tmp_path: Path) -> None:
    out = billstream(
        "demo", "--items", "120", "--scenario", "period-reopen", "--json", data_dir=tmp_path
    )
    assert out["replayed"] > 0
    assert "period_closed" not in out["failed"]
    assert out["attached"] + sum(out["failed"].values()) == 120
    assert out["bills"] == out["attachments"] == out["attached"]
    assert out["duplicates"] == 0
    # Nothing is left to replay for that reason.
    demo_dir = tmp_path / "demo"
    left = billstream(
        "--data-dir",
        str(demo_dir),
        "replay",
        "--reason",
        "period_closed",
        "--dry-run",
        "--json",
        data_dir=demo_dir,
    )
    assert left["matched"] == 0


@pytest.mark.parametrize("ledger", ["local", "intacct"])
def test_demo_with_einvoices(tmp_path: Path, ledger: str) -> None:
    out = billstream(
        "demo", "--source", "einvoices", "--ledger", ledger, "--json", data_dir=tmp_path
    )
    # Seven official samples (UBL, CII, Factur-X) through the folder source: six bills with
    # their documents; the DKK one with uncoded lines parks, every problem named.
    assert (out["received"], out["attached"], out["failed"]) == (7, 6, {"validation": 1})
    assert out["bills"] == out["attachments"] == 6
    assert out["duplicates"] == 0
    demo_dir = tmp_path / "demo"
    failed = billstream(
        "--data-dir", str(demo_dir), "audit", out["examples"]["failed"], "--json", data_dir=demo_dir
    )
    assert "DKK is not enabled" in failed["steps"][-1]["detail"]
    # An XML invoice is attached as its PDF rendering, written in the folder once.
    rendered = [p.name for p in (demo_dir / "einvoices" / ".billstream").rglob("*.pdf")]
    assert len(rendered) == 6  # one per XML file; the Factur-X PDF is its own document
    assert not [name for name in rendered if name.startswith("EN16931_Einfach")]


def test_demo_on_the_intacct_sandbox(tmp_path: Path) -> None:
    out = billstream("demo", "--ledger", "intacct", "--items", "300", "--json", data_dir=tmp_path)
    assert out["received"] == 300
    assert out["attached"] + sum(out["failed"].values()) == 300
    assert out["bills"] == out["attachments"] == out["attached"]
    assert out["duplicates"] == 0
    assert out["sage_requests"] > 0
    assert out["requests_per_bill"] == round(out["sage_requests"] / out["bills"], 3)
    counts = out["sage_function_counts"]
    assert sum(counts.values()) == out["sage_functions"]
    assert out["functions_per_bill"] == round(out["sage_functions"] / out["bills"], 3)
    # Per bill: its lookup, its create, its upload and the link; vendors and catalogs are
    # found once (it was 8.1 functions a bill, reading back each create and attachment).
    assert counts["create_supdoc"] == counts["update"] == out["bills"]
    assert out["functions_per_bill"] < 4.5


def test_demo_on_the_sage_accounting_sandbox(tmp_path: Path) -> None:
    out = billstream(
        "demo",
        "--ledger",
        "sage-accounting",
        "--items",
        "300",
        "--json",
        data_dir=tmp_path,
        # 300 bills at Sage's 200 calls a minute take over six minutes; the budget has its
        # own tests, so here the sandbox and the workers' budget are raised together.
        env={"BILLSTREAM_SAGE_CALLS_PER_MINUTE": "3000"},
    )
    assert out["received"] == 300
    assert out["attached"] + sum(out["failed"].values()) == 300
    assert out["bills"] == out["attachments"] == out["attached"]
    assert out["duplicates"] == 0
    assert out["sage_schema_violations"] == 0
    calls = out["sage_calls"]
    assert sum(calls.values()) == out["sage_requests"]
    # Per bill: its create and its upload. Each supplier is searched for once, and one made
    # here costs its create alone (regression: it was searched for again after its create).
    bills = calls["POST /v3.1/purchase_invoices"] + calls["POST /v3.1/purchase_credit_notes"]
    assert bills == calls["POST /v3.1/attachments"] == out["bills"]
    assert calls["GET /v3.1/contacts"] <= 30
    assert out["steady_requests_per_bill"] > 0


async def _scan_log(data_dir: Path) -> tuple[int, int, int]:
    """(records, records holding a signed link, records holding a dext:// reference) over
    every topic and changelog of the demo's embedded broker."""
    from aiokafka.client import AIOKafkaClient

    from streams.config import Settings
    from streams.kafka.broker import bootstrap_of
    from streams.kafka.eventlog import read_records
    from streams.pipeline.runtime import kafka_for

    with kafka_for(Settings(data_dir=data_dir)) as url:
        client = AIOKafkaClient(bootstrap_servers=bootstrap_of(url))
        await client.bootstrap()
        try:
            topics = sorted((await client.fetch_all_metadata()).topics())
        finally:
            await client.close()
        records = signed = references = 0
        async for raw in read_records(url, topics):
            records += 1
            signed += b"signature=" in raw.value
            references += b"dext://" in raw.value
    return records, signed, references
