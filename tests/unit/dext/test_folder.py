"""The export folder source: once per file, half-written files wait, bad rows by line."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from adapters.dext.folder import ExportFolder, FolderState
from sandboxes.dext.samples import sample_items
from tests.support import RecordingSink, make_tenants

PDF = b"%PDF-1.4\n%%EOF\n"
HEADER = "ID,Date,Supplier,Invoice Number,Total,Tax,Currency,Document\n"


def aged(path: Path, seconds: float = 60) -> Path:
    """Make a file look finished: its last write was ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def write(path: Path, text: str, age: float | None = 60) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return aged(path, age) if age is not None else path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "dext-backup"
    folder.mkdir()
    return folder


def source(
    root: Path, sink: RecordingSink, state_path: Path, tenant: str | None = "acme-uk"
) -> ExportFolder:
    return ExportFolder(
        root,
        tenants=make_tenants(docs_dirs=[str(root)]),
        sink=sink,
        state=FolderState(state_path),
        tenant=tenant,
        settle=2.0,
    )


async def test_half_written_file_waits_until_it_is_finished(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path / "state.sqlite")
    export = root / "export.csv"
    write(export, HEADER + "DX-1,2026-08-01,Acme,A-1,10.00,0,GBP,a.pdf\nDX-2,2026-08", age=None)
    write(root / "next.csv.part", HEADER + "DX-9,2026-08-01,Hidden,H-1,1.00,0,GBP,\n")
    (report,) = await folder.scan_once()
    assert (report.file, report.outcome, report.published) == ("export.csv", "pending", 0)
    assert sink.events == []
    # The writer finishes; the file has then been quiet for longer than the settle time.
    write(
        export,
        HEADER
        + "DX-1,2026-08-01,Acme,A-1,10.00,0,GBP,a.pdf\n"
        + "DX-2,2026-08-02,Beta,B-1,20.00,0,GBP,b.pdf\n",
    )
    (report,) = await folder.scan_once()
    assert (report.outcome, report.published, report.problems) == ("processed", 2, [])
    assert sink.keys == ["acme-uk:DX-1", "acme-uk:DX-2"]  # the .part file was never read


async def test_duplicate_file_is_processed_once_even_after_a_restart(
    root: Path, tmp_path: Path
) -> None:
    sink = RecordingSink()
    state = tmp_path / "state.sqlite"
    body = HEADER + "DX-1,2026-08-01,Acme,A-1,10.00,0,GBP,\n"
    write(root / "2026-08.csv", body)
    assert [r.outcome for r in await source(root, sink, state).scan_once()] == ["processed"]
    shutil.copy(root / "2026-08.csv", root / "2026-08 (1).csv")
    aged(root / "2026-08 (1).csv")
    restarted = source(root, sink, state)  # a new process over the same state file
    reports = {r.file: r for r in await restarted.scan_once()}
    assert reports["2026-08.csv"].outcome == "duplicate"
    assert reports["2026-08.csv"].notes == ["already processed"]
    assert reports["2026-08 (1).csv"].outcome == "duplicate"
    assert reports["2026-08 (1).csv"].notes == ["same content as 2026-08.csv"]
    assert sink.keys == ["acme-uk:DX-1"]


