"""The standard fields of the objects the Intacct sandbox keeps, as Intacct defines them.

``STANDARD_FIELDS`` lists each object's fields in the order ``inspect`` names them; a
query may select any of them (an unknown one fails with ``Query Failed``, as before).
Fields a client cannot write (totals, payments, audit fields, URLs) are ``READ_ONLY``:
``create`` and ``update`` leave them to the sandbox. ``RELATIONSHIPS`` are the related
objects ``lookup`` names. Where our reference material is silent, the lists follow the
object definitions Intacct publishes (developer.intacct.com/api/accounts-payable/).
"""

from __future__ import annotations

_CONTACT = (
    "CONTACTNAME",
    "COMPANYNAME",
    "PREFIX",
    "FIRSTNAME",
    "LASTNAME",
    "INITIAL",
    "PRINTAS",
    "TAXABLE",
    "TAXGROUP",
    "PHONE1",
    "PHONE2",
    "CELLPHONE",
    "PAGER",
    "FAX",
    "EMAIL1",
    "EMAIL2",
    "URL1",
    "URL2",
    "VISIBLE",
    "MAILADDRESS.ADDRESS1",
    "MAILADDRESS.ADDRESS2",
    "MAILADDRESS.CITY",
    "MAILADDRESS.STATE",
    "MAILADDRESS.ZIP",
    "MAILADDRESS.COUNTRY",
    "MAILADDRESS.COUNTRYCODE",
)

VENDOR_FIELDS: tuple[str, ...] = (
    "RECORDNO",
    "VENDORID",
    "NAME",
    "NAME1099",
    "PARENTKEY",
    "PARENTID",
    "PARENTNAME",
    *(f"DISPLAYCONTACT.{name}" for name in _CONTACT),
    "PRINTAS",
    "EMAIL1",
    "TAXID",
    "TERMNAME",
    "VENDORACCOUNTNO",
    "VENDTYPE",
    "ACCOUNTLABEL",
    "APACCOUNT",
    "CREDITLIMIT",
    "ONHOLD",
    "DONOTCUTCHECK",
    "ONETIME",
    "PAYMENTPRIORITY",
    "COMMENTS",
    "CURRENCY",
    "STATUS",
    "TOTALDUE",
    "SUPDOCID",
    "WHENCREATED",
    "WHENMODIFIED",
    "CREATEDBY",
    "MODIFIEDBY",
    "MEGAENTITYKEY",
    "MEGAENTITYID",
    "MEGAENTITYNAME",
    "RECORD_URL",
)

APBILL_FIELDS: tuple[str, ...] = (
    "RECORDNO",
    "RECORDTYPE",
    "RECORDID",
    "STATE",
    "RAWSTATE",
    "VENDORID",
    "VENDORNAME",
    "DOCNUMBER",
    "DESCRIPTION",
    "TERMNAME",
    "WHENCREATED",
    "WHENPOSTED",
    "WHENDISCOUNT",
    "WHENDUE",
    "WHENPAID",
    "RECPAYMENTDATE",
    "CURRENCY",
    "BASECURR",
    "EXCH_RATE_DATE",
    "EXCH_RATE_TYPE_ID",
    "EXCHANGE_RATE",
    "TOTALENTERED",
    "TOTALPAID",
    "TOTALDUE",
    "TRX_TOTALENTERED",
    "TRX_TOTALPAID",
    "TRX_TOTALDUE",
    "BILLTOPAYTOCONTACTNAME",
    "SHIPTORETURNTOCONTACTNAME",
    "PRBATCH",
    "PAYMENTPRIORITY",
    "ONHOLD",
    "INCLUSIVETAX",
    "TAXSOLUTIONID",
    "SUPDOCID",
    "DUE_IN_DAYS",
    "SYSTEMGENERATED",
    "WHENMODIFIED",
    "CREATEDBY",
    "MODIFIEDBY",
    "MEGAENTITYKEY",
    "MEGAENTITYID",
    "MEGAENTITYNAME",
    "RECORD_URL",
)

APBILLITEM_FIELDS: tuple[str, ...] = (
    "RECORDNO",
    "RECORDKEY",
    "RECORDTYPE",
    "LINE_NO",
    "ACCOUNTNO",
    "ACCOUNTLABEL",
    "OFFSETGLACCOUNTNO",
    "AMOUNT",
    "TRX_AMOUNT",
    "TOTALPAID",
    "TRX_TOTALPAID",
    "ENTRYDESCRIPTION",
    "LOCATIONID",
    "DEPARTMENTID",
    "PROJECTID",
    "TASKID",
    "CLASSID",
    "CUSTOMERID",
    "VENDORID",
    "EMPLOYEEID",
    "ITEMID",
    "CONTRACTID",
    "WAREHOUSEID",
    "BILLABLE",
    "FORM1099",
    "CURRENCY",
    "BASECURR",
    "ENTRY_DATE",
    "WHENMODIFIED",
)

