"""The tenants file (TOML): per tenant, the Dext account, the Sage company, GL mapping, policies.

Secrets never live here: a ledger's credentials come from the environment, named by
``credentials_env`` (a prefix such as ``BILLSTREAM_ACME``).

The file is checked completely on load and every mistake is reported at once as
``file:line: tenants.<id>.<key>: what is wrong``, so a typo is found before an invoice is.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.duplicates.rules import DuplicateRules
from domain.errors import Reason
from domain.locales import Conventions, DateOrder, DecimalSeparator, conventions, known_locales
from domain.money import ISO_4217, quantum
from domain.normalize import label_key, vendor_match_key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LedgerConfig(_Strict):
    kind: Literal["local", "intacct", "sage-accounting"] = "local"
    company: str = Field(min_length=1)  # Intacct company id, Sage business id, local name
    credentials_env: str | None = Field(  # env-var prefix holding this company's secrets
        default=None, pattern=r"^[A-Z][A-Z0-9_]*$"
    )
    url: str | None = None  # endpoint override (sandboxes)


class SupplierRule(_Strict):
    """Overrides for one supplier; each one set wins over the category's coding."""

    gl_account: str | None = Field(default=None, min_length=1)
    tax_code: str | None = Field(default=None, min_length=1)
    terms_days: int | None = Field(default=None, ge=0, le=365)
    department: str | None = None
    location: str | None = None
    project: str | None = None


# An environment variable's name: notification secrets (webhook URLs, SMTP passwords) are
# named here and read from the environment, never written in the file.
ENV_NAME = r"^[A-Z][A-Z0-9_]*$"
# Reasons a person must act on; the transient ones resolve themselves and validation
# problems are fixed in Dext, where the bookkeeper already looks.
DEFAULT_NOTIFY_REASONS: tuple[Reason, ...] = (
    Reason.AUTH,
    Reason.PERIOD_CLOSED,
    Reason.DUPLICATE,
    Reason.CURRENCY_MISMATCH,
    Reason.MAPPING_MISSING,
)
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


def _address(value: str) -> str:
    value = value.strip()
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


class EmailNotify(_Strict):
    """SMTP delivery of digests. Host and port are not secret; the login is, so it is named."""

    to: list[str] = Field(min_length=1)
    sender: str
    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int | None = Field(default=None, ge=1, le=65535)  # default: 587, 465 or 25
    security: Literal["starttls", "tls", "none"] = "starttls"
    username_env: str | None = Field(default=None, pattern=ENV_NAME)
    password_env: str | None = Field(default=None, pattern=ENV_NAME)
    ca_file: str | None = None  # a private CA for the relay's certificate

    @field_validator("to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        return [_address(a) for a in v]

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        return _address(v)

    @model_validator(mode="after")
    def _login(self) -> EmailNotify:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together: set both or neither")
        if self.username_env and self.security == "none":
            raise ValueError(
                "a login over an unencrypted connection would expose the password: "
                "use security = 'starttls' or 'tls'"
            )
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


class NotifyConfig(_Strict):
    """Who hears about parked items, for which reasons, and how often at most."""

    reasons: list[Reason] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_REASONS))
    digest_seconds: int = Field(default=300, ge=1, le=86_400)
    slack_webhook_env: str | None = Field(default=None, pattern=ENV_NAME)
    email: EmailNotify | None = None
    # A link to the operator page in each message. No query: its token is a secret.
    page_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#<>|]+$")

    @field_validator("reasons")
    @classmethod
    def _reasons(cls, v: list[Reason]) -> list[Reason]:
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _a_channel(self) -> NotifyConfig:
        if self.slack_webhook_env is None and self.email is None:
            raise ValueError(
                "name at least one channel: slack_webhook_env or a [notify.email] table"
            )
        return self


