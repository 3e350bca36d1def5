"""Intacct envelopes: building requests (escaping, formats) and reading every error position."""

# ruff: noqa: E501  (response fixtures keep Intacct's long messages on one line)

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from adapters.intacct.xml import (
    EnvelopeError,
    ErrorDetail,
    Function,
    Login,
    authentication_failure,
    build_request,
    control_failure,
    element,
    format_amount,
    format_date,
    legacy_date,
    parse_date,
    parse_request,
    parse_response,
    result_element,
    serialize,
    success_response,
)

NASTY = 'O\'Brien & Sons <Catering> "Best" Ltd'


def vendor_request(name: str = NASTY, **kw: object) -> bytes:
    fn = Function(
        "fn-1",
        element(
            "create",
            {"VENDOR": {"VENDORID": "V1", "NAME": name, "DISPLAYCONTACT": {"PRINTAS": name}}},
        ),
    )
    args: dict[str, object] = {
        "sender_id": "sender",
        "sender_password": "s3cret&<pw>",
        "auth": Login("user", "ACME", "u&p<w>"),
        "functions": [fn],
        "control_id": "req-1",
    }
    args.update(kw)
    return build_request(**args)  # type: ignore[arg-type]


# -- building -------------------------------------------------------------------------------


def test_special_characters_are_escaped_by_the_library_and_survive_a_round_trip() -> None:
    body = vendor_request()
    assert b"O'Brien &amp; Sons &lt;Catering&gt;" in body
    assert NASTY.encode() not in body  # never raw
    parsed = parse_request(body)
    [fn] = parsed.functions
    assert fn.body.findtext("VENDOR/NAME") == NASTY
    assert fn.body.findtext("VENDOR/DISPLAYCONTACT/PRINTAS") == NASTY
    assert parsed.sender_password == "s3cret&<pw>"
    assert parsed.login == Login("user", "ACME", "u&p<w>")


def test_quotes_in_attributes_are_escaped() -> None:
    fn = Function('ctl "1" & <2>', element("get", None, {"object": "supdoc", "key": 'a"b<c'}))
    body = build_request(
        sender_id="s", sender_password="p", auth="sess", functions=[fn], control_id="c"
    )
    [parsed] = parse_request(body).functions
    assert parsed.controlid == 'ctl "1" & <2>'
    assert parsed.body.get("key") == 'a"b<c'


def test_characters_xml_cannot_carry_are_dropped_not_sent() -> None:
    body = vendor_request("Bad\x00Name\x1f Ltd\x07")
    [fn] = parse_request(body).functions
    assert fn.body.findtext("VENDOR/NAME") == "BadName Ltd"


def test_control_block_and_operation_as_the_sdks_send_them() -> None:
    body = vendor_request(transaction=True, unique_id=True)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    parsed = parse_request(body)
    assert parsed.dtd_version == "3.0"
    assert parsed.unique_id is True
    assert parsed.transaction is True
    assert parsed.control_id == "req-1"
    assert parsed.session_id is None
    assert parsed.functions[0].controlid == "fn-1"
    assert parsed.functions[0].name == "create"


def test_session_authentication_replaces_login() -> None:
    body = vendor_request(auth="SESSION-123")
    parsed = parse_request(body)
    assert parsed.login is None
    assert parsed.session_id == "SESSION-123"
    assert b"<login>" not in body


def test_login_location_is_sent_only_when_there_is_an_entity() -> None:
    assert b"<locationid>" not in vendor_request()
    body = vendor_request(auth=Login("u", "ACME", "p", location_id="E100"))
    assert parse_request(body).login == Login("u", "ACME", "p", "E100")


def test_passwords_stay_out_of_repr() -> None:
    parsed = parse_request(vendor_request(auth="SESSION-SECRET"))
    assert "s3cret" not in repr(parsed)
    assert "SESSION-SECRET" not in repr(parsed)
    assert "u&p" not in repr(Login("user", "ACME", "u&p<w>"))


def test_none_values_are_left_out_and_lists_repeat_their_tag() -> None:
    el = element(
        "APBILLITEMS", {"APBILLITEM": [{"ACCOUNTNO": "1", "LOCATIONID": None}, {"ACCOUNTNO": "2"}]}
    )
    items = el.findall("APBILLITEM")
    assert [i.findtext("ACCOUNTNO") for i in items] == ["1", "2"]
    assert items[0].find("LOCATIONID") is None


def test_bytes_are_refused() -> None:
    with pytest.raises(TypeError):
        element("attachmentdata", {"x": b"raw"})


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("10.005"), "10.01"),
        (Decimal("10.004"), "10.00"),
        (Decimal("-2.345"), "-2.35"),
        (Decimal("1234567.8"), "1234567.80"),  # no thousands separators
        (Decimal("1E+3"), "1000.00"),
    ],
)
def test_amounts_are_rounded_half_up_to_two_places(amount: Decimal, text: str) -> None:
    assert format_amount(amount) == text


