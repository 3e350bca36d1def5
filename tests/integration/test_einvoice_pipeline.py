"""E-invoices through the whole pipeline on a real broker: dropped in the folder, validated,
posted to the local ledger and attached (an XML invoice as its PDF rendering)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from adapters.dext.folder import ExportFolder, FolderState
from domain.events import Stage
from domain.tenants import load_tenants
from tests.integration.helpers import (
    inventory,
    prepare,
    publish,
    start_worker,
    stop_process,
    wait_terminal,
)
from tests.support import RecordingSink, run_settings

pytestmark = [pytest.mark.broker]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "einvoices"
SAMPLES = (
    "01.01a-INVOICE_ubl.xml",
    "01.13a-INVOICE_ubl.xml",
    "02.01a-INVOICE_uncefact.xml",
    "EN16931_Einfach.pdf",
)
TENANTS = """
[tenants.eu]
locale = "de-DE"
base_currency = "EUR"
max_invoice_age_days = 5000  # the official samples are from 2015 to 2018
document_dirs = ["{drop}"]
[tenants.eu.ledger]
kind = "local"
company = "eu"
[tenants.eu.tax_codes]
"0" = "Z0"
"7" = "R7"
"19" = "S19"
# E-invoices carry no Dext category: the supplier rules code them.
[tenants.eu.suppliers."[Seller name]"]
gl_account = "6815"
[tenants.eu.suppliers."Lieferant GmbH"]
gl_account = "6815"
"""


def test_einvoices_are_posted_and_attached(tmp_path: Path, kafka_url: str) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in SAMPLES:
        shutil.copy(FIXTURES / name, drop / name)
        os.utime(drop / name, (time.time() - 60, time.time() - 60))
    tenants_file = tmp_path / "tenants-source.toml"
    tenants_file.write_text(TENANTS.format(drop=drop), encoding="utf-8")
    settings = run_settings(tmp_path, kafka_url, "einv", tenants_from=tenants_file)
    harness = prepare(settings)
    sink = RecordingSink()
    folder = ExportFolder(
        drop,
        tenants=load_tenants(settings.tenants_file),
        sink=sink,
        state=FolderState(tmp_path / "folder.sqlite"),
        tenant="eu",
        settle=1.0,
    )
    reports = asyncio.run(folder.scan_once())
    assert sum(r.published for r in reports) == len(SAMPLES), [r.to_json() for r in reports]
    worker = start_worker(settings)
    try:
        asyncio.run(publish(settings, sink.events))
        terminal = asyncio.run(wait_terminal(settings, {e.subject: 1 for e in sink.events}))
    finally:
        stop_process(worker)
    outcomes = {key: terminal.state[key][1] for key in (e.subject for e in sink.events)}
    assert {k: ev.stage for k, ev in outcomes.items()} == dict.fromkeys(outcomes, Stage.ATTACHED), {
        k: ev.data for k, ev in outcomes.items()
    }
    inv = inventory(harness, settings)
    assert sorted(inv) == sorted(outcomes)
    assert all((i.bills, i.attachments) == (1, 1) for i in inv.values())
