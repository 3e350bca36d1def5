"""``billstream validate`` run through click against the sample set and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import streams.cli.commands.validate  # noqa: F401  (registers the command on the group)
from domain.dext import find_floats
from streams.cli.base import cli
from tests.unit.conftest import SAMPLES, TENANTS_FILE

TODAY = ["--today", "2026-11-27"]


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["validate", *args], env=env, catch_exceptions=False)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_samples_folder_as_json() -> None:
    result = run(str(SAMPLES), "--tenants", str(TENANTS_FILE), "--json", *TODAY)
    assert result.exit_code == 0, result.output
    rows = json_lines(result)
    assert len(rows) == 69
    assert sum(r["ok"] for r in rows) == 62
    reasons = sorted(r["reason"] for r in rows if not r["ok"])
    assert reasons == ["currency_mismatch", "mapping_missing"] + ["validation"] * 5
    for row in rows:
        assert set(row) >= {"item", "ok", "problems", "invoice", "bill"}
        assert row["tenant"] == Path(row["source"]).parent.name  # from the folder name
        if row["ok"]:
            assert row["problems"] == []
            assert isinstance(row["bill"]["total"], str)  # amounts as strings
            assert isinstance(row["invoice"]["lines"][0]["net"], str)
            assert row["bill"]["item_key"] == f"{row['tenant']}:{row['item']}"
        else:
            assert row["invoice"] is None and row["bill"] is None
            assert all(set(p) == {"code", "field", "message"} for p in row["problems"])
    # Parsed with floats allowed, the output still holds none: every amount is a string.
    assert find_floats(json.loads(f"[{','.join(result.stdout.splitlines())}]")) == []


def test_readable_report() -> None:
    result = run(str(SAMPLES / "globex-us"), "--tenants", str(TENANTS_FILE), *TODAY)
    assert result.exit_code == 0
    assert "ok   DX-100060  globex-us  Delta Air Lines, Inc." in result.stdout
    assert "credit note" in result.stdout
    assert "FAIL DX-100066  globex-us  mapping_missing" in result.stdout
    assert "[mapping_missing]: Category 'Entertainment' (lines 1, 2)" in result.stdout
    assert result.stdout.rstrip().endswith(
        "26 items: 23 ok, 3 failed (mapping_missing 1, validation 2)"
    )


def test_a_json_array_file_with_an_explicit_tenant(tmp_path: Path) -> None:
    items = [json.loads(p.read_text()) for p in sorted((SAMPLES / "acme-uk").glob("*.json"))[:3]]
    array = tmp_path / "export.json"
    array.write_text(json.dumps(items))
    result = run(str(array), "--tenants", str(TENANTS_FILE), "--tenant", "acme-uk", "--json")
    rows = json_lines(result)
    assert [r["source"] for r in rows] == [f"{array}[{i}]" for i in range(3)]
    assert {r["tenant"] for r in rows} == {"acme-uk"}


def test_default_tenants_file_comes_from_the_environment(tmp_path: Path) -> None:
    item = tmp_path / "acme-uk" / "one.json"
    item.parent.mkdir()
    shutil.copy(SAMPLES / "acme-uk" / "DX-100001.json", item)
    result = run(str(item), "--json", *TODAY, env={"BILLSTREAM_TENANTS_FILE": str(TENANTS_FILE)})
    assert result.exit_code == 0, result.output
    (row,) = json_lines(result)
    assert row["ok"] and row["tenant"] == "acme-uk"


def test_a_file_with_one_tenant_needs_no_tenant_option(tmp_path: Path) -> None:
    tenants = tmp_path / "one.toml"
    tenants.write_text(
        '[tenants.solo]\nbase_currency = "GBP"\nlocale = "en-GB"\nledger = { company = "s" }\n'
        '[tenants.solo.gl_accounts]\n"Office Supplies" = "7500"\n'
    )
    item = tmp_path / "item.json"
    item.write_text(json.dumps({"id": "X-1", "payee": "Acme", "currency": "GBP"}))
    result = run(str(item), "--tenants", str(tenants), "--json")
    assert result.exit_code == 0  # the item fails validation; the command does not
    (row,) = json_lines(result)
    assert row["tenant"] == "solo" and not row["ok"]
    assert {p["field"] for p in row["problems"]} >= {"invoice_number", "date", "total_amount"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "entry 0 is a string or number, not a JSON object"),
        (b"[{}, null]", "entry 1 is null, not a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_unreadable_input_exits_2_with_the_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    bad = tmp_path / "acme-uk" / "bad.json"
    bad.parent.mkdir()
    bad.write_bytes(content)
    result = run(str(tmp_path), "--tenants", str(TENANTS_FILE))
    assert result.exit_code == 2
    assert str(bad) in result.stderr and reason in result.stderr
    assert result.stdout == ""  # nothing half-done is printed


def test_missing_path_exits_2() -> None:
    result = run("/no/such/place", "--tenants", str(TENANTS_FILE))
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


def test_empty_folder_exits_2(tmp_path: Path) -> None:
    result = run(str(tmp_path), "--tenants", str(TENANTS_FILE))
    assert result.exit_code == 2 and "no .json files found" in result.stderr


def test_bad_tenants_file_exits_2_naming_line_and_key(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        TENANTS_FILE.read_text().replace('closed_period = "hold"', 'closed_period = "x"', 1)
    )
    result = run(str(SAMPLES), "--tenants", str(tenants))
    assert result.exit_code == 2
    assert f"{tenants}:" in result.stderr and "tenants.acme-uk.closed_period" in result.stderr


def test_missing_tenants_file_exits_2(tmp_path: Path) -> None:
    result = run(str(SAMPLES), "--tenants", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "cannot read tenants file" in result.stderr


def test_unknown_tenant_exits_2() -> None:
    result = run(str(SAMPLES), "--tenants", str(TENANTS_FILE), "--tenant", "nobody")
    assert result.exit_code == 2 and "known: acme-uk, globex-us" in result.stderr


def test_tenant_cannot_be_guessed_exits_2(tmp_path: Path) -> None:
    item = tmp_path / "inbox" / "item.json"
    item.parent.mkdir()
    shutil.copy(SAMPLES / "acme-uk" / "DX-100001.json", item)
    result = run(str(item), "--tenants", str(TENANTS_FILE))
    assert result.exit_code == 2 and "use --tenant" in result.stderr
