"""Intacct XML envelopes: requests and responses, built and parsed with real XML libraries.

Supplier names and memos carry ``&``, ``<`` and quotes, so nothing here formats XML as text:
requests are ElementTree trees serialised by the library, and every document that comes in
(responses in the client, requests in the sandbox) is parsed with defusedxml, which refuses
entity expansion and external references.

Both sides of the wire live here so that the client, the sandbox and the unit tests share one
definition of the envelope (the sandbox speaks the same XML as the real gateway).
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Union
from xml.etree.ElementTree import Element, SubElement, tostring

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

DTD_VERSION = "3.0"

# Characters XML 1.0 cannot carry at all, even escaped: dropped rather than sent, because the
# gateway would reject the whole request (XL03000003) for one stray control character.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SUPPORT_ID = re.compile(r"\s*\[Support ID:\s*([^\]]*)\]\s*", re.IGNORECASE)

Value = Union[  # noqa: UP007  (a recursive alias needs the Union spelling at runtime)
    str,
    int,
    bool,
    Decimal,
    dt.date,
    Element,
    None,
    Mapping[str, "Value"],
    Sequence["Value"],
]


class EnvelopeError(ValueError):
    """A document that is not a well-formed Intacct envelope."""


# -- scalar formats -------------------------------------------------------------------------


def clean_text(text: str) -> str:
    return _NOT_XML.sub("", text)


def format_date(day: dt.date) -> str:
    """Generic functions take ``mm/dd/yyyy``; Intacct dates carry no time zone."""
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def parse_date(text: str) -> dt.date:
    """``m/d/yyyy`` or ``mm/dd/yyyy`` (what Intacct returns); ISO dates are accepted too."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return dt.date.fromisoformat(text)
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+\d{1,2}:\d{2}:\d{2})?", text)
    if m is None:
        raise ValueError(f"not an Intacct date: {text!r}")
    return dt.date(int(m.group(3)), int(m.group(1)), int(m.group(2)))