def rate_key(rate: Decimal) -> str:
    """The canonical text of a tax rate percent: 20, 20.0 and 20.00 are all "20"."""
    text = format(rate.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def _decimal_from_toml(value: Any) -> Any:
    """TOML ints and quoted strings are both fine for decimal settings; floats never appear
    because the file is parsed with ``parse_float=Decimal``."""
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    return value


class Tenant(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # part of the Kafka key: no ':'
    name: str = ""
    dext_account: str | None = None
    ledger: LedgerConfig
    # Explicit conventions win over the locale's; needed for a locale the table lacks.
    date_order: DateOrder | None = None
    decimal_separator: DecimalSeparator | None = None
    locale: str | None = None  # e.g. en-GB (day-first, 1,234.56) or en-US (month-first)
    base_currency: str
    currencies: list[str] = Field(default_factory=list)  # enabled in the Sage company
    gl_accounts: dict[str, str] = Field(default_factory=dict)  # category name or code -> GL
    tax_codes: dict[str, str] = Field(default_factory=dict)  # rate percent or name -> code
    suppliers: dict[str, SupplierRule] = Field(default_factory=dict)  # supplier name -> rule
    # How far sums may disagree before it is a problem; None = one minor unit of the
    # invoice's currency (0.01 GBP, 1 JPY, 0.001 BHD).
    tolerance: Decimal | None = Field(default=None, ge=0, le=100)
    default_terms_days: int = Field(default=30, ge=0, le=365)
    auto_create_vendors: bool = True
    closed_period: Literal["hold", "redate"] = "hold"
    max_invoice_age_days: int = Field(default=730, ge=1)
    max_future_days: int = Field(default=31, ge=0)
    document_hosts: list[str] = Field(default_factory=list)
    document_dirs: list[str] = Field(default_factory=list)  # folders file: documents may come from
    notify: NotifyConfig | None = None  # digests of parked items by Slack and e-mail
    # The duplicate check's rules and thresholds ([tenants.<id>.duplicates]); None: defaults.
    duplicates: InstanceOf[DuplicateRules] | None = None

    @field_validator("document_hosts")
    @classmethod
    def _loopback_names_its_port(cls, hosts: list[str]) -> list[str]:
        for entry in hosts:
            if _loopback_without_port(entry):
                raise ValueError(
                    f"document_hosts entry {entry!r} is a loopback address without a port: name "
                    f"the port of the one local service documents come from (e.g. "
                    f"'{entry.strip('[]')}:8091'); a bare loopback entry would let anyone who can "
                    "push an item make the worker fetch from every local port"
                )
        return hosts

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "currencies" not in data and "base_currency" in data:
            base = data["base_currency"]
            # An invalid base currency is reported once, on its own key.
            valid = isinstance(base, str) and base.strip().upper() in ISO_4217
            return {**data, "currencies": [base] if valid else []}
        return data

    @field_validator("tolerance", mode="before")
    @classmethod
    def _tolerance(cls, v: Any) -> Any:
        return _decimal_from_toml(v)

    @field_validator("duplicates", mode="before")
    @classmethod
    def _duplicates(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return DuplicateRules.from_mapping(v)
        if v is not None and not isinstance(v, DuplicateRules):
            raise ValueError("must be a table ([tenants.<id>.duplicates])")
        return v

    @property
    def duplicate_rules(self) -> DuplicateRules:
        return self.duplicates or DuplicateRules()

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        found = conventions(
            v,
            date_order=info.data.get("date_order"),
            decimal=info.data.get("decimal_separator"),
        )
        if found is None:
            raise ValueError(
                f"unknown locale {v!r}: use one of {', '.join(known_locales())}, or set "
                "date_order (DMY, MDY or YMD) and decimal_separator ('.' or ',') as well"
            )
        return v

    @field_validator("base_currency")
    @classmethod
    def _iso_base(cls, v: str) -> str:
        if v.strip().upper() not in ISO_4217:
            raise ValueError(f"{v!r} is not an ISO 4217 currency code")
        return v.strip().upper()

    @field_validator("currencies")
    @classmethod
    def _iso_list(cls, v: list[str], info: ValidationInfo) -> list[str]:
        bad = [c for c in v if c.strip().upper() not in ISO_4217]
        if bad:
            raise ValueError(f"not ISO 4217 currency codes: {', '.join(bad)}")
        codes = list(dict.fromkeys(c.strip().upper() for c in v))
        base = info.data.get("base_currency")
        if base and base not in codes:
            raise ValueError(f"must include the base currency {base}")
        return codes

    @field_validator("gl_accounts")
    @classmethod
    def _gl_accounts(cls, v: dict[str, str]) -> dict[str, str]:
        _refuse_clashes(v, label_key, "categories")
        empty = [k for k, account in v.items() if not account.strip() or not k.strip()]
        if empty:
            raise ValueError(f"empty category or GL account: {', '.join(map(repr, empty))}")
        return {k.strip(): account.strip() for k, account in v.items()}

    @field_validator("tax_codes")
    @classmethod
    def _tax_codes(cls, v: dict[str, str]) -> dict[str, str]:
        """Keys are rate percents ("20", "17.5", "20%") or rate names ("Exempt")."""
        out: dict[str, str] = {}
        for key, code in v.items():
            canonical = _tax_key(key)
            if canonical in out:
                raise ValueError(f"tax rate {key!r} is listed twice")
            if not code.strip():
                raise ValueError(f"tax rate {key!r} has an empty tax code")
            out[canonical] = code.strip()
        return out

    @field_validator("suppliers")
    @classmethod
    def _suppliers(cls, v: dict[str, SupplierRule]) -> dict[str, SupplierRule]:
        _refuse_clashes(v, vendor_match_key, "suppliers")
        return v

    @property
    def conventions(self) -> Conventions:
        """How this tenant's documents write dates and amounts."""
        found = conventions(self.locale, date_order=self.date_order, decimal=self.decimal_separator)
        # Unreachable for a validated tenant; a hand-built one falls back to "no locale".
        return found or Conventions(date_order=self.date_order, decimal=self.decimal_separator)

    def tolerance_for(self, currency: str) -> Decimal:
        return self.tolerance if self.tolerance is not None else quantum(currency)

    def supplier_rule(self, supplier: str) -> SupplierRule | None:
        key = vendor_match_key(supplier)
        for name, rule in self.suppliers.items():
            if vendor_match_key(name) == key:
                return rule
        return None


def _tax_key(key: str) -> str:
    """Rates compare as numbers ("20.0" is "20"), names without case ("exempt" is "Exempt")."""
    text = key.strip().removesuffix("%").strip()
    try:
        rate = Decimal(text)
    except InvalidOperation:
        return label_key(key)
    if not rate.is_finite():
        return label_key(key)
    return rate_key(rate)


def _refuse_clashes(mapping: dict[str, Any], key_of: Any, what: str) -> None:
    seen: dict[str, str] = {}
    for name in mapping:
        key = key_of(name)
        if key in seen:
            raise ValueError(f"{what} {seen[key]!r} and {name!r} are the same once normalised")
        seen[key] = name


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


# ---------------------------------------------------------------------------------------------
# Finding the line of a key, for error messages. tomllib keeps no positions, so the text is
# scanned for table headers and ``key =`` lines; good enough for every file TOML allows that
# people actually write.

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_keys(text: str) -> tuple[list[str], str]:
    """Dotted TOML keys at the start of ``text`` and the rest of the text after them."""
    keys: list[str] = []
    rest = text.lstrip()
    while rest:
        if rest[0] in "\"'":
            quote = rest[0]
            end = 1
            while end < len(rest) and rest[end] != quote:
                end += 2 if quote == '"' and rest[end] == "\\" else 1
            keys.append(rest[1:end])
            rest = rest[end + 1 :].lstrip()
        elif m := _BARE.match(rest):
            keys.append(m.group())
            rest = rest[m.end() :].lstrip()
        else:
            break
        if not rest.startswith("."):
            break
        rest = rest[1:].lstrip()
    return keys, rest


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            keys, _ = _split_keys(stripped.lstrip("["))
            table = tuple(keys)
            lines.setdefault(table, number)
            continue
        keys, rest = _split_keys(stripped)
        if keys and rest.startswith("="):
            lines.setdefault((*table, *keys), number)
    return lines


def _line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    for end in range(len(path), 1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _show_key(path: tuple[str, ...]) -> str:
    return ".".join(p if _BARE.fullmatch(p) else f'"{p}"' for p in path)


def _fields_of(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The keys allowed in the table at ``loc`` (for "did you mean" on an unknown key)."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        field = current.model_fields.get(part) if current else None
        annotation = field.annotation if field else None
        if annotation is LedgerConfig:
            current = LedgerConfig
        elif part == "notify" and current is Tenant:
            current = NotifyConfig
        elif part == "email" and current is NotifyConfig:
            current = EmailNotify
        elif part == "suppliers" or current is SupplierRule:
            current = SupplierRule
        else:
            current = None
    return list(current.model_fields) if current else []


_PATTERN_HELP = {
    "id": "a tenant id may hold letters, digits, '.', '_' and '-' only (':' separates the "
    "tenant from the item in every event key)",
    "credentials_env": "must be an environment-variable prefix in capitals, "
    "such as BILLSTREAM_ACME",
    "slack_webhook_env": "must name the environment variable that holds the webhook URL "
    "(capitals, such as BILLSTREAM_ACME_SLACK_WEBHOOK), never the URL itself",
    "username_env": "must name the environment variable that holds the SMTP user name "
    "(capitals, such as BILLSTREAM_ACME_SMTP_USER)",
    "password_env": "must name the environment variable that holds the SMTP password "
    "(capitals, such as BILLSTREAM_ACME_SMTP_PASSWORD), never the password itself",
    "page_url": "must be the operator page's http(s) address without a query: the page's "
    "token is a secret and stays out of this file and of every message",
}
# Keys whose value may be a secret pasted by mistake: the error never repeats the value.
_SECRET_NAME_KEYS = frozenset({"slack_webhook_env", "username_env", "password_env", "page_url"})


def _message(err: Any, loc: tuple[str, ...]) -> str:
    kind, msg = str(err["type"]), str(err["msg"])
    if kind == "extra_forbidden":
        allowed = [f for f in _fields_of(Tenant, loc) if f != "id"]
        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key{hint} (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        msg = _PATTERN_HELP.get(loc[-1] if loc else "id", msg)
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    if loc and loc[-1] in _SECRET_NAME_KEYS:
        value = None
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        shown = repr(value) if isinstance(value, str) else str(value)
        if shown not in msg:
            msg += f" (got {shown})"
    return msg


def parse_tenants(text: str, source: str = "<tenants>") -> Tenants:
    """Parse and check a tenants file; every mistake is reported at once."""
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        where = f"{source}:{found.group(1)}" if found else source
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise TenantsFileError(f"{where}: not valid TOML: {reason}") from exc
    sections = raw.get("tenants")
    if not isinstance(sections, dict) or not sections:
        raise TenantsFileError(f"{source}: no [tenants.<id>] section found")
    lines = _key_lines(text)
    tenants: dict[str, Tenant] = {}
    errors: list[tuple[int, str]] = []
    for tenant_id, body in sections.items():
        if not isinstance(body, dict):
            line = _line_of(lines, ("tenants", tenant_id))
            errors.append((line or 0, f"{source}:{line}: tenants.{tenant_id}: must be a table"))
            continue
        if "id" in body:
            line = _line_of(lines, ("tenants", tenant_id, "id"))
            errors.append(
                (
                    line or 0,
                    f"{source}:{line}: tenants.{tenant_id}.id: the id is the section name; "
                    "remove this key",
                )
            )
            continue
        try:
            tenants[tenant_id] = Tenant.model_validate({"id": tenant_id, **body})
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(str(p) for p in err["loc"] if isinstance(p, str) and p != "[key]")
                path = ("tenants", tenant_id, *loc) if loc != ("id",) else ("tenants", tenant_id)
                line = _line_of(lines, path)
                where = f"{source}:{line}" if line else source
                errors.append((line or 0, f"{where}: {_show_key(path)}: {_message(err, loc)}"))
    if errors:
        # In file order, so the list reads top to bottom like the file being fixed.
        raise TenantsFileError("\n".join(msg for _, msg in sorted(errors, key=lambda e: e[0])))
    return Tenants(tenants=tenants)


def load_tenants(path: Path) -> Tenants:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TenantsFileError(f"cannot read tenants file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TenantsFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    return parse_tenants(text, str(path))


def _loopback_without_port(entry: str) -> bool:
    text = entry.strip().lower().rstrip(".")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if port:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
