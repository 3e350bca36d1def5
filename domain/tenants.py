"""The tenants file (TOML): per tenant, the Dext account, the Sage company, GL mapping, policies.

Secrets never live here: a ledger's credentials come from the environment, named by
``credentials_env`` (a prefix such as ``BILLSTREAM_ACME``).
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.money import ISO_4217
from domain.normalize import vendor_match_key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LedgerConfig(_Strict):
    kind: Literal["local", "intacct", "sage-accounting"] = "local"
    company: str  # Intacct company id, Sage Accounting business id, or the local ledger's name
    credentials_env: str | None = None  # env-var prefix holding this company's secrets
    url: str | None = None  # endpoint override (sandboxes)


class SupplierRule(_Strict):
    gl_account: str | None = None
    tax_code: str | None = None
    terms_days: int | None = Field(default=None, ge=0, le=365)
    department: str | None = None
    location: str | None = None
    project: str | None = None


class Tenant(_Strict):
    id: str
    name: str = ""
    dext_account: str | None = None
    ledger: LedgerConfig
    locale: str | None = None  # e.g. en-GB (day-first) or en-US (month-first)
    base_currency: str
    currencies: list[str]
    gl_accounts: dict[str, str] = Field(default_factory=dict)  # category name or code -> GL
    tax_codes: dict[str, str] = Field(default_factory=dict)  # tax rate percent ("20") -> code
    suppliers: dict[str, SupplierRule] = Field(default_factory=dict)  # supplier name -> rule
    tolerance: Decimal = Decimal("0.01")
    default_terms_days: int = Field(default=30, ge=0, le=365)
    auto_create_vendors: bool = True
    closed_period: Literal["hold", "redate"] = "hold"
    max_invoice_age_days: int = Field(default=730, ge=1)
    max_future_days: int = Field(default=31, ge=0)
    document_hosts: list[str] = Field(default_factory=list)
    document_dirs: list[str] = Field(default_factory=list)  # folders file: documents may come from

    @field_validator("base_currency")
    @classmethod
    def _iso_base(cls, v: str) -> str:
        if v.upper() not in ISO_4217:
            raise ValueError(f"{v!r} is not an ISO 4217 currency code")
        return v.upper()

    @field_validator("currencies")
    @classmethod
    def _iso_list(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c.upper() not in ISO_4217]
        if bad:
            raise ValueError(f"not ISO 4217 currency codes: {', '.join(bad)}")
        return [c.upper() for c in v]

    def supplier_rule(self, supplier: str) -> SupplierRule | None:
        key = vendor_match_key(supplier)
        for name, rule in self.suppliers.items():
            if vendor_match_key(name) == key:
                return rule
        return None


class TenantsFileError(ValueError):
    """The tenants file cannot be used; the message names the file, line and key."""


class Tenants(_Strict):
    tenants: dict[str, Tenant]

    def get(self, tenant_id: str) -> Tenant:
        try:
            return self.tenants[tenant_id]
        except KeyError:
            known = ", ".join(sorted(self.tenants)) or "none"
            raise KeyError(f"unknown tenant {tenant_id!r} (known: {known})") from None

    def all(self) -> list[Tenant]:
        return list(self.tenants.values())


def _line_of(text: str, tenant: str, key_path: tuple[str | int, ...]) -> int | None:
    """Best-effort line number of a key inside ``[tenants.<tenant>...]`` for error messages."""
    lines = text.splitlines()
    section = f"[tenants.{tenant}"
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith(section)), None)
    if start is None:
        return None
    wanted = [str(k) for k in key_path if isinstance(k, str)]
    leaf = wanted[-1] if wanted else None
    for i in range(start, len(lines)):
        stripped = lines[i].strip()
        if leaf and (stripped.startswith(f"{leaf} ") or stripped.startswith(f"{leaf}=")):
            return i + 1
        if leaf and stripped.startswith("[") and stripped.rstrip("]").endswith(f".{leaf}"):
            return i + 1
    return start + 1


def parse_tenants(text: str, source: str = "<tenants>") -> Tenants:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TenantsFileError(f"{source}: not valid TOML: {exc}") from exc
    sections = raw.get("tenants")
    if not isinstance(sections, dict) or not sections:
        raise TenantsFileError(f"{source}: no [tenants.<id>] section found")
    tenants: dict[str, Tenant] = {}
    errors: list[str] = []
    for tenant_id, body in sections.items():
        if not isinstance(body, dict):
            errors.append(f"{source}: tenants.{tenant_id} must be a table")
            continue
        try:
            tenants[tenant_id] = Tenant.model_validate({"id": tenant_id, **body})
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                line = _line_of(text, tenant_id, loc)
                where = f"{source}:{line}" if line else source
                key = ".".join(str(p) for p in ("tenants", tenant_id, *loc))
                errors.append(f"{where}: {key}: {err['msg']}")
    if errors:
        raise TenantsFileError("\n".join(errors))
    return Tenants(tenants=tenants)


def load_tenants(path: Path) -> Tenants:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TenantsFileError(f"cannot read tenants file {path}: {exc.strerror}") from exc
    return parse_tenants(text, str(path))