def format_amount(amount: Decimal, places: int = 2) -> str:
    """Money rounded half-up to ``places``; Intacct rounds past 2 places, we do it first."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amounts must be Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError("amounts must be finite")
    quantum = Decimal(1).scaleb(-places)
    return format(amount.quantize(quantum, rounding=ROUND_HALF_UP), "f")


def parse_amount(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    return value


# -- building elements ----------------------------------------------------------------------


def _scalar(value: str | int | bool | Decimal | dt.date) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return format_date(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return clean_text(str(value))


def element(tag: str, value: Value = None, attrs: Mapping[str, str] | None = None) -> Element:
    """A tree from plain values: mappings become children (``None`` values are left out),
    a sequence under a key repeats that key, an ``Element`` is adopted as is."""
    el = Element(tag, {k: clean_text(v) for k, v in (attrs or {}).items()})
    _fill(el, value)
    return el


def _fill(el: Element, value: Value) -> None:
    if value is None:
        return
    if isinstance(value, Element):
        el.append(value)
    elif isinstance(value, Mapping):
        for key, child in value.items():
            if child is None:
                continue
            if isinstance(child, Sequence) and not isinstance(child, str | bytes):
                for item in child:
                    _fill(SubElement(el, key), item)
            else:
                _fill(SubElement(el, key), child)
    elif isinstance(value, bytes):
        raise TypeError("bytes cannot go in XML as they are; base64-encode them first")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            _fill(el, item)
    else:
        el.text = _scalar(value)


def legacy_date(tag: str, day: dt.date) -> Element:
    """Legacy (object-specific) functions take dates as ``<year/><month/><day/>``."""
    return element(tag, {"year": str(day.year), "month": str(day.month), "day": str(day.day)})


def serialize(root: Element) -> bytes:
    # encoding="unicode" then UTF-8, so the declaration is ours and always the same.
    text: str = tostring(root, encoding="unicode")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + text.encode("utf-8")


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    """Login credentials of the operation block; the password never appears in ``repr``."""

    user_id: str
    company_id: str
    password: str = field(repr=False)
    location_id: str | None = None


@dataclass(frozen=True)
class Function:
    """One ``<function controlid=...>`` of a request; ``body`` is its single child."""

    controlid: str
    body: Element

    @property
    def name(self) -> str:
        return self.body.tag


def build_request(
    *,
    sender_id: str,
    sender_password: str,
    auth: Login | str,
    functions: Sequence[Function],
    control_id: str,
    transaction: bool = False,
    unique_id: bool = False,
    dtd_version: str = DTD_VERSION,
) -> bytes:
    """A whole request document. ``auth`` is login credentials or a session id."""
    request = Element("request")
    control = SubElement(request, "control")
    _fill(
        control,
        {
            "senderid": sender_id,
            "password": sender_password,
            "controlid": control_id,
            "uniqueid": unique_id,
            "dtdversion": dtd_version,
            "includewhitespace": False,
        },
    )
    operation = SubElement(request, "operation", {"transaction": _scalar(transaction)})
    authentication = SubElement(operation, "authentication")
    if isinstance(auth, Login):
        _fill(
            SubElement(authentication, "login"),
            {
                "userid": auth.user_id,
                "companyid": auth.company_id,
                "password": auth.password,
                "locationid": auth.location_id,
            },
        )
    else:
        SubElement(authentication, "sessionid").text = clean_text(auth)
    content = SubElement(operation, "content")
    for fn in functions:
        wrapper = SubElement(content, "function", {"controlid": clean_text(fn.controlid)})
        wrapper.append(fn.body)
    return serialize(request)


@dataclass(frozen=True)
class ParsedRequest:
    """A request as the gateway (the sandbox) reads it."""

    sender_id: str
    sender_password: str = field(repr=False)
    control_id: str
    unique_id: bool
    dtd_version: str
    transaction: bool
    login: Login | None
    session_id: str | None = field(repr=False)
    functions: tuple[Function, ...]


def _parse_xml(body: bytes | str) -> Element:
    try:
        root: Element = SafeET.fromstring(body)
    except DefusedXmlException as exc:
        raise EnvelopeError(f"forbidden XML construct: {exc.__class__.__name__}") from exc
    except SafeET.ParseError as exc:
        raise EnvelopeError(f"XML Parse error: {exc}") from exc
    return root


def _text(el: Element | None, path: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(path)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def _truthy(text: str) -> bool:
    return text.strip().lower() == "true"


def parse_request(body: bytes | str) -> ParsedRequest:
    root = _parse_xml(body)
    if root.tag != "request":
        raise EnvelopeError(f"root element is <{root.tag}>, expected <request>")
    control = root.find("control")
    if control is None:
        raise EnvelopeError("missing <control>")
    operation = root.find("operation")
    if operation is None:
        raise EnvelopeError("missing <operation>")
    auth = operation.find("authentication")
    if auth is None:
        raise EnvelopeError("missing <authentication>")
    login_el = auth.find("login")
    login = None
    if login_el is not None:
        login = Login(
            user_id=_text(login_el, "userid"),
            company_id=_text(login_el, "companyid"),
            password=_text(login_el, "password"),
            location_id=_text(login_el, "locationid") or None,
        )
    session_id = _text(auth, "sessionid") or None
    if login is None and session_id is None:
        raise EnvelopeError("<authentication> has neither <login> nor <sessionid>")
    content = operation.find("content")
    if content is None:
        raise EnvelopeError("missing <content>")
    functions = []
    for fn in content.findall("function"):
        children = list(fn)
        if len(children) != 1:
            raise EnvelopeError("each <function> must hold exactly one element")
        functions.append(Function(controlid=fn.get("controlid", ""), body=children[0]))
    if not functions:
        raise EnvelopeError("<content> holds no <function>")
    return ParsedRequest(
        sender_id=_text(control, "senderid"),
        sender_password=_text(control, "password"),
        control_id=_text(control, "controlid"),
        unique_id=_truthy(_text(control, "uniqueid", "false")),
        dtd_version=_text(control, "dtdversion"),
        transaction=_truthy(operation.get("transaction", "false")),
        login=login,
        session_id=session_id,
        functions=tuple(functions),
    )


# -- responses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorDetail:
    """One ``<error>`` of an ``<errormessage>``."""

    errorno: str
    description: str = ""
    description2: str = ""
    correction: str = ""

    @property
    def support_id(self) -> str | None:
        for text in (self.description2, self.description):
            m = _SUPPORT_ID.search(urllib.parse.unquote(text))
            if m:
                return m.group(1).strip()
        return None

    @property
    def text(self) -> str:
        """What Intacct says, for a person: description2 without the support id."""
        plain = _SUPPORT_ID.sub(" ", urllib.parse.unquote(self.description2)).strip()
        return plain or self.description.strip()

    def as_dict(self) -> dict[str, str]:
        return {
            "errorno": self.errorno,
            "description": self.description,
            "description2": urllib.parse.unquote(self.description2),
            "correction": self.correction,
        }


def parse_errors(errormessage: Element | None) -> tuple[ErrorDetail, ...]:
    if errormessage is None:
        return ()
    return tuple(
        ErrorDetail(
            errorno=_text(err, "errorno"),
            description=_text(err, "description"),
            description2=_text(err, "description2"),
            correction=_text(err, "correction"),
        )
        for err in errormessage.findall("error")
    )


def element_value(el: Element) -> Any:
    """``<a>x</a>`` -> ``"x"``; nested elements -> dict, repeated tags -> list."""
    children = list(el)
    if not children:
        return (el.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        value = element_value(child)
        if child.tag in out:
            if not isinstance(out[child.tag], list):
                out[child.tag] = [out[child.tag]]
            out[child.tag].append(value)
        else:
            out[child.tag] = value
    return out


@dataclass(frozen=True)
class Result:
    status: str
    function: str
    controlid: str
    errors: tuple[ErrorDetail, ...] = ()
    data: Element | None = None
    key: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def records(self) -> list[dict[str, Any]]:
        """The records under ``<data>``, one dict per child element."""
        if self.data is None:
            return []
        out = []
        for child in self.data:
            value = element_value(child)
            out.append(value if isinstance(value, dict) else {})
        return out

    def _data_attr(self, name: str) -> str | None:
        return None if self.data is None else self.data.get(name)

    @property
    def numremaining(self) -> int:
        return int(self._data_attr("numremaining") or 0)

    @property
    def totalcount(self) -> int | None:
        value = self._data_attr("totalcount")
        return None if value is None else int(value)

    @property
    def result_id(self) -> str | None:
        return self._data_attr("resultId") or None


@dataclass(frozen=True)
class Authentication:
    status: str
    user_id: str = ""
    company_id: str = ""
    location_id: str = ""
    session_timestamp: dt.datetime | None = None
    session_timeout: dt.datetime | None = None
    errors: tuple[ErrorDetail, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "success"


@dataclass(frozen=True)
class Response:
    """A parsed response: control status, authentication block, one result per function.

    Errors sit in a different place at each level: a control failure puts ``<errormessage>``
    beside ``<control>`` (no operation); an authentication failure puts it inside
    ``<operation>`` (no results); a function failure puts it inside its ``<result>``.
    """

    control_status: str
    control_id: str = ""
    errors: tuple[ErrorDetail, ...] = ()
    authentication: Authentication | None = None
    results: tuple[Result, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            self.control_status == "success"
            and self.authentication is not None
            and self.authentication.ok
        )


def _timestamp(text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_response(body: bytes | str) -> Response:
    root = _parse_xml(body)
    if root.tag != "response":
        raise EnvelopeError(f"root element is <{root.tag}>, expected <response>")
    control = root.find("control")
    if control is None:
        # The gateway's own refusals (a malformed request, an XL... error) can come with no
        # <control> at all: keep their numbers and text rather than lose them.
        gateway = parse_errors(root.find("errormessage"))
        if gateway:
            return Response(control_status="failure", errors=gateway)
        raise EnvelopeError("missing <control>")
    control_status = _text(control, "status")
    top_errors = parse_errors(root.find("errormessage"))
    operation = root.find("operation")
    if control_status != "success" or operation is None:
        return Response(
            control_status=control_status or "failure",
            control_id=_text(control, "controlid"),
            errors=top_errors,
        )
    auth_el = operation.find("authentication")
    if auth_el is None:
        raise EnvelopeError("missing <authentication> in <operation>")
    authentication = Authentication(
        status=_text(auth_el, "status"),
        user_id=_text(auth_el, "userid"),
        company_id=_text(auth_el, "companyid"),
        location_id=_text(auth_el, "locationid"),
        session_timestamp=_timestamp(_text(auth_el, "sessiontimestamp")),
        session_timeout=_timestamp(_text(auth_el, "sessiontimeout")),
        errors=parse_errors(operation.find("errormessage"))
        + parse_errors(auth_el.find("errormessage")),
    )
    results = tuple(
        Result(
            status=_text(res, "status"),
            function=_text(res, "function"),
            controlid=_text(res, "controlid"),
            errors=parse_errors(res.find("errormessage")),
            data=res.find("data"),
            key=_text(res, "key") or None,
        )
        for res in operation.findall("result")
    )
    return Response(
        control_status=control_status,
        control_id=_text(control, "controlid"),
        errors=top_errors,
        authentication=authentication,
        results=results,
    )


# -- building responses (the sandbox's side) ------------------------------------------------


def errormessage(errors: Sequence[ErrorDetail]) -> Element:
    el = Element("errormessage")
    for err in errors:
        _fill(
            SubElement(el, "error"),
            {
                "errorno": err.errorno,
                "description": err.description,
                "description2": err.description2,
                "correction": err.correction,
            },
        )
    return el


def result_element(
    *,
    status: str,
    function: str,
    controlid: str,
    data: Element | None = None,
    errors: Sequence[ErrorDetail] = (),
    key: str | None = None,
) -> Element:
    res = element("result", {"status": status, "function": function, "controlid": controlid})
    if key is not None:
        SubElement(res, "key").text = clean_text(key)
    if data is not None:
        res.append(data)
    if errors:
        res.append(errormessage(errors))
    return res


def _control(status: str, sender_id: str, control_id: str, unique_id: bool) -> Element:
    return element(
        "control",
        {
            "status": status,
            "senderid": sender_id,
            "controlid": control_id,
            "uniqueid": unique_id,
            "dtdversion": DTD_VERSION,
        },
    )


def control_failure(
    errors: Sequence[ErrorDetail], *, sender_id: str = "", control_id: str = ""
) -> bytes:
    root = Element("response")
    root.append(_control("failure", sender_id, control_id, False))
    root.append(errormessage(errors))
    return serialize(root)


def authentication_failure(
    errors: Sequence[ErrorDetail],
    *,
    sender_id: str,
    control_id: str,
    unique_id: bool,
    user_id: str = "",
    company_id: str = "",
) -> bytes:
    root = Element("response")
    root.append(_control("success", sender_id, control_id, unique_id))
    operation = SubElement(root, "operation")
    operation.append(
        element(
            "authentication",
            {"status": "failure", "userid": user_id, "companyid": company_id},
        )
    )
    operation.append(errormessage(errors))
    return serialize(root)


def success_response(
    *,
    sender_id: str,
    control_id: str,
    unique_id: bool,
    user_id: str,
    company_id: str,
    location_id: str,
    session_timestamp: dt.datetime,
    session_timeout: dt.datetime,
    results: Sequence[Element],
) -> bytes:
    root = Element("response")
    root.append(_control("success", sender_id, control_id, unique_id))
    operation = SubElement(root, "operation")
    operation.append(
        element(
            "authentication",
            {
                "status": "success",
                "userid": user_id,
                "companyid": company_id,
                "locationid": location_id,
                "sessiontimestamp": session_timestamp.isoformat(timespec="seconds"),
                "sessiontimeout": session_timeout.isoformat(timespec="seconds"),
            },
        )
    )
    for res in results:
        operation.append(res)
    return serialize(root)
