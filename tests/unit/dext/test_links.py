"""Dext document references: the log keeps ``dext://``; attach asks Dext for a fresh link."""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.dext.api import DextApiConfig, DextDocumentLinks
from adapters.dext.links import document_reference, parse_reference
from adapters.documents import DocumentFetcher
from domain.errors import Reason, StageError
from domain.models import DocumentRef
from tests.support import make_tenants

TENANTS = make_tenants()
ACME = TENANTS.get("acme-uk")
SIGNED = "https://docs.dext.example/v1/documents/acme-trading/DX%201/inv.pdf?signature=TOPSECRET"


def dext(requests: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        item = {"id": "DX 1", "document": {"url": SIGNED, "filename": "inv.pdf"}}
        return httpx.Response(status, content=json.dumps(item).encode())

    return httpx.MockTransport(handle)


def reference() -> DocumentRef:
    signed = DocumentRef(url=SIGNED, filename="inv.pdf", content_type="application/pdf")
    return document_reference("acme-trading", "DX 1", signed)


def test_a_reference_names_account_item_and_file_and_no_signature() -> None:
    ref = reference()
    assert ref.url == "dext://acme-trading/DX%201/inv.pdf"
    assert parse_reference(ref.url) == ("acme-trading", "DX 1", "inv.pdf")
    assert ref.filename == "inv.pdf" and ref.content_type == "application/pdf"
    for bad in ("https://x/y/z", "dext://acme/only-one", "dext:///a/b", "dext://a//b"):
        assert parse_reference(bad) is None


async def test_resolving_asks_dext_for_the_item_and_returns_a_fresh_link() -> None:
    requests: list[httpx.Request] = []
    config = DextApiConfig(url="https://api.dext.example", tokens={"acme-trading": "tok"})
    links = DextDocumentLinks(config, transport=dext(requests))
    fresh = await links(reference(), ACME)
    await links.aclose()
    assert fresh.url == SIGNED and fresh.filename == "inv.pdf"
    (request,) = requests
    assert request.url.raw_path == b"/v1/accounts/acme-trading/items/DX%201"
    assert request.headers["Authorization"] == "Bearer tok"


async def test_another_tenants_reference_is_refused_without_asking() -> None:
    requests: list[httpx.Request] = []
    config = DextApiConfig(url="https://api.dext.example", tokens={"globex": "tok"})
    links = DextDocumentLinks(config, transport=dext(requests))
    other = document_reference("globex", "DX-1", DocumentRef(url=SIGNED, filename="a.pdf"))
    with pytest.raises(StageError) as caught:
        await links(other, ACME)
    assert caught.value.reason is Reason.DOCUMENT_UNAVAILABLE and requests == []


async def test_an_item_dext_no_longer_has_is_document_unavailable() -> None:
    config = DextApiConfig(url="https://api.dext.example", tokens={"acme-trading": "tok"})
    links = DextDocumentLinks(config, transport=dext([], status=404))
    with pytest.raises(StageError) as caught:
        await links(reference(), ACME)
    assert caught.value.reason is Reason.DOCUMENT_UNAVAILABLE
    assert "TOPSECRET" not in caught.value.message


async def test_a_fetcher_without_the_dext_api_says_so() -> None:
    fetcher = DocumentFetcher(allowed_dirs=[])
    assert fetcher.check(reference(), ACME) is None
    with pytest.raises(StageError) as caught:
        await fetcher.fetch(reference(), ACME)
    assert "BILLSTREAM_DEXT_API_URL" in caught.value.message
