"""The commands themselves: `billstream serve push` and `billstream ingest folder`."""

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

import httpx
import pytest

from adapters.dext.push import signed_headers
from sandboxes.dext.samples import sample_items
from tests.integration.test_dext_api_cursor import Processes, base_env, ready_line
from tests.support import broker_for_test, read_topic, write_tenants

pytestmark = [pytest.mark.broker]

REPO = Path(__file__).resolve().parents[2]
SECRET = "a-push-secret-of-enough-length"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    broker = broker_for_test(tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    yield procs
    procs.stop_all()


async def test_serve_push(tmp_path: Path, broker: Any, processes: Processes) -> None:
    env = base_env(tmp_path, broker.url) | {"BILLSTREAM_PUSH_SECRET_ACME_UK": SECRET}
    server = processes.start(["serve", "push", "--port", "0"], env)
    ready = ready_line(server)
    assert ready["tenants"] == ["acme-uk"]
    item = dict(sample_items(1)[0].item)
    item["document"] = {"url": "http://127.0.0.1:9/DX-100001.pdf"}  # a sandbox link
    body = json.dumps(item).encode()
    async with httpx.AsyncClient() as client:
        good = await client.post(
            ready["url"], content=body, headers=signed_headers("acme-uk", SECRET, body)
        )
        again = await client.post(
            ready["url"], content=body, headers=signed_headers("acme-uk", SECRET, body)
        )
        forged = await client.post(
            ready["url"], content=body, headers=signed_headers("acme-uk", "x" * 20, body)
        )
    assert (good.status_code, good.json()["key"]) == (202, "acme-uk:DX-100001")
    assert again.json()["status"] == "duplicate"
    assert forged.status_code == 401
    events = await read_topic(broker.url, "ap.received")
    assert [e.subject for e in events] == ["acme-uk:DX-100001"]
    assert events[0].source == "push"


def test_serve_push_without_any_secret_says_what_to_set(tmp_path: Path, broker: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "serve", "push", "--port", "0"],
        cwd=REPO,
        env=base_env(tmp_path, broker.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "BILLSTREAM_PUSH_SECRET_<TENANT>" in done.stderr


async def test_ingest_folder_once(tmp_path: Path, broker: Any) -> None:
    export = tmp_path / "export"
    export.mkdir()
    sample = sample_items(1)[0]
    shutil.copy(sample.document_path, export)
    (export / "dext.csv").write_text(
        "Date,Supplier,Invoice Number,Total,Tax,Currency,Image Name\n"
        "07/08/2026,Viking Direct Ltd,VD-1,120.00,20.00,GBP,DX-100001.pdf\n"
        "31/02/2026,Broken Ltd,BR-1,1.00,0,GBP,\n",
        encoding="utf-8",
    )
    os.utime(export / "dext.csv", (0, 0))
    env = base_env(tmp_path, broker.url)
    env["BILLSTREAM_TENANTS_FILE"] = str(
        write_tenants(tmp_path / "tenants.toml", docs_dirs=[str(export)])
    )
    args = [
        sys.executable,
        "-m",
        "streams.cli",
        "ingest",
        "folder",
        str(export),
        "--tenant",
        "acme-uk",
    ]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    first = await asyncio.to_thread(run)
    second = await asyncio.to_thread(run)
    assert first.returncode == 1, first.stderr  # one bad row
    report = json.loads(first.stdout.strip().splitlines()[-1])
    assert report["published"] == 1
    (problem,) = report["files"][0]["problems"]
    assert problem["line"] == 3 and "31/02/2026" in problem["message"]
    assert second.returncode == 0
    assert json.loads(second.stdout)["files"][0]["outcome"] == "duplicate"
    (event,) = await read_topic(broker.url, "ap.received")
    assert event.source == "folder/export"
    assert event.data.item["date"] == "2026-08-07"  # type: ignore[union-attr]
    assert event.data.document is not None  # type: ignore[union-attr]
    assert event.data.document.url == (export / "DX-100001.pdf").as_uri()  # type: ignore[union-attr]
