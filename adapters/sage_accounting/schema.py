"""Requests and responses checked against Sage's own Swagger definitions.

``swagger_subset.json`` is the part of Sage's ``swagger.full.json`` (v3.1) that billstream
touches: the operations below and every definition they reach, with prose descriptions
removed. ``extract_subset`` regenerates it from the full file (a unit test proves the
vendored copy still matches the reference copy).

Validation is stricter than the Swagger file on purpose, so that it can fail:
- every object that lists its properties refuses unknown ones (Sage's file never says
  ``additionalProperties``; a typo in a field name would otherwise pass silently);
- ``idempotency_id`` (32 hex) is allowed inside the resources Sage's idempotency guide names,
  although the 2022 file predates it; line ``description`` is declared (the file requires it
  but forgot to list it);
- list responses are the ``$items`` envelope Sage actually returns (the file says "array");
- errors are Sage's array of ``$severity``/``$dataCode``/``$message``/``$source``;
- ``date`` must be ``YYYY-MM-DD`` exactly.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker

SUBSET_PATH = Path(__file__).with_name("swagger_subset.json")

# (method, path) of every operation billstream's client or sandbox uses.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/contacts"),
    ("post", "/contacts"),
    ("get", "/contacts/{key}"),
    ("get", "/purchase_invoices"),
    ("post", "/purchase_invoices"),
    ("get", "/purchase_invoices/{key}"),
    ("delete", "/purchase_invoices/{key}"),
    ("post", "/purchase_invoices/{key}/release"),
    ("get", "/purchase_credit_notes"),
    ("post", "/purchase_credit_notes"),
    ("get", "/purchase_credit_notes/{key}"),
    ("delete", "/purchase_credit_notes/{key}"),
    ("post", "/purchase_credit_notes/{key}/release"),
    ("get", "/attachments"),
    ("post", "/attachments"),
    ("get", "/attachments/{key}"),
    ("delete", "/attachments/{key}"),
    ("get", "/ledger_accounts"),
    ("get", "/tax_rates"),
    ("get", "/financial_settings"),
    ("put", "/financial_settings"),
)

# Resource objects that accept ``idempotency_id`` per Sage's idempotency guide.
_IDEMPOTENT_BODIES = {
    "postContacts": "contact",
    "postPurchaseInvoices": "purchase_invoice",
    "postPurchaseCreditNotes": "purchase_credit_note",
}
_LINES = {"postPurchaseInvoices": "invoice_lines", "postPurchaseCreditNotes": "credit_note_lines"}

_ERROR_ARRAY: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "$severity": {"type": "string"},
            "$dataCode": {"type": "string"},
            "$message": {"type": "string"},
            "$source": {"type": "string"},
        },
        "required": ["$severity", "$dataCode", "$message", "$source"],
        "additionalProperties": False,
    },
}


def _envelope(item_ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "$total": {"type": "integer", "minimum": 0},
            "$page": {"type": "integer", "minimum": 1},
            "$next": {"type": ["string", "null"]},
            "$back": {"type": ["string", "null"]},
            "$itemsPerPage": {"type": "integer", "minimum": 1, "maximum": 200},
            "$items_per_page": {"type": "integer", "minimum": 1, "maximum": 200},
            "$items": {"type": "array", "items": {"$ref": item_ref}},
        },
        "required": ["$total", "$page", "$items"],
        "additionalProperties": False,
    }


# -- extraction ---------------------------------------------------------------------------------


def _strip_prose(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _strip_prose(v)
            for k, v in node.items()
            # a *property* may be called "description"; only prose strings go
            if not (k in {"description", "summary"} and isinstance(v, str))
            and k not in {"x-sage-changelog", "x-sage-pathtitle", "example"}
        }
    if isinstance(node, list):
        return [_strip_prose(v) for v in node]
    return node


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                found.add(v.rsplit("/", 1)[-1])
            else:
                _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def extract_subset(full: dict[str, Any]) -> dict[str, Any]:
    """The vendored subset of Sage's full Swagger document."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        paths.setdefault(path, {})[method] = _strip_prose(full["paths"][path][method])
    wanted: set[str] = set()
    _refs(paths, wanted)
    definitions: dict[str, Any] = {}
    todo = sorted(wanted)
    while todo:
        name = todo.pop()
        if name in definitions:
            continue
        definitions[name] = _strip_prose(full["definitions"][name])
        more: set[str] = set()
        _refs(definitions[name], more)
        todo.extend(sorted(more - definitions.keys()))
    return {
        "swagger": full["swagger"],
        "info": {"title": full["info"]["title"], "version": full["info"].get("version", "")},
        "host": full["host"],
        "basePath": full["basePath"],
        "paths": paths,
        "definitions": dict(sorted(definitions.items())),
    }


def write_subset(full_swagger: Path, dest: Path = SUBSET_PATH) -> None:
    full = json.loads(full_swagger.read_text(encoding="utf-8"))
    dest.write_text(json.dumps(extract_subset(full), indent=1, sort_keys=True) + "\n")


