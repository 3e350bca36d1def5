"""``billstream ingest inspect`` through click: every source format read as the folder reads
it, and each kind of bad file named with a code, reported, never a crash or a hang."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pypdf import PdfWriter

import streams.cli.commands.ingest_inspect  # noqa: F401  (registers the command)
from adapters.dext.files import read_file
from adapters.einvoice import errors as E
from streams.cli.base import cli
from tests.unit.conftest import SAMPLES, TENANTS_FILE
from tests.unit.einvoice.test_hostile import BILLION_LAUGHS, EXTERNAL_ENTITY, pdf_with

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "einvoices"
CSV = b"Supplier,Date,Total,Tax,Invoice Number,Currency\nAcme Ltd,03/04/2026,12.00,2.00,INV-1,GBP\n"


def run(*args: str) -> Result:
    env = {"BILLSTREAM_TENANTS_FILE": str(TENANTS_FILE)}
    return CliRunner().invoke(cli, ["ingest", "inspect", *args], env=env, catch_exceptions=False)


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def plain_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_every_format_gives_its_items_with_source_format(tmp_path: Path) -> None:
    for name in ("base-example.xml", "CII_example4.xml", "EN16931_Einfach.pdf"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    shutil.copy(FIXTURES / "ubl-tc434-creditnote1.xml", tmp_path / "credit.xml")
    shutil.copy(SAMPLES / "acme-uk" / "DX-100001.json", tmp_path / "item.json")
    (tmp_path / "export.csv").write_bytes(CSV)
    result = run(str(tmp_path), "--date-order", "DMY", "--json")
    assert result.exit_code == 0, result.output
    by_origin = {line["origin"]: line for line in lines(result)}
    formats = {Path(o).name: line["source_format"] for o, line in by_origin.items()}
    assert formats == {
        "CII_example4.xml": "cii",
        "EN16931_Einfach.pdf": "facturx-pdf",
        "base-example.xml": "ubl-invoice",
        "credit.xml": "ubl-creditnote",
        "export.csv:2": "dext-csv",
        "item.json#1": "dext-json",
    }
    row = by_origin[f"{tmp_path}/export.csv:2"]
    assert (row["payee"], row["date"], row["total_amount"]) == ("Acme Ltd", "2026-04-03", "12.00")
    assert by_origin[f"{tmp_path}/credit.xml"]["type"] == "credit_note"
    item = by_origin[f"{tmp_path}/item.json#1"]
    assert item["id"] == "DX-100001"
    assert "url" not in item.get("document", {})  # the location travels beside the item


def test_csv_dates_follow_the_tenant_or_the_order_given(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes(CSV)
    (us,) = lines(run(str(export), "--tenant", "globex-us", "--json"))
    assert us["date"] == "2026-03-04"
    (dmy,) = lines(run(str(export), "--date-order", "dmy", "--json"))
    assert dmy["date"] == "2026-04-03"
    result = run(str(export), "--json")
    assert result.exit_code == 1
    (report,) = lines(result)
    assert report["items"] == 0
    assert report["problems"][0]["line"] == 2
    assert "could be 3 April or 4 March" in report["problems"][0]["message"]


def test_an_unknown_tenant_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(CSV)
    result = CliRunner().invoke(
        cli,
        ["ingest", "inspect", str(tmp_path / "e.csv"), "--tenant", "nobody"],
        env={"BILLSTREAM_TENANTS_FILE": str(TENANTS_FILE)},
    )
    assert result.exit_code == 2
    assert "unknown tenant 'nobody'" in result.output


def wrong_namespace() -> bytes:
    ubl = (FIXTURES / "base-example.xml").read_bytes()
    return ubl.replace(
        b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
        b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-3",
    )


def unknown_currency() -> bytes:
    data = (FIXTURES / "01.01a-INVOICE_ubl.xml").read_bytes()
    return data.replace(b">EUR<", b">EUX<").replace(b'"EUR"', b'"EUX"')


HOSTILE: dict[str, tuple[bytes, str]] = {
    "bomb.xml": (BILLION_LAUGHS, E.FORBIDDEN_XML),
    "entity.xml": (EXTERNAL_ENTITY, E.FORBIDDEN_XML),
    "namespace.xml": (wrong_namespace(), E.UNKNOWN_FORMAT),
    "truncated.xml": ((FIXTURES / "base-example.xml").read_bytes()[:900], E.NOT_XML),
    "broken-inside.pdf": (pdf_with({"factur-x.xml": b"<rsm:Cross"}), E.NOT_XML),
    "huge.xml": (b"<a>" + b" " * (50 * 1024 * 1024) + b"</a>", E.TOO_LARGE),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_bad_file_is_reported_with_its_code(tmp_path: Path, name: str) -> None:
    data, code = HOSTILE[name]
    (tmp_path / name).write_bytes(data)
    (tmp_path / "good.xml").write_bytes((FIXTURES / "base-example.xml").read_bytes())
    result = run(str(tmp_path), "--json")
    assert result.exit_code == 1
    found = {Path(line.get("file") or line["origin"]).name: line for line in lines(result)}
    assert found["good.xml"]["source_format"] == "ubl-invoice"  # the others still read
    report = found[name]
    assert report["items"] == 0
    assert [p["code"] for p in report["problems"]] == [code]
    assert report["problems"][0]["message"]


def test_an_unknown_currency_reads_and_validation_names_it(tmp_path: Path) -> None:
    (tmp_path / "xyz.xml").write_bytes(unknown_currency())
    (line,) = lines(run(str(tmp_path / "xyz.xml"), "--json"))
    assert line["currency"] == "EUX" and "validation" not in line  # reading knows no tenant
    result = run(str(tmp_path / "xyz.xml"), "--tenant", "acme-uk", "--json")
    assert result.exit_code == 1
    (line,) = lines(result)
    assert line["validation"]["ok"] is False
    assert "invalid_currency" in {p["code"] for p in line["validation"]["problems"]}


def test_with_a_tenant_each_item_is_validated(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "acme-uk" / "DX-100001.json", tmp_path / "item.json")
    result = run(str(tmp_path / "item.json"), "--tenant", "acme-uk", "--json")
    assert result.exit_code == 0, result.output
    (line,) = lines(result)
    assert line["validation"] == {"ok": True, "reason": None, "problems": []}


def test_a_pdf_without_an_invoice(tmp_path: Path) -> None:
    (tmp_path / "receipt.pdf").write_bytes(plain_pdf())
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    result = run(str(tmp_path), "--json")
    assert result.exit_code == 0  # in a folder they are documents of other items
    found = {Path(line["file"]).name: line for line in lines(result)}
    assert set(found) == {"receipt.pdf", "broken.pdf"}
    for report in found.values():
        assert (report["items"], report["problems"]) == (0, [])
        assert "no invoice inside" in report["notes"][0]


def test_bad_rows_and_good_rows_of_one_file(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(CSV + b"Beta Ltd,xx,1.00,0,B-1,GBP\n")
    result = run(str(tmp_path / "e.csv"), "--date-order", "DMY", "--json")
    assert result.exit_code == 1
    item, report = lines(result)
    assert item["payee"] == "Acme Ltd"
    assert (report["items"], report["problems"][0]["line"]) == (1, 3)


def test_readable_output_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "bomb.xml").write_bytes(BILLION_LAUGHS)
    result = run(str(tmp_path / "bomb.xml"))
    assert result.exit_code == 1
    assert f"[{E.FORBIDDEN_XML}]" in result.stdout


def test_the_folder_reads_what_inspect_shows(tmp_path: Path) -> None:
    """One reader for both: the file read here is the one ExportFolder reads."""
    data = (FIXTURES / "CII_example4.xml").read_bytes()
    read = read_file("x.xml", "x.xml", data, None)
    (line,) = lines(run(str(_write(tmp_path / "x.xml", data)), "--json"))
    assert {k: v for k, v in line.items() if k in read.items[0].item} == read.items[0].item


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
