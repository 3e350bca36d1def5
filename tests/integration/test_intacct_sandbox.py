"""The Intacct sandbox in its own process, spoken to the way the official SDKs speak.

The requests here are written out as XML text in the shape the PHP/.NET SDKs produce
(control block with ``uniqueid``/``dtdversion``/``includewhitespace``, ``getAPISession`` on its
own, legacy ``create_bill`` with ``<datecreated><year/><month/><day/></datecreated>``,
``create_supdoc``, ``create_supdocfolder``, generic ``create``/``query``/``readByQuery``/
``readMore``/``read``), not with billstream's builder, so the sandbox is shown to serve any
client.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from adapters.intacct.xml import Response, Result, parse_response
from sandboxes.intacct.harness import REPO_ROOT, SandboxProcess

SENDER = "<senderid>billstream-sandbox</senderid><password>sandbox-sender-secret</password>"
LOGIN = (
    "<login><userid>xml_gateway</userid><companyid>{company}</companyid>"
    "<password>sandbox-user-secret</password></login>"
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(["--closed-period", "2026-03"]) as process:
        yield process


@pytest.fixture
def company(sandbox: SandboxProcess) -> str:
    return sandbox.new_company()


def request(
    content: str,
    auth: str,
    *,
    sender: str = SENDER,
    transaction: bool = False,
    uniqueid: bool = False,
) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<request><control>{sender}<controlid>{uuid.uuid4()}</controlid>"
        f"<uniqueid>{'true' if uniqueid else 'false'}</uniqueid><dtdversion>3.0</dtdversion>"
        "<includewhitespace>false</includewhitespace></control>"
        f'<operation transaction="{"true" if transaction else "false"}">'
        f"<authentication>{auth}</authentication><content>{content}</content></operation>"
        "</request>"
    ).encode()


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": "application/xml"}, timeout=30)


def call(url: str, body: bytes) -> Response:
    resp = post(url, body)
    assert resp.status_code == 200, resp.text
    return parse_response(resp.content)


def session(sandbox: SandboxProcess, company: str) -> tuple[str, str]:
    """getAPISession alone, with login credentials: (session id, session endpoint)."""
    resp = call(
        sandbox.url,
        request(
            '<function controlid="s1"><getAPISession/></function>', LOGIN.format(company=company)
        ),
    )
    assert resp.ok
    [res] = resp.results
    assert res.ok and res.function == "getAPISession"
    [api] = res.records()
    assert api["endpoint"].startswith(sandbox.base_url)
    return api["sessionid"], api["endpoint"]


def run(
    sandbox: SandboxProcess,
    company: str,
    functions: str,
    *,
    transaction: bool = False,
    uniqueid: bool = False,
) -> tuple[Result, ...]:
    sid, endpoint = session(sandbox, company)
    body = request(
        functions, f"<sessionid>{sid}</sessionid>", transaction=transaction, uniqueid=uniqueid
    )
    resp = call(endpoint, body)
    assert resp.ok, resp
    return resp.results


VENDOR = (
    '<function controlid="v1"><create><VENDOR><VENDORID>OBRIEN</VENDORID>'
    "<NAME>O'Brien &amp; Sons &lt;Catering&gt;</NAME>"
    "<DISPLAYCONTACT><PRINTAS>O'Brien &amp; Sons</PRINTAS></DISPLAYCONTACT>"
    "</VENDOR></create></function>"
)


def legacy_bill(number: str, *, year: int = 2026, month: int = 10, supdoc: str = "") -> str:
    return (
        f'<function controlid="b-{number}"><create_bill><vendorid>OBRIEN</vendorid>'
        f"<datecreated><year>{year}</year><month>{month}</month><day>15</day></datecreated>"
        "<datedue><year>2026</year><month>11</month><day>14</day></datedue>"
        f"<action>Draft</action><billno>{number}</billno><description>SDK bill</description>"
        + (f"<supdocid>{supdoc}</supdocid>" if supdoc else "")
        + "<billitems><lineitem><glaccountno>7500</glaccountno><amount>100.00</amount>"
        "<memo>Paper &amp; toner</memo><departmentid>FIN</departmentid>"
        "<taxentries><taxentry><detailid>UK Standard</detailid><trx_tax>20.00</trx_tax>"
        "</taxentry></taxentries></lineitem>"
        "<lineitem><glaccountno>7400</glaccountno><amount>10.50</amount><memo>Delivery</memo>"
        "</lineitem></billitems></create_bill></function>"
    )


# -- the ready line -------------------------------------------------------------------------


def test_port_zero_picks_a_free_port_and_reports_it(sandbox: SandboxProcess) -> None:
    port = httpx.URL(sandbox.url).port
    assert port not in (None, 0, 8910)
    assert sandbox.url.endswith("/ia/xml/xmlgw.phtml")
    assert set(sandbox.credentials) == {
        "sender_id",
        "sender_password",
        "company_id",
        "user_id",
        "user_password",
    }
    assert sandbox.credentials["company_id"] == "BILLSTREAM-DEMO"
    assert httpx.get(f"{sandbox.base_url}/admin/health").json() == {"ok": True}


# -- what the SDKs send ---------------------------------------------------------------------


def test_sdk_shaped_requests_are_served(sandbox: SandboxProcess, company: str) -> None:
    pdf = b"%PDF-1.4 sdk test\n%%EOF\n"
    folder, supdoc, vendor, bill = run(
        sandbox,
        company,
        '<function controlid="f1"><create_supdocfolder><supdocfoldername>AP Invoices'
        "</supdocfoldername><supdocfolderdescription>From the SDK</supdocfolderdescription>"
        "</create_supdocfolder></function>"
        '<function controlid="d1"><create_supdoc><supdocid>INV-000123</supdocid>'
        "<supdocname>INV-000123</supdocname><supdocfoldername>AP Invoices</supdocfoldername>"
        "<attachments><attachment><attachmentname>invoice_123</attachmentname>"
        f"<attachmenttype>pdf</attachmenttype><attachmentdata>{base64.b64encode(pdf).decode()}"
        "</attachmentdata></attachment></attachments></create_supdoc></function>"
        + VENDOR
        + legacy_bill("SDK-1", supdoc="INV-000123"),
    )
    assert (folder.ok, folder.key) == (True, "AP Invoices")
    assert (supdoc.ok, supdoc.key) == (True, "INV-000123")
    assert vendor.ok
    [created] = vendor.records()
    assert created["VENDORID"] == "OBRIEN" and created["RECORDNO"]
    assert bill.ok and bill.key and bill.key.isdigit()

    query, read, got = run(
        sandbox,
        company,
        '<function controlid="q"><query><object>APBILL</object><select>'
        "<field>RECORDNO</field><field>RECORDID</field><field>STATE</field>"
        "<field>WHENCREATED</field><field>TRX_TOTALENTERED</field><field>SUPDOCID</field>"
        "</select><filter><and><equalto><field>VENDORID</field><value>OBRIEN</value></equalto>"
        "<equalto><field>RECORDID</field><value>SDK-1</value></equalto></and></filter>"
        "</query></function>"
        f'<function controlid="r"><read><object>VENDOR</object><keys>{created["RECORDNO"]}</keys>'
        "<fields>*</fields></read></function>"
        '<function controlid="g"><get object="supdoc" key="INV-000123"/></function>',
    )
    [row] = query.records()
    assert row == {
        "RECORDNO": bill.key,
        "RECORDID": "SDK-1",
        "STATE": "Draft",
        "WHENCREATED": "10/15/2026",
        "TRX_TOTALENTERED": "130.50",
        "SUPDOCID": "INV-000123",
    }
    [vendor_row] = read.records()
    assert vendor_row["NAME"] == "O'Brien & Sons <Catering>"
    [doc] = got.records()
    attachment = doc["attachments"]["attachment"]
    assert attachment["attachmentname"] == "invoice_123"
    assert base64.b64decode(attachment["attachmentdata"]) == pdf
    [stored] = sandbox.bills(company)
    assert [ln["ACCOUNTNO"] for ln in stored["LINES"]] == ["7500", "7400"]
    assert stored["LINES"][0]["ENTRYDESCRIPTION"] == "Paper & toner"


def test_read_by_query_pages_with_read_more(sandbox: SandboxProcess, company: str) -> None:
    creates = "".join(
        f'<function controlid="v{i}"><create><VENDOR><VENDORID>JD{i}</VENDORID>'
        f"<NAME>Jane's Deli {i}</NAME><DISPLAYCONTACT><PRINTAS>J</PRINTAS></DISPLAYCONTACT>"
        "</VENDOR></create></function>"
        for i in range(3)
    )
    run(sandbox, company, creates)
    [first] = run(
        sandbox,
        company,
        '<function controlid="rq"><readByQuery><object>VENDOR</object>'
        "<fields>VENDORID,NAME</fields><query>NAME LIKE 'Jane\\'s Deli%' AND STATUS = 'active'"
        "</query><pagesize>2</pagesize></readByQuery></function>",
    )
    assert first.ok and first.numremaining == 1 and first.result_id
    assert [r["NAME"] for r in first.records()] == ["Jane's Deli 0", "Jane's Deli 1"]
    [more] = run(
        sandbox,
        company,
        f'<function controlid="rm"><readMore><resultId>{first.result_id}</resultId></readMore>'
        "</function>",
    )
    assert [r["VENDORID"] for r in more.records()] == ["JD2"]
    assert more.numremaining == 0
    [exact] = run(
        sandbox,
        company,
        '<function controlid="rq2"><readByQuery><object>VENDOR</object><fields>*</fields>'
        "<query>NAME = 'Jane\\'s Deli 1'</query><pagesize>100</pagesize></readByQuery></function>",
    )
    assert [r["VENDORID"] for r in exact.records()] == ["JD1"]


def test_get_api_session_must_travel_alone(sandbox: SandboxProcess, company: str) -> None:
    resp = call(
        sandbox.url,
        request(
            '<function controlid="s"><getAPISession/></function>' + VENDOR,
            LOGIN.format(company=company),
        ),
    )
    get_session, vendor = resp.results
    assert not get_session.ok
    assert get_session.errors[0].errorno == "XL03000005"
    assert vendor.ok  # functions outside a transaction stand on their own


def test_login_works_without_a_session_too(sandbox: SandboxProcess, company: str) -> None:
    resp = call(sandbox.url, request(VENDOR, LOGIN.format(company=company)))
    assert resp.ok and resp.results[0].ok


# -- refusals where Intacct puts them -------------------------------------------------------


def test_wrong_sender_fails_in_the_control_block(sandbox: SandboxProcess, company: str) -> None:
    sender = "<senderid>someone</senderid><password>guess</password>"
    resp = call(sandbox.url, request(VENDOR, LOGIN.format(company=company), sender=sender))
    assert resp.control_status == "failure" and resp.authentication is None
    assert resp.errors[0].errorno == "XL03000006"
    assert resp.errors[0].text == "Incorrect Intacct XML Partner ID or password."
    # As Intacct sends it: the text in description2, description left empty.
    assert resp.errors[0].description2 == "Incorrect Intacct XML Partner ID or password."
    assert resp.errors[0].description == ""


def test_every_control_failure_carries_its_text_in_description2(sandbox: SandboxProcess) -> None:
    bad_dtd = request(VENDOR, LOGIN.format(company="BILLSTREAM-DEMO")).replace(
        b"<dtdversion>3.0</dtdversion>", b"<dtdversion>9.9</dtdversion>"
    )
    for body in (b"<request><control>", bad_dtd):
        resp = call(sandbox.url, body)
        assert resp.control_status == "failure"
        assert resp.errors[0].errorno == "XL03000003"
        assert resp.errors[0].description2


def test_unauthorised_company_fails_in_the_authentication_block(sandbox: SandboxProcess) -> None:
    resp = call(sandbox.url, request(VENDOR, LOGIN.format(company="NOT-OURS")))
    assert resp.control_status == "success"
    assert resp.authentication is not None and not resp.authentication.ok
    [err] = resp.authentication.errors
    assert err.errorno == "XL03000006"
    assert err.description == "Invalid Web Services Authorization"
    assert "not authorized to make Web Services requests to company ID 'NOT-OURS'" in err.text
    assert err.correction.startswith("Contact the company administrator")


def test_expired_session_fails_in_the_authentication_block(
    sandbox: SandboxProcess, company: str
) -> None:
    sid, endpoint = session(sandbox, company)
    sandbox.expire_sessions()
    resp = call(endpoint, request(VENDOR, f"<sessionid>{sid}</sessionid>"))
    assert resp.authentication is not None and not resp.authentication.ok
    assert resp.authentication.errors[0].errorno == "XL03000006"


def test_closed_period_is_refused_with_intacct_text(sandbox: SandboxProcess, company: str) -> None:
    _, bill = run(sandbox, company, VENDOR + legacy_bill("MAR-1", month=3))
    assert not bill.ok
    assert bill.errors[0].text.startswith(
        "Periods are closed. Your transaction date (03/15/2026) is within a period that's been "
        "closed."
    )
    assert bill.errors[0].support_id
    assert bill.errors[-1].description == "Could not create APBill record!"
    assert sandbox.bills(company) == []


def test_transaction_rolls_everything_back(sandbox: SandboxProcess, company: str) -> None:
    sid, endpoint = session(sandbox, company)
    resp = call(
        endpoint,
        request(
            VENDOR + legacy_bill("TX-1") + VENDOR.replace('"v1"', '"v2"'),
            f"<sessionid>{sid}</sessionid>",
            transaction=True,
        ),
    )
    vendor, bill, duplicate = resp.results
    assert (vendor.status, bill.status, duplicate.status) == ("aborted", "aborted", "failure")
    assert [e.errorno for e in vendor.errors] == ["XL03000009"]
    assert duplicate.errors[0].errorno == "BL34000061"
    assert duplicate.errors[-1].errorno == "XL03000009"
    assert sandbox.bills(company) == []
    assert sandbox.admin("GET", f"vendors?company={company}")["vendors"] == []


def test_uniqueid_refuses_a_repeated_control_id(sandbox: SandboxProcess, company: str) -> None:
    [first] = run(sandbox, company, VENDOR, uniqueid=True)
    assert first.ok
    [again] = run(sandbox, company, VENDOR, uniqueid=True)
    assert not again.ok and again.errors[0].errorno == "XL03000004"
    # Without uniqueid the function runs again (and fails on its own merits: the id is taken).
    [repeat] = run(sandbox, company, VENDOR)
    assert repeat.errors[0].errorno == "BL34000061"


def test_malformed_xml_is_a_control_failure(sandbox: SandboxProcess) -> None:
    resp = call(sandbox.url, b"<request><control>")
    assert resp.control_status == "failure"
    assert resp.errors[0].errorno == "XL03000003"


def test_unknown_field_in_query_fails_the_function(sandbox: SandboxProcess, company: str) -> None:
    [res] = run(
        sandbox,
        company,
        '<function controlid="q"><query><object>APBILL</object><select><field>NOPE</field>'
        "</select></query></function>",
    )
    assert not res.ok and res.errors[0].errorno == "Query Failed"


# -- the concurrency limit ------------------------------------------------------------------


def test_past_the_concurrency_limit_the_gateway_answers_gw0010() -> None:
    with SandboxProcess(["--concurrency", "1", "--latency-ms", "400"]) as slow:
        body = request(
            '<function controlid="s"><getAPISession/></function>',
            LOGIN.format(company="BILLSTREAM-DEMO"),
        )
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: post(slow.url, body), range(4)))
        stats = slow.stats()
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) >= 1 and codes.count(429) >= 1
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    parsed = parse_response(refused.content)
    assert parsed.control_status == "failure" and parsed.errors[0].errorno == "GW-0010"
    assert stats["rate_limited"] == codes.count(429)
    assert stats["max_in_flight"] == 1


# -- the process ----------------------------------------------------------------------------


def test_sigterm_stops_it_cleanly_and_state_dir_keeps_the_books(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = SandboxProcess(["--state-dir", str(state)]).start()
    try:
        run(first, "BILLSTREAM-DEMO", VENDOR)
    finally:
        code = first.stop()
    assert code == 0
    assert (state / "intacct-sandbox.json").exists()
    with SandboxProcess(["--state-dir", str(state)]) as second:
        vendors = second.admin("GET", "vendors?company=BILLSTREAM-DEMO")["vendors"]
    assert [v["VENDORID"] for v in vendors] == ["OBRIEN"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--closed-period", "2026-13"], "2026-13"),
        (["--fail-modes", "explode"], "unknown fail modes: explode"),
        (["--fail-rate", "1.5"], "1.5"),
    ],
)
def test_bad_options_exit_2_with_the_reason(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "sandbox", "intacct", "--port", "0", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_an_attachment_over_20_mb_is_refused(sandbox: SandboxProcess, company: str) -> None:
    """The limit billstream keeps to (adapters.intacct.attachments.LIMITS), enforced here so
    a client that forgets it fails in the sandbox; just under it is taken."""

    def supdoc(supdoc_id: str, size: int) -> str:
        data = base64.b64encode(b"%PDF-1.4\n" + b"0" * (size - 9)).decode()
        return (
            f'<function controlid="{supdoc_id}"><create_supdoc><supdocid>{supdoc_id}</supdocid>'
            f"<supdocname>{supdoc_id}</supdocname><supdocfoldername>Big</supdocfoldername>"
            "<attachments><attachment><attachmentname>scan</attachmentname>"
            f"<attachmenttype>pdf</attachmenttype><attachmentdata>{data}</attachmentdata>"
            "</attachment></attachments></create_supdoc></function>"
        )

    (folder,) = run(
        sandbox,
        company,
        '<function controlid="f"><create_supdocfolder><supdocfoldername>Big'
        "</supdocfoldername></create_supdocfolder></function>",
    )
    assert folder.ok
    (over,) = run(sandbox, company, supdoc("BIG-1", 20_000_001))
    assert not over.ok
    assert over.errors[0].description == "Attachment too large"
    assert "20000001 bytes" in (over.errors[0].description2 or "")
    (under,) = run(sandbox, company, supdoc("BIG-2", 20_000_000))
    assert under.ok
