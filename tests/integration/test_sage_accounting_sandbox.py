"""The Sage Accounting sandbox over HTTP: Sage's wire format, checked against the Swagger file.

Every answer these tests receive goes through ``check_response``, so a sandbox that drifts
from Sage's schema fails here. The list filters are held to what the Swagger says: ``search``
is the invoice reference or contact name (a case-insensitive substring, never
``vendor_reference``), dates are inclusive, ``*_since`` takes the two documented forms.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from adapters.sage_accounting import wire
from adapters.sage_accounting.schema import check_request, check_response
from sandboxes.sage_accounting.harness import SandboxProcess

TAX = [
    {"id": "GB_STANDARD", "name": "S20", "percentage": "20"},
    {"id": "GB_ZERO", "name": "Z0", "percentage": "0"},
]


class Api:
    """A tiny Sage client for poking the sandbox: validates what it sends and receives."""

    def __init__(self, sb: SandboxProcess, business: str, refresh: str) -> None:
        self.sb, self.business = sb, business
        creds = sb.credentials
        r = httpx.post(
            f"{sb.url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        )
        r.raise_for_status()
        self.token = r.json()["access_token"]

    def __call__(
        self,
        op_id: str,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        *,
        check: bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        if check:
            check_request(op_id, body, params)
        r = httpx.request(
            method,
            f"{self.sb.url}/v3.1{path}",
            params=params,
            content=None if body is None else wire.dumps(body),
            headers={
                "Authorization": f"Bearer {self.token}",
                "X-Business": self.business,
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        if "json" in r.headers.get("content-type", ""):
            check_response(op_id, r.status_code, wire.loads(r.content))
        return r


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess() as sb:
        yield sb


@pytest.fixture
def api(sandbox: SandboxProcess) -> Api:
    business, refresh = sandbox.new_business({"tax_rates": TAX})
    return Api(sandbox, business, refresh)


def vendor(api: Api, name: str = "Paper Co", **extra: Any) -> dict[str, Any]:
    r = api(
        "postContacts",
        "POST",
        "/contacts",
        {"contact": {"name": name, "contact_type_ids": ["VENDOR"], **extra}},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def account(api: Api, code: int) -> str:
    r = api(
        "getLedgerAccounts",
        "GET",
        "/ledger_accounts",
        params={"attributes": "nominal_code", "items_per_page": "200"},
    )
    return str(next(a["id"] for a in r.json()["$items"] if a["nominal_code"] == code))


def invoice(api: Api, contact: str, day: str = "2026-10-15", **extra: Any) -> dict[str, Any]:
    return {
        "purchase_invoice": {
            "contact_id": contact,
            "date": day,
            "due_date": "2026-11-30",
            "vendor_reference": "INV-1",
            "invoice_lines": [
                {
                    "description": "Paper",
                    "ledger_account_id": account(api, 7500),
                    "quantity": wire.loads(b"2")[0] if False else 2,
                    "unit_price": wire.loads(b"[50.00]")[0],
                    "tax_rate_id": "GB_STANDARD",
                    "tax_amount": wire.loads(b"[20.00]")[0],
                }
            ],
            **extra,
        }
    }


def test_ready_line(sandbox: SandboxProcess) -> None:
    ready = sandbox.ready
    parts = urlsplit(ready["url"])
    assert parts.hostname == "127.0.0.1" and parts.port and parts.port > 0
    assert set(ready["credentials"]) == {
        "client_id",
        "client_secret",
        "business_id",
        "refresh_token",
    }
    assert ready["credentials"]["business_id"] == "0d40342d0287cd6b13555c54afca6c90"


def test_authorization_code_flow(sandbox: SandboxProcess) -> None:
    creds = sandbox.credentials
    redirect = "http://127.0.0.1:1/callback"
    r = httpx.get(
        f"{sandbox.url}/oauth2/auth/central",
        params={
            "filter": "apiv3.1",
            "client_id": creds["client_id"],
            "response_type": "code",
            "redirect_uri": redirect,
            "state": "xyz",
            "scope": "full_access",
        },
    )
    assert r.status_code == 302
    q = parse_qs(urlsplit(r.headers["Location"]).query)
    assert q["state"] == ["xyz"]
    form = {
        "grant_type": "authorization_code",
        "code": q["code"][0],
        "redirect_uri": redirect,
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
    }
    bad = httpx.post(f"{sandbox.url}/token", data={**form, "redirect_uri": redirect + "x"})
    assert bad.status_code == 400 and bad.json() == {"error": "invalid_grant"}
    wrong = httpx.post(f"{sandbox.url}/token", data={**form, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}
    # the wrong-redirect attempt used the code up: codes work once
    assert httpx.post(f"{sandbox.url}/token", data=form).status_code == 400


def test_token_response_shape(sandbox: SandboxProcess) -> None:
    creds = sandbox.credentials
    _, refresh = sandbox.new_business()
    r = httpx.post(
        f"{sandbox.url}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    data = r.json()
    assert data["token_type"] == "bearer" and data["expires_in"] == 300
    assert data["refresh_token_expires_in"] == 2_678_400
    assert data["refresh_token"] != refresh


def test_idempotency_id_replays_and_refuses_another_type(api: Api) -> None:
    body = {
        "contact": {"name": "Once Only", "contact_type_ids": ["VENDOR"], "idempotency_id": "a" * 32}
    }
    first = api("postContacts", "POST", "/contacts", body)
    second = api("postContacts", "POST", "/contacts", body)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    listed = api("getContacts", "GET", "/contacts", params={"search": "Once Only"})
    assert listed.json()["$total"] == 1
    contact = first.json()["id"]
    clash = api(
        "postPurchaseInvoices",
        "POST",
        "/purchase_invoices",
        invoice(api, contact, idempotency_id="a" * 32),
    )
    assert clash.status_code == 422
    assert clash.json()[0]["$dataCode"] == "IdempotencyResourceMismatch"


def test_validation_errors_come_as_sages_array(api: Api) -> None:
    contact = vendor(api)["id"]
    body = invoice(api, contact)
    line = body["purchase_invoice"]["invoice_lines"][0]
    line["ledger_account_id"] = "nope"
    del line["tax_amount"]
    body["purchase_invoice"]["vendor_reference"] = "X" * 32
    r = api("postPurchaseInvoices", "POST", "/purchase_invoices", body)
    assert r.status_code == 422
    sources = {i["$source"] for i in r.json()}
    assert sources == {
        "invoice_lines[0].ledger_account_id",
        "invoice_lines[0].tax_amount",
        "vendor_reference",
    }


def test_schema_breaking_requests_are_refused(sandbox: SandboxProcess, api: Api) -> None:
    before = sandbox.stats()["schema_violations"]
    r = api(
        "postContacts",
        "POST",
        "/contacts",
        {"contact": {"name": "X", "contact_type_ids": ["VENDOR"], "nmae": "typo"}},
        check=False,
    )
    assert r.status_code == 422 and "nmae" in r.text
    r = api("getContacts", "GET", "/contacts", params={"items_per_page": "500"}, check=False)
    assert r.status_code == 422
    assert sandbox.stats()["schema_violations"] == before + 2


def test_lock_date_refuses_earlier_dates(sandbox: SandboxProcess, api: Api) -> None:
    contact = vendor(api)["id"]
    sandbox.admin("POST", f"businesses/{api.business}/lock_date", {"date": "2026-03-31"})
    r = api(
        "postPurchaseInvoices", "POST", "/purchase_invoices", invoice(api, contact, "2026-03-31")
    )
    assert r.status_code == 422 and r.json()[0]["$source"] == "date"
    settings = api("getFinancialSettings", "GET", "/financial_settings").json()
    assert settings["year_end_lockdown_date"] == "2026-03-31"
    ok = api(
        "postPurchaseInvoices", "POST", "/purchase_invoices", invoice(api, contact, "2026-04-01")
    )
    assert ok.status_code == 201
    assert wire.loads(ok.content)["total_amount"] == Decimal("120.00")
    assert ok.json()["status"]["id"] == "UNPAID"


def test_draft_release_and_delete(api: Api) -> None:
    contact = vendor(api)["id"]
    made = api(
        "postPurchaseInvoices",
        "POST",
        "/purchase_invoices",
        invoice(api, contact, status_id="DRAFT"),
    ).json()
    assert made["status"]["id"] == "DRAFT"
    released = api(
        "postPurchaseInvoicesKeyRelease", "POST", f"/purchase_invoices/{made['id']}/release"
    )
    assert released.status_code == 201 and released.json()["status"]["id"] == "UNPAID"
    assert (
        api("deletePurchaseInvoicesKey", "DELETE", f"/purchase_invoices/{made['id']}").status_code
        == 204
    )
    assert (
        api("getPurchaseInvoicesKey", "GET", f"/purchase_invoices/{made['id']}").status_code == 404
    )


def test_attachments(api: Api) -> None:
    contact = vendor(api)["id"]
    bill = api("postPurchaseInvoices", "POST", "/purchase_invoices", invoice(api, contact)).json()
    content = b"%PDF-1.4 tiny"
    body = {
        "attachment": {
            "file": base64.b64encode(content).decode(),
            "file_name": "a.pdf",
            "mime_type": "application/pdf",
            "file_size": len(content),
            "attachment_context_type_id": "PURCHASE_INVOICE",
            "attachment_context_id": bill["id"],
        }
    }
    made = api("postAttachments", "POST", "/attachments", body)
    assert made.status_code == 201 and made.json()["file_size"] == len(content)
    one_filter = api(
        "getAttachments", "GET", "/attachments", params={"attachment_context_id": bill["id"]}
    )
    assert one_filter.status_code == 422  # Sage: the two context filters go together
    listed = api(
        "getAttachments",
        "GET",
        "/attachments",
        params={
            "attachment_context_type_id": "PURCHASE_INVOICE",
            "attachment_context_id": bill["id"],
            "attributes": "file,file_name",
        },
    ).json()
    assert base64.b64decode(listed["$items"][0]["file"]) == content
    big = b"0" * 2_621_441
    too_big = {"attachment": {**body["attachment"], "file": base64.b64encode(big).decode()}}
    del too_big["attachment"]["file_size"]
    r = api("postAttachments", "POST", "/attachments", too_big)
    assert r.status_code == 422 and r.json()[0]["$source"] == "file_size"


def test_unknown_business_and_bad_token(api: Api) -> None:
    r = api("getFinancialSettings", "GET", "/financial_settings", headers={"X-Business": "f" * 32})
    assert r.status_code == 404
    r = api(
        "getFinancialSettings",
        "GET",
        "/financial_settings",
        headers={"Authorization": "Bearer nope"},
    )
    assert r.status_code == 401 and r.json()[0]["$dataCode"] == "AuthenticationFailure"


def test_rate_limit_answers_429_with_retry_after() -> None:
    with SandboxProcess(["--rate-limit", "5", "--rate-window", "30"]) as sb:
        business, refresh = sb.new_business()
        api = Api(sb, business, refresh)
        codes = [api("getTaxRates", "GET", "/tax_rates").status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        r = api("getTaxRates", "GET", "/tax_rates")
        assert 1 <= int(r.headers["Retry-After"]) <= 30
        assert r.json()[0]["$dataCode"] == "TooManyRequests"
        assert sb.stats()["throttled"] == 3


def test_faults_before_and_after_the_work() -> None:
    with SandboxProcess(["--fail-rate", "1", "--fail-mode", "before"]) as sb:
        business, refresh = sb.new_business()
        api = Api(sb, business, refresh)
        r = api(
            "postContacts",
            "POST",
            "/contacts",
            {"contact": {"name": "Lost", "contact_type_ids": ["VENDOR"]}},
        )
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        sb.set_faults(fail_modes=["after"])
        r = api(
            "postContacts",
            "POST",
            "/contacts",
            {"contact": {"name": "Kept", "contact_type_ids": ["VENDOR"]}},
        )
        assert r.status_code == 502 and "text/html" in r.headers["content-type"]
        assert sb.inventory(business)["vendors"] == 1  # the work happened, the answer did not


def test_access_tokens_expire(tmp_path: Path) -> None:
    with SandboxProcess(["--access-token-ttl", "1"]) as sb:
        business, refresh = sb.new_business()
        api = Api(sb, business, refresh)
        assert api("getTaxRates", "GET", "/tax_rates").status_code == 200
        import time

        # The time passing is the scenario, not a wait for an event: the sandbox, another
        # process, reads the wall clock and takes no clock of ours, and a TTL is whole seconds.
        # 1.2 s after the token was minted it is past its 1 s life, every time.
        time.sleep(1.2)
        assert api("getTaxRates", "GET", "/tax_rates").status_code == 401


def test_state_dir_survives_a_restart(tmp_path: Path) -> None:
    args = ["--state-dir", str(tmp_path / "state"), "--closed-before", "2026-01-01"]
    with SandboxProcess(args) as sb:
        business = sb.credentials["business_id"]
        api = Api(sb, business, sb.credentials["refresh_token"])
        vendor(api, "Persistent Ltd")
        creds = sb.credentials
        refresh = httpx.post(
            f"{sb.url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": creds["refresh_token"],
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        )  # the first grant was used by Api(); a new one is needed for later
        assert refresh.status_code == 400
        _, spare = sb.new_business()
    with SandboxProcess(args) as sb:
        again = Api(sb, business, spare)  # a token minted before the restart still works
        listed = again("getContacts", "GET", "/contacts", params={"search": "Persistent"})
        assert listed.json()["$total"] == 1
        settings = again("getFinancialSettings", "GET", "/financial_settings").json()
        assert (
            settings["year_end_lockdown_date"]
            == (dt.date(2026, 1, 1) - dt.timedelta(days=1)).isoformat()
        )


# -- list filters and line rules, as strict as Sage documents them -----------------------------


PDF_B64 = base64.b64encode(b"%PDF-1.4 tiny").decode()


def post_invoice(api: Api, contact: str, **extra: Any) -> dict[str, Any]:
    r = api("postPurchaseInvoices", "POST", "/purchase_invoices", invoice(api, contact, **extra))
    assert r.status_code == 201, r.text
    return dict(r.json())


def listed(api: Api, **params: str) -> list[str]:
    r = api("getPurchaseInvoices", "GET", "/purchase_invoices", params=params)
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["$items"]]


def test_search_is_the_reference_or_contact_name_not_the_vendor_reference(api: Api) -> None:
    paper = vendor(api, "Paper Co")
    ink = vendor(api, "Inkwell Supplies")
    a = post_invoice(api, paper["id"], reference="Ref-ALPHA-7", vendor_reference="SUP-123")
    b = post_invoice(api, ink["id"], reference="other", vendor_reference="SUP-456")
    assert listed(api, search="alpha") == [a["id"]]  # substring, any case
    assert listed(api, search="INKWELL") == [b["id"]]  # the contact name
    assert listed(api, search="SUP-123") == []  # vendor_reference is not searched
    assert listed(api, search="ref", contact_id=ink["id"]) == []


def test_from_date_and_to_date_are_inclusive(api: Api) -> None:
    v = vendor(api)
    days = ["2026-10-01", "2026-10-15", "2026-10-31"]
    made = [post_invoice(api, v["id"], day=d)["id"] for d in days]
    assert listed(api, from_date="2026-10-15") == made[1:]
    assert listed(api, to_date="2026-10-15") == made[:2]
    assert listed(api, from_date="2026-10-15", to_date="2026-10-15") == [made[1]]
    r = api("getPurchaseInvoices", "GET", "/purchase_invoices", params={"from_date": "15/10/2026"})
    assert r.status_code == 422
    assert r.json()[0]["$source"] == "from_date"


def test_updated_or_created_since_is_inclusive_and_takes_both_forms(api: Api) -> None:
    v = vendor(api)
    old = post_invoice(api, v["id"])
    time.sleep(0.01)
    new = post_invoice(api, v["id"])
    at = dt.datetime.fromisoformat(new["created_at"].replace("Z", "+00:00"))
    assert listed(api, updated_or_created_since=at.isoformat()) == [new["id"]]
    earlier = (at - dt.timedelta(microseconds=1)).isoformat()
    assert listed(api, updated_or_created_since=earlier) == [new["id"]]
    today = at.date().isoformat()
    both = listed(api, updated_or_created_since=f"{today}T+00:00")
    assert both == [old["id"], new["id"]]
    tomorrow = (at.date() + dt.timedelta(days=1)).isoformat()
    assert listed(api, updated_or_created_since=f"{tomorrow}T+00:00") == []
    for bad in ("yesterday", "2026-10-15T10:00:00"):  # no offset: not a form Sage takes
        r = api(
            "getPurchaseInvoices",
            "GET",
            "/purchase_invoices",
            params={"updated_or_created_since": bad},
        )
        assert r.status_code == 422, bad


def test_has_attachments(api: Api) -> None:
    v = vendor(api)
    bare = post_invoice(api, v["id"])
    filed = post_invoice(api, v["id"])
    r = api(
        "postAttachments",
        "POST",
        "/attachments",
        {
            "attachment": {
                "file": PDF_B64,
                "file_name": "a.pdf",
                "mime_type": "application/pdf",
                "file_size": len(base64.b64decode(PDF_B64)),
                "attachment_context_type_id": "PURCHASE_INVOICE",
                "attachment_context_id": filed["id"],
            }
        },
    )
    assert r.status_code == 201, r.text
    assert listed(api, has_attachments="true") == [filed["id"]]
    assert listed(api, has_attachments="false") == [bare["id"]]


def test_contacts_filter_by_the_contact_persons_email(api: Api) -> None:
    a = vendor(api, "Mail One", main_contact_person={"name": "Ann", "email": "ann@one.example"})
    vendor(api, "Mail Two", main_contact_person={"email": "bob@two.example"})
    vendor(api, "No Mail")
    r = api("getContacts", "GET", "/contacts", params={"email": "ANN@one.example"})
    assert [c["id"] for c in r.json()["$items"]] == [a["id"]]
    r = api("getContacts", "GET", "/contacts", params={"email": "one.example"})
    assert r.json()["$items"] == []  # an address is matched whole, not as a substring
    r = api(
        "postContacts",
        "POST",
        "/contacts",
        {
            "contact": {
                "name": "Bad Mail",
                "contact_type_ids": ["VENDOR"],
                "main_contact_person": {"email": "not an address"},
            }
        },
    )
    assert r.status_code == 422
    assert r.json()[0]["$source"] == "main_contact_person.email"


@pytest.mark.parametrize(
    ("rate", "status"),
    [("GB_ZERO", 201), ("GB_STANDARD", 422)],
)
def test_tax_amount_may_be_left_out_only_for_a_rate_without_percentage(
    api: Api, rate: str, status: int
) -> None:
    """Swagger: tax_amount "is required in v3.1, unless the tax rate is of a 'zero',
    'exempt' or 'no_tax' type. Then the tax_amount is inferred as 0.0"."""
    v = vendor(api)
    body = invoice(api, v["id"])
    line = body["purchase_invoice"]["invoice_lines"][0]
    line["tax_rate_id"] = rate
    del line["tax_amount"]
    r = api("postPurchaseInvoices", "POST", "/purchase_invoices", body)
    assert r.status_code == status, r.text
    if status == 201:
        made = r.json()
        assert made["invoice_lines"][0]["tax_amount"] == wire.loads(b"[0.00]")[0]
        assert made["tax_amount"] == 0
    else:
        assert r.json()[0]["$source"] == "invoice_lines[0].tax_amount"


