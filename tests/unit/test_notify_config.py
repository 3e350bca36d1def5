"""The ``[tenants.<id>.notify]`` table: defaults, mistakes named, secrets only by name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import tomli_w

from domain.errors import Reason
from domain.tenants import DEFAULT_NOTIFY_REASONS, TenantsFileError, parse_tenants
from tests.unit.conftest import TENANTS_FILE

BASE = """\
[tenants.t1]
base_currency = "GBP"

[tenants.t1.ledger]
company = "t1"
"""

FULL = (
    BASE
    + """
[tenants.t1.notify]
slack_webhook_env = "T1_SLACK_WEBHOOK"
page_url = "http://127.0.0.1:8090/"

[tenants.t1.notify.email]
to = ["ap@t1.example", "controller@t1.example"]
sender = "billstream@t1.example"
host = "smtp.t1.example"
username_env = "T1_SMTP_USER"
password_env = "T1_SMTP_PASSWORD"
"""
)


def errors_of(text: str) -> list[str]:
    with pytest.raises(TenantsFileError) as info:
        parse_tenants(text, "tenants.toml")
    return str(info.value).splitlines()


def test_a_tenant_without_notify_is_told_nothing() -> None:
    assert parse_tenants(BASE).get("t1").notify is None


def test_defaults_are_the_reasons_a_person_must_act_on() -> None:
    notify = parse_tenants(FULL).get("t1").notify
    assert notify is not None
    assert (
        notify.reasons
        == list(DEFAULT_NOTIFY_REASONS)
        == [
            Reason.AUTH,
            Reason.PERIOD_CLOSED,
            Reason.DUPLICATE,
            Reason.CURRENCY_MISMATCH,
            Reason.MAPPING_MISSING,
        ]
    )
    assert notify.digest_seconds == 300
    assert notify.email is not None
    assert notify.email.security == "starttls" and notify.email.effective_port == 587


def test_it_survives_the_demo_rewriting_the_file(tmp_path: Path) -> None:
    # streams.demo writes tenants back with model_dump + tomli_w for its worker.
    tenant = parse_tenants(FULL).get("t1")
    body = {"tenants": {"t1": tenant.model_dump(mode="json", exclude={"id"}, exclude_none=True)}}
    again = parse_tenants(tomli_w.dumps(body)).get("t1")
    assert again == tenant


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('slack_webhook_env = "T1_SLACK_WEBHOOK"', 'slack_webhook = "T1_SLACK_WEBHOOK"'),
            "tenants.toml:8: tenants.t1.notify.slack_webhook: unknown key; did you mean "
            "'slack_webhook_env'?",
        ),
        (
            ('host = "smtp.t1.example"', 'hots = "smtp.t1.example"'),
            "tenants.toml:14: tenants.t1.notify.email.hots: unknown key; did you mean 'host'?",
        ),
        (
            ('sender = "billstream@t1.example"', 'sender = "billstream"'),
            "tenants.toml:13: tenants.t1.notify.email.sender: 'billstream' is not an e-mail",
        ),
        (
            ('password_env = "T1_SMTP_PASSWORD"', ""),
            "tenants.toml:11: tenants.t1.notify.email: username_env and password_env go together",
        ),
        (
            ('host = "smtp.t1.example"', 'host = "smtp.t1.example"\nsecurity = "none"'),
            "tenants.toml:11: tenants.t1.notify.email: a login over an unencrypted connection",
        ),
        (
            ('slack_webhook_env = "T1_SLACK_WEBHOOK"', "digest_seconds = 0"),
            "tenants.toml:8: tenants.t1.notify.digest_seconds: Input should be greater than",
        ),
    ],
)
def test_mistakes_are_named(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in FULL
    found = errors_of(FULL.replace(old, new))
    assert any(line.startswith(expected) for line in found), found


def test_a_channel_is_required() -> None:
    (error,) = errors_of(BASE + '\n[tenants.t1.notify]\nreasons = ["auth"]\n')
    assert error.startswith("tenants.toml:7: tenants.t1.notify: name at least one channel")


def test_a_reason_must_exist() -> None:
    (error,) = errors_of(
        BASE + '\n[tenants.t1.notify]\nslack_webhook_env = "X"\nreasons = ["closed"]\n'
    )
    assert "tenants.t1.notify.reasons" in error and "'closed'" in error


@pytest.mark.parametrize(
    "secret",
    [
        'slack_webhook_env = "https://hooks.slack.com/services/T0/B0/s3cr3tpart"',
        'password_env = "hunter2-the-password"',
        'page_url = "http://ops.example:8090/?token=s3cr3tpart"',
    ],
)
def test_a_secret_pasted_in_place_of_its_name_is_never_repeated(secret: str) -> None:
    key = secret.split(" =")[0]
    text = re.sub(rf"^{key} = .*$", secret, FULL, flags=re.M)
    (error,) = errors_of(text)
    assert "environment variable" in error or "without a query" in error
    assert "s3cr3tpart" not in error and "hunter2" not in error


def test_the_example_file_shows_the_table_and_loads_without_it() -> None:
    text = TENANTS_FILE.read_text()
    assert "# [tenants.acme-uk.notify]" in text
    # Uncommented, the example is valid as it stands.
    lines = text.splitlines()
    start = lines.index("# [tenants.acme-uk.notify]")
    block: list[str] = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("# ").removeprefix("#"))
    tomllib.loads("\n".join(block))
    uncommented = text.replace("\n".join(lines[start : start + len(block)]), "\n".join(block))
    notify = parse_tenants(uncommented).get("acme-uk").notify
    assert notify is not None and notify.email is not None
    assert notify.slack_webhook_env == "BILLSTREAM_ACME_SLACK_WEBHOOK"