async def test_bad_row_among_good_ones(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    write(
        root / "export.csv",
        HEADER
        + "DX-1,2026-08-01,Acme,A-1,10.00,0,GBP,\n"
        + "DX-2,2026-13-45,Broken Date,B-1,20.00,0,GBP,\n"
        + "DX-3,2026-08-03,Gamma,C-1,30.00,0,GBP,\n",
    )
    (report,) = await source(root, sink, tmp_path / "s.sqlite").scan_once()
    assert report.published == 2
    assert [(p.file, p.line) for p in report.problems] == [("export.csv", 3)]
    assert "2026-13-45" in report.problems[0].message
    assert sink.keys == ["acme-uk:DX-1", "acme-uk:DX-3"]
    assert [e.data.origin for e in sink.events] == ["export.csv:2", "export.csv:4"]
    assert {e.source for e in sink.events} == {"folder/dext-backup"}


async def test_overlapping_exports_send_each_item_once(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    folder = source(root, sink, tmp_path / "s.sqlite")
    write(root / "a.csv", HEADER + "DX-1,2026-08-01,Acme,A-1,10.00,0,GBP,\n")
    await folder.scan_once()
    write(
        root / "b.csv",
        HEADER
        + "DX-1,2026-08-01,Acme,A-1,10.00,0,GBP,\n"
        + "DX-2,2026-08-02,Beta,B-1,20.00,0,GBP,\n"
        + "DX-1,2026-08-01,Acme,A-1,99.00,0,GBP,\n",
    )
    write(root / "c.csv", HEADER + "DX-2,2026-08-02,Beta,B-1,21.00,0,GBP,\n")
    reports = {r.file: r for r in await folder.scan_once()}
    b = reports["b.csv"]
    assert (b.published, b.already_received) == (1, 1)
    assert [(p.line, "appears twice" in p.message) for p in b.problems] == [(4, True)]
    (changed,) = reports["c.csv"].problems
    assert changed.line == 2 and "already received (from b.csv:3) with different" in changed.message
    assert sink.keys == ["acme-uk:DX-1", "acme-uk:DX-2"]


async def test_documents_are_matched_by_name_or_by_reference(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    (root / "docs").mkdir()
    (root / "docs" / "Scan 0001.PDF").write_bytes(PDF)
    (root / "INV-77.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    write(
        root / "export.csv",
        "ID,Supplier,Invoice Number,Total,Image Name\n"
        "DX-1,Acme,A-1,1.00,scan 0001.pdf\n"
        "DX-2,Beta,B-1,2.00,not-synced-yet.pdf\n",
    )
    write(root / "refs.csv", "ID,Supplier,Invoice Number,Total\nDX-3,Gamma,INV-77,3.00\n")
    await source(root, sink, tmp_path / "s.sqlite").scan_once()
    docs = {e.subject: e.data.document for e in sink.events}
    first = docs["acme-uk:DX-1"]
    assert first is not None
    assert first.url == (root / "docs" / "Scan 0001.PDF").as_uri()
    assert first.filename == "Scan 0001.PDF"
    later = docs["acme-uk:DX-2"]
    assert later is not None and later.url == (root / "not-synced-yet.pdf").as_uri()
    by_reference = docs["acme-uk:DX-3"]
    assert by_reference is not None and by_reference.filename == "INV-77.png"
    assert by_reference.content_type == "image/png"


async def test_sub_folders_name_the_tenant(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    write(root / "globex" / "x.csv", "ID,Supplier,Total,Date\nDX-1,Acme,1.00,08/31/2026\n")
    write(root / "stray.csv", "ID,Supplier,Total\nDX-2,Acme,1.00\n")
    folder = source(root, sink, tmp_path / "s.sqlite", tenant=None)
    reports = {r.file: r for r in await folder.scan_once()}
    assert reports["globex/x.csv"].outcome == "processed"
    assert reports["stray.csv"].outcome == "skipped"
    assert "no tenant for this file" in reports["stray.csv"].problems[0].message
    (event,) = sink.events
    assert event.subject == "globex-us:DX-1"
    assert event.data.item["date"] == "2026-08-31"


async def test_json_items_in_the_folder(root: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    samples = sample_items(3)
    for s in samples:
        shutil.copy(s.document_path, root / s.document_path.name)
    write(root / "items.json", json.dumps([s.item for s in samples]))
    (report,) = await source(root, sink, tmp_path / "s.sqlite").scan_once()
    assert report.published == 3
    first = sink.events[0]
    assert first.data.document is not None
    assert first.data.document.url == (root / "DX-100001.pdf").as_uri()
    assert first.data.item["total_amount"] == samples[0].item["total_amount"]
    assert first.data.item["document"] == {
        "filename": "DX-100001.pdf",
        "content_type": "application/pdf",
    }


def test_a_folder_the_attach_stage_could_not_read_is_refused(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in tenant acme-uk's document_dirs"):
        ExportFolder(
            root,
            tenants=make_tenants(docs_dirs=[str(tmp_path / "elsewhere")]),
            sink=RecordingSink(),
            state=FolderState(tmp_path / "s.sqlite"),
            tenant="acme-uk",
        )


async def test_nothing_is_recorded_when_the_broker_fails(root: Path, tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"
    write(root / "a.csv", HEADER + "DX-1,2026-08-01,Acme,A-1,10.00,0,GBP,\n")
    with pytest.raises(ConnectionError):
        await source(root, RecordingSink(fail_after=0), state).scan_once()
    sink = RecordingSink()
    (report,) = await source(root, sink, state).scan_once()
    assert report.outcome == "processed" and sink.keys == ["acme-uk:DX-1"]


def test_a_csv_field_over_the_csv_modules_limit_is_a_problem_not_a_crash() -> None:
    # Found by make fuzz: a 260,000-character description crashed the folder source.
    from adapters.dext.csv_export import parse_csv
    from tests.support import make_tenants

    text = "ID,Supplier,Total\nDX-1,Acme,10.00\nDX-2," + "x" * 200_000 + ",5.00\nDX-3,B,1\n"
    parsed = parse_csv(text.encode(), make_tenants().get("acme-uk").conventions.date_order)
    assert [r.item["id"] for r in parsed.rows] == ["DX-1"]
    assert any("cannot be read" in message for _, message in parsed.problems)