def test_tax_rates_take_the_swaggers_filters_and_refuse_usage(api: Api) -> None:
    """GET /tax_rates declares no ``usage`` parameter in the v3.1 Swagger, so it is refused
    as any undeclared parameter is; ``updated_or_created_since`` (inclusive) and
    ``cis_only`` are the Swagger's and filter the list."""

    def ids(**params: str) -> list[str]:
        r = api("getTaxRates", "GET", "/tax_rates", params=params)
        assert r.status_code == 200, r.text
        return sorted(item["id"] for item in r.json()["$items"])

    assert ids() == ["GB_STANDARD", "GB_ZERO"]
    refused = api("getTaxRates", "GET", "/tax_rates", params={"usage": "purchase"}, check=False)
    assert refused.status_code == 422
    assert "usage" in refused.json()[0]["$source"]
    assert ids(updated_or_created_since="2000-01-01T+00:00") == ["GB_STANDARD", "GB_ZERO"]
    assert ids(updated_or_created_since="2999-01-01T00:00:00+00:00") == []
    assert ids(cis_only="true") == []
    assert ids(cis_only="false", include_historical_data="true") == ["GB_STANDARD", "GB_ZERO"]
    bad = api("getTaxRates", "GET", "/tax_rates", params={"updated_or_created_since": "soon"})
    assert bad.status_code == 422
