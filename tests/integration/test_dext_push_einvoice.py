"""E-invoices by the signed push endpoint: a UBL, CII or Factur-X body is one item, kept as a
file the attach stage reads; bad ones are 400 with each problem's code; twice is once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adapters.dext.push import PushEndpoint, PushState, secret_env, secrets_from_env, signed_headers
from adapters.dext.web import start_app
from adapters.documents import DocumentFetcher
from adapters.einvoice import errors as E
from adapters.einvoice.arithmetic import TAX_INCLUSIVE
from tests.support import RecordingSink, make_tenants

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "einvoices"
SECRET = "s3cret-for-acme-uk-pushes"
UBL = (FIXTURES / "01.01a-INVOICE_ubl.xml").read_bytes()


@dataclass
class Push:
    url: str
    sink: RecordingSink
    client: httpx.AsyncClient
    docs: Path

    async def send(self, body: bytes, content_type: str, **headers: str) -> httpx.Response:
        signed = signed_headers("acme-uk", SECRET, body) | {"Content-Type": content_type}
        return await self.client.post(self.url, content=body, headers=signed | headers)


@pytest.fixture
async def push(tmp_path: Path) -> AsyncIterator[Push]:
    docs = tmp_path / "docs"
    tenants = make_tenants(docs_dirs=[str(docs)])
    sink = RecordingSink()
    endpoint = PushEndpoint(
        tenants=tenants,
        secrets=secrets_from_env(tenants.all(), {secret_env("acme-uk"): SECRET}),
        sink=sink,
        state=PushState(tmp_path / "push.sqlite"),
        documents=DocumentFetcher(allowed_dirs=[]),
    )
    runner, base = await start_app(endpoint.app())
    async with httpx.AsyncClient() as client:
        yield Push(f"{base}/v1/items", sink, client, docs)
    await runner.cleanup()


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("01.01a-INVOICE_ubl.xml", "application/xml"),
        ("CII_example4.xml", "text/xml; charset=utf-8"),
        ("ubl-tc434-creditnote1.xml", "application/json"),  # recognised by its content
        ("EN16931_Einfach.pdf", "application/pdf"),
    ],
)
async def test_an_einvoice_body_is_one_item_with_a_readable_document(
    push: Push, name: str, content_type: str
) -> None:
    data = (FIXTURES / name).read_bytes()
    answer = await push.send(data, content_type, **{"X-Billstream-Filename": name})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"
    (event,) = push.sink.events
    assert event.subject == answer.json()["key"]
    assert event.source == "push"
    received = event.data
    assert received.item["source_format"] in ("ubl-invoice", "ubl-creditnote", "cii", "facturx-pdf")  # type: ignore[union-attr]
    assert received.item["einvoice"]["original_filename"] == name  # type: ignore[union-attr]
    ref = received.document  # type: ignore[union-attr]
    assert ref is not None and ref.content_type == "application/pdf"
    assert ref.filename == f"{Path(name).stem}.pdf"
    # The attach stage can read it: the tenant's document folder, and a real PDF.
    tenant = make_tenants(docs_dirs=[str(push.docs)]).get("acme-uk")
    document = await DocumentFetcher(allowed_dirs=[]).fetch(ref, tenant)
    assert document.content_type == "application/pdf"


async def test_the_same_einvoice_twice_is_one_item(push: Push) -> None:
    first = await push.send(UBL, "application/xml")
    second = await push.send(UBL, "application/xml")
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["status"] == "duplicate"
    assert len(push.sink.events) == 1
    kept = sorted(p.name for p in (push.docs / ".billstream" / "pushed").iterdir())
    assert len(kept) == 2 and kept[0].endswith(".pdf") != kept[1].endswith(".pdf")


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
            "application/xml",
            E.FORBIDDEN_XML,
        ),
        (b"<Order xmlns='urn:example'/>", "application/xml", E.UNKNOWN_FORMAT),
        (b"not xml at all", "application/xml", E.NOT_XML),
        (b"%PDF-1.7\n%%EOF\n", "application/pdf", E.BROKEN_PDF),
        (UBL.replace(b">336.9<", b">363.9<", 1), "application/xml", TAX_INCLUSIVE),
    ],
)
async def test_a_bad_einvoice_is_400_with_its_code(
    push: Push, body: bytes, content_type: str, code: str
) -> None:
    answer = await push.send(body, content_type)
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == "invalid_einvoice"
    assert code in {p["code"] for p in answer.json()["problems"]}
    assert push.sink.events == []


async def test_an_unsigned_einvoice_is_401(push: Push) -> None:
    headers = signed_headers("acme-uk", "another-secret-of-length", UBL)
    answer = await push.client.post(
        push.url, content=UBL, headers=headers | {"Content-Type": "application/xml"}
    )
    assert answer.status_code == 401
    assert push.sink.events == []


async def test_a_tenant_without_a_document_folder_is_told(tmp_path: Path) -> None:
    tenants = make_tenants()
    endpoint = PushEndpoint(
        tenants=tenants,
        secrets=secrets_from_env(tenants.all(), {secret_env("acme-uk"): SECRET}),
        sink=RecordingSink(),
        state=PushState(tmp_path / "push.sqlite"),
        documents=DocumentFetcher(allowed_dirs=[]),
    )
    runner, base = await start_app(endpoint.app())
    try:
        async with httpx.AsyncClient() as client:
            headers = signed_headers("acme-uk", SECRET, UBL) | {"Content-Type": "application/xml"}
            answer = await client.post(f"{base}/v1/items", content=UBL, headers=headers)
    finally:
        await runner.cleanup()
    assert answer.status_code == 400
    assert answer.json()["reason"] == "no_document_folder"
