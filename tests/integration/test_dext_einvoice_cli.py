"""`billstream ingest folder` with e-invoices in the folder, on a real broker: each is one
event on the received topic, its document one the attach stage can read; a bad one is
reported with its code and the command says so by its exit status."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_dext_api_cursor import base_env
from tests.support import broker_for_test, read_topic, write_tenants

pytestmark = [pytest.mark.broker]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "einvoices"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    broker = broker_for_test(tmp_path / "broker")
    yield broker
    broker.stop()


async def test_ingest_folder_with_einvoices(tmp_path: Path, broker: Any) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("base-example.xml", "EN16931_Einfach.pdf"):
        shutil.copy(FIXTURES / name, drop / name)
    (drop / "bomb.xml").write_bytes(b'<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>')
    for path in drop.iterdir():
        os.utime(path, (0, 0))
    env = base_env(tmp_path, broker.url)
    env["BILLSTREAM_TENANTS_FILE"] = str(
        write_tenants(tmp_path / "tenants.toml", docs_dirs=[str(drop)])
    )
    args = [sys.executable, "-m", "streams.cli", "ingest", "folder", str(drop)]
    args += ["--tenant", "acme-uk"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    done = await asyncio.to_thread(run)
    assert done.returncode == 1, done.stderr  # the bomb
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["published"] == 2
    files = {f["file"]: f for f in report["files"]}
    assert set(files) == {"base-example.xml", "EN16931_Einfach.pdf", "bomb.xml"}
    (problem,) = files["bomb.xml"]["problems"]
    assert problem["code"] == "einvoice_forbidden_xml"
    events = await read_topic(broker.url, "ap.received")
    docs = sorted(e.data.document.filename for e in events)  # type: ignore[union-attr]
    assert docs == ["EN16931_Einfach.pdf", "base-example.pdf"]
    urls = [e.data.document.url for e in events]  # type: ignore[union-attr]
    assert all(head == b"%PDF-" for head in await asyncio.to_thread(heads, urls))
    assert all(e.data.item["id"].startswith("einv-") for e in events)  # type: ignore[union-attr]


def heads(urls: list[str]) -> list[bytes]:
    return [Path(url.removeprefix("file://")).read_bytes()[:5] for url in urls]
