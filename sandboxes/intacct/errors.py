"""The Intacct sandbox's error numbers and the refusals its functions raise.

A function that cannot be carried out raises ``Refusal`` with the errors Intacct would
put in its result: the specific cause first, the generic "Could not create ..." after.
"""

from __future__ import annotations

import datetime as dt
import secrets

from adapters.intacct.xml import ErrorDetail, format_date

E_AUTH = "XL03000006"

E_PARSE = "XL03000003"

E_ROLLED_BACK = "XL03000009"

E_REPEATED = "XL03000004"

E_NOT_ALONE = "XL03000005"

E_CREATE = "BL01001973"

E_FIELD = "BL03000018"

E_EXISTS = "BL34000061"

E_READ = "DL02000001"

E_QUERY = "Query Failed"


ROLLED_BACK = ErrorDetail(
    E_ROLLED_BACK,
    "The entire transaction in this operation has been rolled back due to an error.",
)


CLOSED_TEXT = (
    "Periods are closed. Your transaction date ({date}) is within a period that's been closed. "
    "You can add, modify, or delete a transaction only if the date of the transaction is within "
    "a period that's open."
)


class Refusal(Exception):
    """A function fails with these errors (specific cause first, generic wrappers after)."""

    def __init__(self, *errors: ErrorDetail) -> None:
        super().__init__(errors[0].description2 or errors[0].description)
        self.errors = errors


def support_id() -> str:
    # Intacct URL-encodes the ``~`` of its support ids inside description2.
    return f"{secrets.token_hex(4)}%7E{secrets.token_hex(6)}"


def refuse(errorno: str, description: str, description2: str = "", correction: str = "") -> Refusal:
    text = f"{description2} [Support ID: {support_id()}]" if description2 else ""
    return Refusal(ErrorDetail(errorno, description, text, correction))


def cannot_create(obj: str, cause: ErrorDetail) -> Refusal:
    label = {"APBILL": "APBill", "APADJUSTMENT": "APAdjustment", "VENDOR": "Vendor"}.get(obj, obj)
    return Refusal(cause, ErrorDetail(E_CREATE, f"Could not create {label} record!"))


def missing(name: str) -> ErrorDetail:
    return ErrorDetail(E_FIELD, "Required field missing", f"Required field {name} is missing.")


def closed_refusal(obj: str, day: dt.date) -> Refusal:
    label = {"APBILL": "APBill", "APADJUSTMENT": "APAdjustment"}.get(obj, obj)
    return Refusal(
        ErrorDetail(
            E_CREATE,
            "Could not create Document record!",
            f"{CLOSED_TEXT.format(date=format_date(day))} [Support ID: {support_id()}]",
            "Change the transaction date to one in an open period, or reopen the period.",
        ),
        ErrorDetail(E_CREATE, f"Could not create {label} record!"),
    )