# Written only by the sandbox: totals, payments, audit fields, links, derived names.
READ_ONLY = frozenset(
    {
        "RECORDNO",
        "RECORDKEY",
        "RECORDTYPE",
        "STATE",
        "RAWSTATE",
        "VENDORNAME",
        "PARENTNAME",
        "PARENTKEY",
        "WHENPAID",
        "WHENMODIFIED",
        "CREATEDBY",
        "MODIFIEDBY",
        "TOTALENTERED",
        "TOTALPAID",
        "TOTALDUE",
        "TRX_TOTALENTERED",
        "TRX_TOTALPAID",
        "TRX_TOTALDUE",
        "AMOUNT",
        "DUE_IN_DAYS",
        "SYSTEMGENERATED",
        "MEGAENTITYKEY",
        "MEGAENTITYID",
        "MEGAENTITYNAME",
        "RECORD_URL",
    }
)

REQUIRED = {
    "VENDOR": frozenset({"VENDORID", "NAME", "DISPLAYCONTACT.PRINTAS"}),
    "APBILL": frozenset({"VENDORID", "WHENCREATED", "WHENDUE"}),
    "APADJUSTMENT": frozenset({"VENDORID", "WHENCREATED"}),
    "APBILLITEM": frozenset({"ACCOUNTNO", "TRX_AMOUNT"}),
}

SINGULAR = {
    "VENDOR": ("Vendor", "Vendors"),
    "APBILL": ("Bill", "Bills"),
    "APADJUSTMENT": ("Adjustment", "Adjustments"),
    "APBILLITEM": ("Bill Detail", "Bill Details"),
    "REPORTINGPERIOD": ("Reporting Period", "Reporting Periods"),
}

# object -> (object path, related object, relationship type, related by)
RELATIONSHIPS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "VENDOR": (("PARENT", "VENDOR", "MANY2ONE", "PARENTID"),),
    "APBILL": (
        ("VENDOR", "VENDOR", "MANY2ONE", "VENDORID"),
        ("APBILLITEM", "APBILLITEM", "ONE2MANY", "RECORDNO"),
    ),
    "APADJUSTMENT": (("VENDOR", "VENDOR", "MANY2ONE", "VENDORID"),),
    "APBILLITEM": (("APBILL", "APBILL", "MANY2ONE", "RECORDKEY"),),
    "REPORTINGPERIOD": (),
}

VALID_VALUES = {
    ("VENDOR", "STATUS"): ("active", "inactive"),
    ("APBILL", "STATE"): ("Draft", "Posted", "Partially Paid", "Paid", "Reversed"),
    ("APBILL", "PAYMENTPRIORITY"): ("urgent", "high", "normal", "low"),
}

INTEGER_FIELDS = frozenset({"RECORDNO", "RECORDKEY", "PARENTKEY", "LINE_NO", "MEGAENTITYKEY"})

TIMESTAMP_FIELDS = frozenset({"WHENMODIFIED"})

BOOLEAN_FIELDS = frozenset(
    {
        "ONHOLD",
        "DONOTCUTCHECK",
        "ONETIME",
        "INCLUSIVETAX",
        "BILLABLE",
        "FORM1099",
        "SYSTEMGENERATED",
        "DISPLAYCONTACT.TAXABLE",
        "DISPLAYCONTACT.VISIBLE",
        "CLOSED",
    }
)

DECIMAL_FIELDS = frozenset(
    {
        "TOTALENTERED",
        "TOTALPAID",
        "TOTALDUE",
        "TRX_TOTALENTERED",
        "TRX_TOTALPAID",
        "TRX_TOTALDUE",
        "AMOUNT",
        "TRX_AMOUNT",
        "CREDITLIMIT",
        "EXCHANGE_RATE",
    }
)

DATE_ONLY = frozenset(
    {
        "WHENCREATED",
        "WHENPOSTED",
        "WHENDUE",
        "WHENPAID",
        "WHENDISCOUNT",
        "RECPAYMENTDATE",
        "EXCH_RATE_DATE",
        "ENTRY_DATE",
        "START_DATE",
        "END_DATE",
    }
)


def datatype(obj: str, name: str) -> str:
    """The DATATYPE ``lookup`` gives a field."""
    if name in INTEGER_FIELDS:
        return "INTEGER"
    if name in DECIMAL_FIELDS:
        return "CURRENCY" if name != "EXCHANGE_RATE" else "DECIMAL"
    if name in BOOLEAN_FIELDS:
        return "BOOLEAN"
    if name in TIMESTAMP_FIELDS or (obj == "VENDOR" and name == "WHENCREATED"):
        return "TIMESTAMP"
    if name in DATE_ONLY:
        return "DATE"
    return "TEXT"


def label(name: str) -> str:
    """A field's label: its name in words (``DISPLAYCONTACT.PRINTAS`` -> ``Print as``)."""
    words = name.rsplit(".", 1)[-1].replace("_", " ").lower()
    return words[:1].upper() + words[1:]
