"""``billstream reconcile`` against the Intacct sandbox: invoices flow through a real worker,
then someone deletes a bill and an attachment in "Sage"; both are reported, the attachment
is repaired through the attach stage, and the event log records the repair."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import tomli_w

from domain.events import Stage, Work
from domain.tenants import load_tenants
from sandboxes.intacct.harness import IntacctHarness
from streams.config import REPO_ROOT, Settings
from streams.kafka.topics import ensure_topics
from streams.ops.audit import timeline
from streams.ops.reconcile import attached_items
from tests.integration.helpers import (
    events_for,
    publish,
    sample_items,
    start_worker,
    stop_process,
    wait_terminal,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def intacct(isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[IntacctHarness]:
    isolated.data_dir.mkdir(parents=True, exist_ok=True)
    tenants = load_tenants(isolated.tenants_file)
    harness = IntacctHarness(latency_ms=0)
    harness.start(isolated.data_dir, tenants)
    try:
        body: dict[str, Any] = {"tenants": {}}
        for tenant in tenants.all():
            data = tenant.model_dump(mode="json", exclude={"id"}, exclude_none=True)
            data["ledger"] = harness.ledger_config(tenant).model_dump(exclude_none=True)
            body["tenants"][tenant.id] = data
        isolated.tenants_file.write_text(tomli_w.dumps(body))
        for name, value in harness.env().items():
            monkeypatch.setenv(name, value)  # the worker and the CLI inherit them
        asyncio.run(ensure_topics(isolated, str(isolated.kafka_url)))
        yield harness
    finally:
        harness.stop()


def reconcile(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("BILLSTREAM_INTACCT")})
    env.update(
        {
            "BILLSTREAM_KAFKA_URL": str(settings.kafka_url),
            "BILLSTREAM_DATA_DIR": str(settings.data_dir),
            "BILLSTREAM_TENANTS_FILE": str(settings.tenants_file),
            "BILLSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "reconcile", "--json", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_reconcile_reports_a_deleted_bill_and_attachment_and_repairs_one(
    isolated: Settings, intacct: IntacctHarness
) -> None:
    items = [s for s in sample_items(16) if not s.item.get("_expect")]
    events = events_for(items)
    worker = start_worker(isolated)
    try:
        asyncio.run(publish(isolated, events))
        asyncio.run(wait_terminal(isolated, {e.subject: 1 for e in events}, 180))
    finally:
        stop_process(worker)
    done = asyncio.run(attached_items(isolated, str(isolated.kafka_url)))
    assert len(done) >= 10

    code, report = reconcile(isolated)
    assert (code, report["differences"]) == (0, []) and report["checked"] == len(done)

    keys = sorted(done)
    lost_bill, lost_doc = keys[0], keys[1]
    sandbox = intacct.process
    assert sandbox is not None
    for key, delete in ((lost_bill, sandbox.delete_bill), (lost_doc, sandbox.delete_attachment)):
        work = done[key].data
        assert isinstance(work, Work) and work.ledger_bill is not None
        delete(done[key].tenant, work.ledger_bill.id)

    code, report = reconcile(isolated)
    assert code == 1
    found = {(d["item"], d["kind"]) for d in report["differences"]}
    assert found == {(lost_bill, "bill_missing"), (lost_doc, "attachment_missing")}

    code, report = reconcile(isolated, "--repair-attachments", "--tenant", done[lost_doc].tenant)
    (fixed,) = [d for d in report["differences"] if d["kind"] == "attachment_missing"]
    assert fixed["repaired"] is True and fixed["repair"].startswith("attached again as")
    assert report["repaired"] == 1

    # The document is back in "Sage", the log says how, and nothing else changed.
    code, report = reconcile(isolated)
    assert code == 1
    assert [(d["item"], d["kind"]) for d in report["differences"]] == [(lost_bill, "bill_missing")]
    steps = asyncio.run(timeline(isolated, str(isolated.kafka_url), lost_doc))
    last = steps[-1]
    assert (last.type, last.attempt, last.source) == (Stage.ATTACHED.event_type, 2, "reconcile")
    inventory = sandbox.inventory(done[lost_doc].tenant)[lost_doc]
    assert (inventory["bills"], inventory["attachments"]) == (1, 1)