# -- strict validators --------------------------------------------------------------------------


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_format_checker = FormatChecker(formats=())


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        raise ValueError(f"{value!r} is not YYYY-MM-DD")
    dt.date.fromisoformat(value)
    return True


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


_format_checker.checks("date", raises=ValueError)(_is_date)
_format_checker.checks("date-time", raises=ValueError)(_is_date_time)


class Spec:
    """The vendored Swagger subset, with strict validators built on demand."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.operations: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for path, methods in document["paths"].items():
            for method, op in methods.items():
                self.operations[op["operationId"]] = (method.upper(), path, op)
        definitions = _strict(copy.deepcopy(document["definitions"]))
        for op_id, resource in _IDEMPOTENT_BODIES.items():
            body = definitions[op_id]["properties"][resource]
            body["properties"]["idempotency_id"] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
            lines = _LINES.get(op_id)
            if lines:
                body["properties"][lines]["items"]["properties"]["description"] = {
                    "type": "string",
                    "minLength": 1,
                }
        definitions["_SageErrors"] = _ERROR_ARRAY
        self._definitions = definitions
        self._validators: dict[str, Draft4Validator] = {}

    def _validator(self, name: str, schema: dict[str, Any] | None = None) -> Draft4Validator:
        if name not in self._validators:
            if schema is not None:
                self._definitions[name] = schema
            root = {"definitions": self._definitions, "$ref": f"#/definitions/{name}"}
            self._validators[name] = Draft4Validator(root, format_checker=_format_checker)
        return self._validators[name]

    @staticmethod
    def _errors(validator: Draft4Validator, instance: Any) -> list[str]:
        out = []
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            out.append(f"{where}: {err.message[:300]}")
        return out

    def operation(self, op_id: str) -> tuple[str, str, dict[str, Any]]:
        return self.operations[op_id]

    def request_errors(
        self, op_id: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> list[str]:
        """Problems with a request: undeclared or mistyped query parameters, body schema."""
        _, _, op = self.operations[op_id]
        errors: list[str] = []
        params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
        for name, value in (query or {}).items():
            spec = params.get(name)
            if spec is None:
                errors.append(f"query {name}: not a parameter of {op_id}")
                continue
            text = str(value)
            kind = spec.get("type")
            if kind == "integer":
                if not re.fullmatch(r"-?\d+", text):
                    errors.append(f"query {name}: {text!r} is not an integer")
                else:
                    n = int(text)
                    if "minimum" in spec and n < spec["minimum"]:
                        errors.append(f"query {name}: {n} < {spec['minimum']}")
                    if "maximum" in spec and n > spec["maximum"]:
                        errors.append(f"query {name}: {n} > {spec['maximum']}")
            elif kind == "boolean" and text not in {"true", "false"}:
                errors.append(f"query {name}: {text!r} is not true/false")
        body_params = [p for p in op.get("parameters", []) if p.get("in") == "body"]
        if body_params:
            ref = body_params[0]["schema"]["$ref"].rsplit("/", 1)[-1]
            if body is None:
                errors.append("body: missing")
            else:
                errors += [f"body {e}" for e in self._errors(self._validator(ref), body)]
        elif body is not None:
            errors.append(f"body: {op_id} takes no body")
        return errors

    def response_errors(self, op_id: str, status: int, body: Any) -> list[str]:
        """Problems with a response: Sage's error array for 4xx/5xx, else the documented shape."""
        _, _, op = self.operations[op_id]
        if status >= 400:
            return self._errors(self._validator("_SageErrors"), body)
        responses = op.get("responses", {})
        documented = responses.get(str(status))
        if documented is None:
            return [f"status {status} is not documented for {op_id} ({sorted(responses)})"]
        schema = documented.get("schema")
        if schema is None:
            return [] if body is None else [f"{op_id} {status} has no body, got one"]
        if schema.get("type") == "array":
            item = schema["items"]["$ref"]
            name = f"_List_{item.rsplit('/', 1)[-1]}"
            return self._errors(self._validator(name, _envelope(item)), body)
        name = schema["$ref"].rsplit("/", 1)[-1]
        return self._errors(self._validator(name), body)


@cache
def spec() -> Spec:
    return Spec(json.loads(SUBSET_PATH.read_text(encoding="utf-8")))


class SchemaViolation(AssertionError):
    """A request or response that does not follow Sage's Swagger definitions."""

    def __init__(self, what: str, errors: list[str]) -> None:
        super().__init__(f"{what} breaks the Sage v3.1 schema: " + "; ".join(errors[:10]))
        self.errors = errors


def check_request(op_id: str, body: Any = None, query: dict[str, Any] | None = None) -> None:
    errors = spec().request_errors(op_id, body, query)
    if errors:
        raise SchemaViolation(f"request {op_id}", errors)


def check_response(op_id: str, status: int, body: Any) -> None:
    errors = spec().response_errors(op_id, status, body)
    if errors:
        raise SchemaViolation(f"response {op_id} {status}", errors)