def test_amounts_refuse_floats_and_non_finite() -> None:
    with pytest.raises(TypeError):
        format_amount(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_amount(Decimal("NaN"))


def test_dates() -> None:
    assert format_date(dt.date(2026, 3, 5)) == "03/05/2026"
    assert parse_date("3/5/2026") == dt.date(2026, 3, 5)
    assert parse_date("03/05/2026 14:02:11") == dt.date(2026, 3, 5)
    assert parse_date("2026-03-05") == dt.date(2026, 3, 5)
    with pytest.raises(ValueError):
        parse_date("05.03.2026")
    legacy = legacy_date("datecreated", dt.date(2026, 3, 5))
    assert [(c.tag, c.text) for c in legacy] == [("year", "2026"), ("month", "3"), ("day", "5")]


# -- parsing responses ----------------------------------------------------------------------

CONTROL_FAILURE = b"""<?xml version="1.0" encoding="UTF-8"?>
<response>
  <control><status>failure</status><senderid>bad</senderid><controlid>req-1</controlid>
    <uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
  <errormessage>
    <error><errorno>XL03000006</errorno><description></description>
      <description2>Incorrect Intacct XML Partner ID or password.</description2>
      <correction></correction></error>
  </errormessage>
</response>"""

AUTH_FAILURE = b"""<?xml version="1.0" encoding="UTF-8"?>
<response>
  <control><status>success</status><senderid>s</senderid><controlid>req-2</controlid>
    <uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
  <operation>
    <authentication><status>failure</status><userid>u</userid><companyid>ACME</companyid>
    </authentication>
    <errormessage>
      <error><errorno>XL03000006</errorno><description>Invalid Web Services Authorization</description>
        <description2>The sender ID 's' is not authorized to make Web Services requests to company ID 'ACME'.</description2>
        <correction>Contact the company administrator to grant Web Services authorization to this sender ID.</correction>
      </error>
    </errormessage>
  </operation>
</response>"""

RESULT_FAILURE = b"""<?xml version="1.0" encoding="UTF-8"?>
<response>
  <control><status>success</status><senderid>s</senderid><controlid>req-3</controlid>
    <uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
  <operation>
    <authentication><status>success</status><userid>u</userid><companyid>ACME</companyid>
      <locationid></locationid><sessiontimestamp>2026-11-27T10:00:00+00:00</sessiontimestamp>
      <sessiontimeout>2026-11-27T16:00:00+00:00</sessiontimeout></authentication>
    <result><status>failure</status><function>create</function><controlid>fn-1</controlid>
      <errormessage>
        <error><errorno>BL03000018</errorno><description>Required field missing</description>
          <description2>Account 16200 is not valid [Support ID: abC12%7EXyz-9]</description2>
          <correction>Use an active GL account.</correction></error>
        <error><errorno>BL01001973</errorno><description>Could not create APBill record!</description>
          <description2></description2><correction></correction></error>
      </errormessage>
    </result>
    <result><status>success</status><function>query</function><controlid>fn-2</controlid>
      <data listtype="APBILL" totalcount="3" offset="0" count="2" numremaining="1">
        <APBILL><RECORDNO>11</RECORDNO><RECORDID>INV &amp; 1</RECORDID></APBILL>
        <APBILL><RECORDNO>12</RECORDNO><RECORDID>INV-2</RECORDID></APBILL>
      </data>
    </result>
  </operation>
</response>"""

ROLLBACK = b"""<?xml version="1.0" encoding="UTF-8"?>
<response>
  <control><status>success</status><senderid>s</senderid><controlid>req-4</controlid>
    <uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
  <operation>
    <authentication><status>success</status><userid>u</userid><companyid>ACME</companyid>
    </authentication>
    <result><status>aborted</status><function>create_supdoc</function><controlid>a</controlid>
      <errormessage><error><errorno>XL03000009</errorno>
        <description>The entire transaction in this operation has been rolled back due to an error.</description>
        <description2></description2><correction></correction></error></errormessage>
    </result>
    <result><status>failure</status><function>update</function><controlid>b</controlid>
      <errormessage>
        <error><errorno>BL01001973</errorno><description>Could not update APBill record!</description>
          <description2>No APBILL with RECORDNO '99'.</description2><correction></correction></error>
        <error><errorno>XL03000009</errorno>
          <description>The entire transaction in this operation has been rolled back due to an error.</description>
          <description2></description2><correction></correction></error>
      </errormessage>
    </result>
  </operation>
</response>"""


def test_control_failure_sits_beside_control_with_no_operation() -> None:
    resp = parse_response(CONTROL_FAILURE)
    assert resp.control_status == "failure"
    assert resp.authentication is None and resp.results == ()
    assert not resp.ok
    [err] = resp.errors
    assert err.errorno == "XL03000006"
    assert err.text == "Incorrect Intacct XML Partner ID or password."


def test_authentication_failure_sits_in_the_operation_with_no_results() -> None:
    resp = parse_response(AUTH_FAILURE)
    assert resp.control_status == "success"
    assert resp.authentication is not None and not resp.authentication.ok
    assert resp.results == () and not resp.ok
    [err] = resp.authentication.errors
    assert err.description == "Invalid Web Services Authorization"
    assert err.correction.startswith("Contact the company administrator")


def test_function_failure_sits_in_its_result_with_every_error_in_order() -> None:
    resp = parse_response(RESULT_FAILURE)
    assert resp.ok
    auth = resp.authentication
    assert auth is not None
    assert auth.session_timeout is not None and auth.session_timestamp is not None
    assert (auth.session_timeout - auth.session_timestamp).total_seconds() == 6 * 3600
    failed, queried = resp.results
    assert not failed.ok and failed.controlid == "fn-1"
    assert [e.errorno for e in failed.errors] == ["BL03000018", "BL01001973"]
    first = failed.errors[0]
    assert first.support_id == "abC12~Xyz-9"
    assert first.text == "Account 16200 is not valid"
    assert first.as_dict()["description2"].endswith("[Support ID: abC12~Xyz-9]")
    assert queried.ok
    assert [r["RECORDID"] for r in queried.records()] == ["INV & 1", "INV-2"]
    assert queried.numremaining == 1 and queried.totalcount == 3


def test_transaction_rollback_marks_aborted_and_failed_functions() -> None:
    aborted, failed = parse_response(ROLLBACK).results
    assert aborted.status == "aborted"
    assert [e.errorno for e in aborted.errors] == ["XL03000009"]
    assert failed.status == "failure"
    assert [e.errorno for e in failed.errors] == ["BL01001973", "XL03000009"]


def test_legacy_key_and_readbyquery_paging_attributes() -> None:
    body = success_response(
        sender_id="s",
        control_id="c",
        unique_id=False,
        user_id="u",
        company_id="ACME",
        location_id="",
        session_timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        session_timeout=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        results=[
            result_element(status="success", function="create_bill", controlid="a", key="1234"),
            result_element(
                status="success",
                function="readByQuery",
                controlid="b",
                data=element(
                    "data",
                    [element("vendor", {"VENDORID": "V1"})],
                    {"listtype": "vendor", "count": "1", "numremaining": "4", "resultId": "r-9"},
                ),
            ),
        ],
    )
    created, read = parse_response(body).results
    assert created.key == "1234"
    assert read.result_id == "r-9" and read.numremaining == 4
    assert read.records() == [{"VENDORID": "V1"}]


def test_response_builders_round_trip() -> None:
    errs = [ErrorDetail("A1", "d", "d2 & <x>", "fix"), ErrorDetail("A2", "e")]
    assert parse_response(control_failure(errs)).errors == tuple(errs)
    auth = parse_response(
        authentication_failure(errs, sender_id="s", control_id="c", unique_id=True)
    ).authentication
    assert auth is not None and auth.errors == tuple(errs)


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"<response><control><status>success</status></control>",  # truncated
        b"<html><body>502 Bad Gateway</body></html>",
        b"<response></response>",
    ],
)
def test_unreadable_responses_raise_envelope_errors(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_response(body)


def test_entity_expansion_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<response><control><status>&lol2;</status></control></response>"""
    with pytest.raises(EnvelopeError):
        parse_response(bomb)
    with pytest.raises(EnvelopeError):
        parse_request(bomb.replace(b"response", b"request"))


def test_serialize_declares_utf8_and_keeps_non_ascii() -> None:
    body = serialize(element("NAME", "Café Zürich & Søn"))
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert "Café Zürich &amp; Søn".encode() in body


GATEWAY_NO_CONTROL = b"""<?xml version="1.0" encoding="UTF-8"?>
<response>
  <errormessage>
    <error>
      <errorno>XL03000009</errorno>
      <description></description>
      <description2>The maximum number of concurrent requests has been exceeded.</description2>
      <correction></correction>
    </error>
  </errormessage>
</response>"""


def test_a_gateway_error_without_control_keeps_its_number_and_text() -> None:
    resp = parse_response(GATEWAY_NO_CONTROL)
    assert resp.control_status == "failure" and not resp.ok
    [err] = resp.errors
    assert err.errorno == "XL03000009"
    assert "maximum number of concurrent requests" in err.text


def test_a_response_with_neither_control_nor_errors_is_still_refused() -> None:
    with pytest.raises(EnvelopeError, match="missing <control>"):
        parse_response(b"<response><operation/></response>")
