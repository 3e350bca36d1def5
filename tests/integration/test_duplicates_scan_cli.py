"""`billstream duplicates scan` as a user runs it: item files in order, one JSON line per
item (new, hold with its rule and the earlier items, duplicate, invalid with its problems),
the tenant's rules from the tenants file, and the exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.unit.conftest import make_item

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_TENANTS = REPO / "tenants.example.toml"  # acme-uk codes the sample items
TODAY = "2026-11-27"


def run(
    tmp_path: Path, *args: str, tenants: Path = EXAMPLE_TENANTS
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLSTREAM_TENANTS_FILE": str(tenants)}
    env["BILLSTREAM_DATA_DIR"] = str(tmp_path / "data")
    command = [sys.executable, "-m", "streams.cli", "duplicates", "scan", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def scan(tmp_path: Path, files: list[Path], **kwargs: Any) -> tuple[int, dict[str, dict[str, Any]]]:
    args = [str(f) for f in files] + ["--tenant", "acme-uk", "--json", "--today", TODAY]
    done = run(tmp_path, *args, **kwargs)
    assert done.returncode in (0, 1), done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, {line["key"]: line for line in lines}


def backlog(tmp_path: Path) -> list[Path]:
    (tmp_path / "DX-1.pdf").write_bytes(b"%PDF-1.4 the invoice")
    first = make_item(
        id="DX-1", invoice_number="INV-0042", document={"url": "DX-1.pdf", "filename": "DX-1.pdf"}
    )
    rest = [
        make_item(
            id="DX-2",
            invoice_number="42",
            payee="VIKING DIRECT LIMITED",
            document=None,
            date="2026-09-01",
            due_date="2026-10-01",
        ),
        make_item(
            id="DX-3",
            invoice_number="VD-2000",
            document={"filename": "DX-1.pdf"},
            date="2026-06-01",
            due_date="2026-07-01",
        ),
        make_item(id="DX-4", total_amount="abc"),
        make_item(id="DX-5", type="credit_note", document=None),  # credits DX-1: not a duplicate
        make_item(id="DX-6", document=None, date="2026-05-01", due_date="2026-05-31"),
        make_item(
            id="DX-7",
            invoice_number="VD-1007",
            document=None,
            date="2026-10-06",
            due_date="2026-11-05",
        ),
    ]
    rest[4]["invoice_number"] = "INV-0042"
    a, b = tmp_path / "a.json", tmp_path / "batch.json"
    a.write_text(json.dumps(first), "utf-8")
    b.write_text(json.dumps(rest), "utf-8")
    return [a, b]


def test_scan_names_each_decision_its_rule_and_the_earlier_item(tmp_path: Path) -> None:
    code, lines = scan(tmp_path, backlog(tmp_path))
    assert code == 1  # something was found
    assert list(lines) == [f"acme-uk:DX-{n}" for n in range(1, 8)]
    assert lines["acme-uk:DX-1"]["decision"] == "new"
    assert lines["acme-uk:DX-1"]["document_sha256"] is not None

    variant = lines["acme-uk:DX-2"]
    assert (variant["decision"], variant["rule"]) == ("hold", "number_variant")
    assert variant["matches"] == ["acme-uk:DX-1"]

    same_file = lines["acme-uk:DX-3"]
    assert (same_file["decision"], same_file["rule"]) == ("hold", "same_document")
    assert same_file["document_sha256"] == lines["acme-uk:DX-1"]["document_sha256"]
    assert same_file["matches"] == ["acme-uk:DX-1"]

    invalid = lines["acme-uk:DX-4"]
    assert invalid["decision"] == "invalid"
    assert [p["code"] for p in invalid["problems"]] == ["invalid_amount"]

    assert lines["acme-uk:DX-5"]["decision"] == "new" and lines["acme-uk:DX-5"]["credit_note"]

    exact = lines["acme-uk:DX-6"]
    assert (exact["decision"], exact["rule"]) == ("duplicate", "same_number")
    assert exact["matches"] == ["acme-uk:DX-1", "acme-uk:DX-2"]

    reissued = lines["acme-uk:DX-7"]  # five days after DX-1, the same total, a new number
    assert (reissued["decision"], reissued["rule"]) == ("hold", "same_total_near_date")
    assert reissued["matches"] == ["acme-uk:DX-1"]


def test_a_csv_export_is_checked_against_the_json_before_it(tmp_path: Path) -> None:
    files = backlog(tmp_path)[:1]
    export = tmp_path / "export.csv"
    export.write_text(
        "Date,Supplier,Invoice Number/Reference,Category,Total,Tax,Currency,Description,"
        "Payment Method,Paid,Image Name,Owner\n"
        "01/10/2026,Viking Direct Ltd.,INV 42,Office Supplies,180.00,30.00,GBP,Paper,"
        "Bank Transfer,No,DX-1.pdf,Jo\n",
        "utf-8",
    )
    code, lines = scan(tmp_path, [*files, export])
    (row,) = [line for key, line in lines.items() if key != "acme-uk:DX-1"]
    assert code == 1 and row["decision"] == "hold" and row["rule"] == "number_variant"
    assert set(row["rules"]) == {"number_variant", "same_document", "same_total_near_date"}


def test_nothing_found_is_exit_0_and_invalid_items_do_not_change_it(tmp_path: Path) -> None:
    a = tmp_path / "items.json"
    a.write_text(json.dumps([make_item(id="DX-1"), make_item(id="DX-2", total_amount="x")]))
    code, lines = scan(tmp_path, [a])
    assert code == 0
    assert [line["decision"] for line in lines.values()] == ["new", "invalid"]


def test_the_tenants_file_picks_the_rules(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        EXAMPLE_TENANTS.read_text("utf-8")
        + '\n[tenants.acme-uk.duplicates]\nrules = ["same_number"]\nwindow_days = 3\n',
        "utf-8",
    )
    code, lines = scan(tmp_path, backlog(tmp_path), tenants=tenants)
    decisions = {key.split(":")[1]: line["decision"] for key, line in lines.items()}
    assert decisions == {
        "DX-1": "new",
        "DX-2": "new",
        "DX-3": "new",
        "DX-4": "invalid",
        "DX-5": "new",
        "DX-6": "duplicate",
        "DX-7": "new",
    }
    assert code == 1


def test_readable_table_help_and_unusable_input(tmp_path: Path) -> None:
    files = backlog(tmp_path)
    done = run(tmp_path, *map(str, files), "--tenant", "acme-uk", "--today", TODAY)
    assert done.returncode == 1, done.stderr
    assert "hold      acme-uk:DX-2" in done.stdout and "number_variant: acme-uk:DX-1" in done.stdout
    helped = run(tmp_path, "--help")
    for word in (
        "same_number",
        "number_variant",
        "same_document",
        "same_total_near_date",
        "Exit status",
        "hold",
        "duplicate",
        "invalid",
    ):
        assert word in helped.stdout
    unknown = run(tmp_path, str(files[0]), "--tenant", "nobody")
    assert unknown.returncode == 2 and "unknown tenant 'nobody'" in unknown.stderr
