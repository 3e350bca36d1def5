"""The Intacct sandbox refuses what Intacct refuses and answers as Intacct answers.

Over HTTP, with SDK-shaped XML written out by hand (the helpers of
``test_intacct_sandbox``): the legacy ``update_bill``, ``delete_bill`` and
``delete_vendor`` and the generic ``delete`` (a paid bill and a vendor with bills are
kept), ``inspect``, ``lookup`` and ``get_list``, APBILLITEM lines, ``count`` in ``query``,
the standard VENDOR and APBILL fields, and dimension ids the company does not have.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.intacct.xml import Result
from sandboxes.intacct.harness import SandboxProcess
from tests.integration.test_intacct_sandbox import VENDOR, legacy_bill, run


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(["--closed-period", "2026-03"]) as process:
        yield process


@pytest.fixture
def company(sandbox: SandboxProcess) -> str:
    return sandbox.new_company()


def one(sandbox: SandboxProcess, company: str, function: str) -> Result:
    (res,) = run(sandbox, company, f'<function controlid="f">{function}</function>')
    return res


def posted_bill(number: str, *, lines: str = "", vendor: str = "OBRIEN") -> str:
    """A generic create of a posted APBILL; ``lines`` replaces the one default line."""
    items = lines or (
        "<APBILLITEM><ACCOUNTNO>7500</ACCOUNTNO><TRX_AMOUNT>100.00</TRX_AMOUNT>"
        "<DEPARTMENTID>FIN</DEPARTMENTID></APBILLITEM>"
    )
    return (
        f"<create><APBILL><VENDORID>{vendor}</VENDORID><WHENCREATED>10/15/2026</WHENCREATED>"
        f"<WHENDUE>11/14/2026</WHENDUE><RECORDID>{number}</RECORDID>"
        f"<APBILLITEMS>{items}</APBILLITEMS></APBILL></create>"
    )


def new_bill(sandbox: SandboxProcess, company: str, number: str, **kw: str) -> str:
    res = one(sandbox, company, posted_bill(number, **kw))
    assert res.ok, res.errors
    [made] = res.records()
    return str(made["RECORDNO"])


def query(sandbox: SandboxProcess, company: str, obj: str, fields: str, flt: str = "") -> Result:
    select = "".join(f"<field>{f}</field>" for f in fields.split(","))
    return one(
        sandbox,
        company,
        f"<query><object>{obj}</object><select>{select}</select>"
        + (f"<filter>{flt}</filter>" if flt else "")
        + "</query>",
    )


# -- deleting ---------------------------------------------------------------------------


def test_delete_bill_and_delete_vendor_in_the_legacy_shapes(
    sandbox: SandboxProcess, company: str
) -> None:
    run(sandbox, company, VENDOR)
    recordno = new_bill(sandbox, company, "DEL-1")
    refused = one(sandbox, company, '<delete_vendor vendorid="OBRIEN"/>')
    assert not refused.ok
    assert refused.errors[0].errorno == "BL01001973"
    assert refused.errors[0].description == "Could not delete Vendor record!"
    assert "has 1 transaction(s)" in refused.errors[0].text
    deleted = one(sandbox, company, f'<delete_bill key="{recordno}"/>')
    assert (deleted.ok, deleted.key) == (True, recordno)
    assert sandbox.bills(company) == []
    again = one(sandbox, company, f'<delete_bill key="{recordno}"/>')
    assert not again.ok and again.errors[0].description == "Could not delete APBill record!"
    gone = one(sandbox, company, '<delete_vendor vendorid="obrien"/>')
    assert (gone.ok, gone.key) == (True, "OBRIEN")
    assert sandbox.admin("GET", f"vendors?company={company}")["vendors"] == []
    # The display contact stays behind: a new vendor with the same contact name is refused.
    (recreate,) = run(sandbox, company, VENDOR)
    assert not recreate.ok
    assert (
        recreate.errors[0].description == "Another Contact with the given value(s) already exists"
    )


def test_a_paid_bill_cannot_be_deleted_nor_changed(sandbox: SandboxProcess, company: str) -> None:
    run(sandbox, company, VENDOR)
    recordno = new_bill(sandbox, company, "PAID-1")
    paid = sandbox.pay_bill(company, recordno, "40.00", "2026-10-20")
    assert (paid["paid"], paid["due"]) == ("40.00", "60.00")
    for function in (
        f'<delete_bill key="{recordno}"/>',
        f"<delete><object>APBILL</object><keys>{recordno}</keys></delete>",
    ):
        res = one(sandbox, company, function)
        assert not res.ok
        assert res.errors[0].errorno == "BL01001973"
        assert "has payments applied" in res.errors[0].text
    changed = one(
        sandbox,
        company,
        f'<update_bill key="{recordno}"><description>x</description></update_bill>',
    )
    assert not changed.ok and "has payments applied" in changed.errors[0].text
    generic = one(sandbox, company, "<delete><object>VENDOR</object><keys>1</keys></delete>")
    assert not generic.ok
    [row] = query(
        sandbox, company, "APBILL", "STATE,TOTALPAID,TOTALDUE,WHENPAID,TRX_TOTALPAID"
    ).records()
    assert row == {
        "STATE": "Partially Paid",
        "TOTALPAID": "40.00",
        "TOTALDUE": "60.00",
        "WHENPAID": "10/20/2026",
        "TRX_TOTALPAID": "40.00",
    }
    assert len(sandbox.bills(company)) == 1


def test_update_bill_changes_header_and_lines(sandbox: SandboxProcess, company: str) -> None:
    (_, bill) = run(sandbox, company, VENDOR + legacy_bill("UPD-1"))
    assert bill.ok and bill.key
    res = one(
        sandbox,
        company,
        f'<update_bill key="{bill.key}"><billno>UPD-2</billno>'
        "<datedue><year>2026</year><month>12</month><day>01</day></datedue>"
        '<updatebillitems><updatelineitem line_num="2"><amount>20.00</amount>'
        "<memo>Courier</memo></updatelineitem>"
        "<lineitem><glaccountno>7600</glaccountno><amount>5.25</amount></lineitem>"
        "</updatebillitems></update_bill>",
    )
    assert (res.ok, res.key) == (True, bill.key)
    [stored] = sandbox.bills(company)
    assert (stored["RECORDID"], stored["WHENDUE"]) == ("UPD-2", "12/01/2026")
    assert [ln["TRX_AMOUNT"] for ln in stored["LINES"]] == ["100.00", "20.00", "5.25"]
    assert stored["LINES"][1]["ENTRYDESCRIPTION"] == "Courier"
    assert stored["LINES"][0]["TAXENTRIES"] == [{"DETAILID": "UK Standard", "TRX_TAX": "20.00"}]
    assert stored["TRX_TOTALENTERED"] == "145.25"
    missing_line = one(
        sandbox,
        company,
        f'<update_bill key="{bill.key}"><updatebillitems><updatelineitem line_num="9">'
        "<memo>x</memo></updatelineitem></updatebillitems></update_bill>",
    )
    assert not missing_line.ok and "no line 9" in missing_line.errors[0].text
    closed = one(
        sandbox,
        company,
        f'<update_bill key="{bill.key}"><datecreated><year>2026</year><month>3</month>'
        "<day>2</day></datecreated></update_bill>",
    )
    assert not closed.ok and closed.errors[0].text.startswith("Periods are closed.")
    assert sandbox.bills(company)[0]["WHENCREATED"] == "10/15/2026"


# -- what an object has -----------------------------------------------------------------


def test_inspect_names_the_fields_and_detail_describes_them(
    sandbox: SandboxProcess, company: str
) -> None:
    plain = one(sandbox, company, "<inspect><object>APBILL</object></inspect>")
    assert plain.ok and plain.data is not None
    [type_el] = list(plain.data)
    assert (type_el.tag, type_el.get("Name")) == ("Type", "APBILL")
    names = [f.text for f in type_el.findall("Fields/Field")]
    assert {"RECORDNO", "TOTALPAID", "TOTALDUE", "WHENPAID", "RECORD_URL"} <= set(names)
    detail = one(sandbox, company, '<inspect detail="1"><object>VENDOR</object></inspect>')
    assert detail.data is not None
    [vendor_type] = list(detail.data)
    assert vendor_type.findtext("Attributes/SingularName") == "Vendor"
    fields = {f.findtext("Name"): f for f in vendor_type.findall("Fields/Field")}
    assert fields["NAME"].findtext("isRequired") == "true"
    assert fields["RECORDNO"].findtext("isReadOnly") == "true"
    assert fields["RECORDNO"].findtext("DataType") == "INTEGER"
    every = one(sandbox, company, "<inspect><object>*</object></inspect>")
    assert every.data is not None
    assert "APBILLITEM" in {t.get("typename") for t in every.data}
    unknown = one(sandbox, company, "<inspect><object>NOPE</object></inspect>")
    assert not unknown.ok and unknown.errors[0].errorno == "Query Failed"


def test_lookup_gives_field_types_valid_values_and_relationships(
    sandbox: SandboxProcess, company: str
) -> None:
    res = one(sandbox, company, "<lookup><object>APBILL</object></lookup>")
    assert res.ok and res.data is not None
    [type_el] = list(res.data)
    assert type_el.get("DocumentType") == ""
    fields = {f.findtext("ID"): f for f in type_el.findall("Fields/Field")}
    assert fields["WHENDUE"].findtext("DATATYPE") == "DATE"
    assert fields["TOTALDUE"].findtext("DATATYPE") == "CURRENCY"
    states = [v.text for v in fields["STATE"].findall("VALIDVALUES/VALIDVALUE")]
    assert "Paid" in states and "Draft" in states
    related = {r.findtext("OBJECTPATH"): r for r in type_el.findall("Relationships/Relationship")}
    assert related["VENDOR"].findtext("RELATEDBY") == "VENDORID"
    assert related["VENDOR"].findtext("RELATIONSHIPTYPE") == "MANY2ONE"


def test_get_list_filters_sorts_and_names_fields(sandbox: SandboxProcess, company: str) -> None:
    creates = "".join(
        f'<function controlid="v{i}"><create><VENDOR><VENDORID>GL{i}</VENDORID>'
        f"<NAME>{name}</NAME><DISPLAYCONTACT><PRINTAS>{name}</PRINTAS></DISPLAYCONTACT>"
        "</VENDOR></create></function>"
        for i, name in enumerate(["Acme", "Beta Ltd", "Acme Two"])
    )
    run(sandbox, company, creates)
    res = one(
        sandbox,
        company,
        '<get_list object="vendor" maxitems="10"><filter><expression><field>name</field>'
        "<operator>like</operator><value>Acme%</value></expression></filter>"
        '<sorts><sortfield order="desc">vendorid</sortfield></sorts>'
        "<fields><field>vendorid</field><field>name</field></fields></get_list>",
    )
    assert res.ok and res.data is not None
    assert (res.data.get("listtype"), res.data.get("count"), res.data.get("totalcount")) == (
        "vendor",
        "2",
        "2",
    )
    assert res.records() == [
        {"vendorid": "GL2", "name": "Acme Two"},
        {"vendorid": "GL0", "name": "Acme"},
    ]
    (_, bill) = run(sandbox, company, VENDOR + legacy_bill("GLB-1"))
    [listed] = one(
        sandbox,
        company,
        '<get_list object="bill"><filter><logical logical_operator="and"><expression>'
        "<field>billno</field><operator>=</operator><value>GLB-1</value></expression>"
        "<expression><field>totaldue</field><operator>&gt;</operator><value>100</value>"
        "</expression></logical></filter><fields><field>key</field><field>datecreated</field>"
        "<field>totaldue</field></fields></get_list>",
    ).records()
    assert listed == {
        "key": bill.key,
        "datecreated": {"year": "2026", "month": "10", "day": "15"},
        "totaldue": "130.50",
    }
    bad = one(
        sandbox,
        company,
        '<get_list object="vendor"><fields><field>nope</field></fields></get_list>',
    )
    assert not bad.ok and bad.errors[0].errorno == "DL02000001"


# -- reading what Intacct keeps -----------------------------------------------------------


def test_bill_lines_are_apbillitem_records_of_their_bill(
    sandbox: SandboxProcess, company: str
) -> None:
    (_, bill) = run(sandbox, company, VENDOR + legacy_bill("LN-1"))
    assert bill.key
    rows = query(
        sandbox,
        company,
        "APBILLITEM",
        "RECORDNO,RECORDKEY,LINE_NO,ACCOUNTNO,TRX_AMOUNT,DEPARTMENTID",
        f"<equalto><field>RECORDKEY</field><value>{bill.key}</value></equalto>",
    ).records()
    assert [(r["LINE_NO"], r["ACCOUNTNO"], r["TRX_AMOUNT"]) for r in rows] == [
        ("1", "7500", "100.00"),
        ("2", "7400", "10.50"),
    ]
    assert {r["RECORDKEY"] for r in rows} == {bill.key}
    assert rows[0]["DEPARTMENTID"] == "FIN"
    (by_query,) = run(
        sandbox,
        company,
        '<function controlid="r"><readByQuery><object>APBILLITEM</object><fields>*</fields>'
        f"<query>RECORDKEY = {bill.key}</query></readByQuery></function>",
    )
    assert by_query.totalcount == 2
    (read,) = run(
        sandbox,
        company,
        f'<function controlid="r"><read><object>APBILLITEM</object><keys>{rows[1]["RECORDNO"]}'
        "</keys><fields>RECORDKEY,ENTRYDESCRIPTION</fields></read></function>",
    )
    assert read.records() == [{"RECORDKEY": bill.key, "ENTRYDESCRIPTION": "Delivery"}]


def test_query_counts_by_group(sandbox: SandboxProcess, company: str) -> None:
    run(sandbox, company, VENDOR + legacy_bill("C-1") + legacy_bill("C-2"))
    new_bill(sandbox, company, "C-3")
    total = query(sandbox, company, "APBILL", "RECORDNO").records()
    assert len(total) == 3
    counted = one(
        sandbox,
        company,
        "<query><object>APBILL</object><select><count>RECORDNO</count></select></query>",
    )
    assert counted.records() == [{"COUNT.RECORDNO": "3"}]
    by_state = one(
        sandbox,
        company,
        "<query><object>APBILL</object><select><field>STATE</field><count>RECORDNO</count>"
        "</select><orderby><order><field>STATE</field></order></orderby></query>",
    )
    assert by_state.records() == [
        {"STATE": "Draft", "COUNT.RECORDNO": "2"},
        {"STATE": "Posted", "COUNT.RECORDNO": "1"},
    ]
    assert by_state.totalcount == 2
    bad = one(
        sandbox,
        company,
        "<query><object>APBILL</object><select><count>NOPE</count></select></query>",
    )
    assert not bad.ok and bad.errors[0].errorno == "Query Failed"


def test_standard_fields_come_back_and_unknown_ones_fail(
    sandbox: SandboxProcess, company: str
) -> None:
    run(sandbox, company, VENDOR)
    recordno = new_bill(sandbox, company, "STD-1")
    [vendor] = query(
        sandbox,
        company,
        "VENDOR",
        "PARENTKEY,DISPLAYCONTACT.PRINTAS,DISPLAYCONTACT.CONTACTNAME,DISPLAYCONTACT.COMPANYNAME,"
        "TOTALDUE,RECORD_URL",
    ).records()
    assert vendor["PARENTKEY"] == ""
    assert vendor["DISPLAYCONTACT.PRINTAS"] == "O'Brien & Sons"
    assert vendor["DISPLAYCONTACT.CONTACTNAME"] == "O'Brien & Sons <Catering>(VOBRIEN)"
    assert vendor["DISPLAYCONTACT.COMPANYNAME"] == "O'Brien & Sons <Catering>"
    assert vendor["TOTALDUE"] == "100.00"
    assert vendor["RECORD_URL"].startswith(sandbox.base_url)
    [bill] = query(
        sandbox, company, "APBILL", "TOTALPAID,TOTALDUE,WHENPAID,RECORD_URL,RAWSTATE"
    ).records()
    assert (bill["TOTALPAID"], bill["TOTALDUE"], bill["WHENPAID"]) == ("0.00", "100.00", "")
    assert bill["RECORD_URL"].endswith(f"apbill:{recordno}") and bill["RAWSTATE"] == "A"
    for obj in ("VENDOR", "APBILL", "APBILLITEM"):
        bad = query(sandbox, company, obj, "RECORDNO,NOT_A_FIELD")
        assert not bad.ok and bad.errors[0].errorno == "Query Failed"
        assert "NOT_A_FIELD" in bad.errors[0].text
    # Read-only fields are the sandbox's to write: an update leaves them alone.
    res = one(
        sandbox,
        company,
        f"<update><APBILL><RECORDNO>{recordno}</RECORDNO><TOTALPAID>100.00</TOTALPAID>"
        "<WHENDUE>11/20/2026</WHENDUE></APBILL></update>",
    )
    assert res.ok
    [after] = query(sandbox, company, "APBILL", "TOTALPAID,WHENDUE").records()
    assert after == {"TOTALPAID": "0.00", "WHENDUE": "11/20/2026"}


# -- dimensions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "value", "text"),
    [
        ("DEPARTMENTID", "D9", "Department 'D9': 'D9' specified is not valid."),
        ("LOCATIONID", "L9", "The location 'L9' is invalid."),
        ("PROJECTID", "P9", "Invalid Project 'P9' specified."),
        ("CLASSID", "C9", "Invalid Class 'C9' specified."),
    ],
)
def test_unknown_dimension_ids_are_refused(
    sandbox: SandboxProcess, tag: str, value: str, text: str
) -> None:
    company = sandbox.new_company(
        dimensions={
            "DEPARTMENTID": ["FIN"],
            "LOCATIONID": ["L1"],
            "PROJECTID": ["P1"],
            "CLASSID": ["C1"],
        }
    )
    run(sandbox, company, VENDOR)
    good = "".join(
        f"<{t}>{v}</{t}>"
        for t, v in (
            ("DEPARTMENTID", "FIN"),
            ("LOCATIONID", "L1"),
            ("PROJECTID", "P1"),
            ("CLASSID", "C1"),
        )
        if t != tag
    )
    line = (
        f"<APBILLITEM><ACCOUNTNO>7500</ACCOUNTNO><TRX_AMOUNT>10</TRX_AMOUNT>{good}"
        f"<{tag}>{value}</{tag}></APBILLITEM>"
    )
    res = one(sandbox, company, posted_bill("DIM-1", lines=line))
    assert not res.ok
    assert res.errors[0].errorno == "BL01001973"
    assert res.errors[0].text == text
    assert res.errors[-1].description == "Could not create APBill record!"
    assert sandbox.bills(company) == []
    ok_line = line.replace(f"<{tag}>{value}</{tag}>", "")
    assert one(sandbox, company, posted_bill("DIM-2", lines=ok_line)).ok
    # A company with no lists of a dimension takes any id of it, as before.
    open_company = sandbox.new_company()
    run(sandbox, open_company, VENDOR)
    assert one(sandbox, open_company, posted_bill("DIM-3", lines=line)).ok
