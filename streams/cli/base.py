"""The ``billstream`` command group and its sub-groups; commands live in ``streams.cli.commands``.

Every module in ``streams/commands`` registers its commands on these groups at import, so a
new command is one new module and no edit here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:  # the CLI starts fast: domain is imported when a command runs
    from domain.tenants import Tenants


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="billstream")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for billstream's state (broker, ledgers, tokens); "
    "default BILLSTREAM_DATA_DIR or ./.billstream.",
)
def cli(data_dir: str | None) -> None:
    """billstream: Dext invoices into Sage as draft bills, exactly once, with an audit trail.

    Every invoice is an event moving through the Kafka topics received, validated,
    vendor-resolved, bill-created and attached (or failed, with a reason). With no
    BILLSTREAM_KAFKA_URL set, commands that need Kafka start an embedded broker.
    """
    if data_dir is not None:
        # Every command reads Settings from the environment: the option and the variable
        # are then one and the same.
        os.environ["BILLSTREAM_DATA_DIR"] = data_dir


@cli.group()
def sandbox() -> None:
    """Run a stand-in for an outside system (Dext, Sage Intacct, Sage Accounting).

    Each sandbox is a real HTTP server speaking that system's wire format. When ready it
    prints one JSON line with its base "url" and the "credentials" it accepts.
    """


@cli.group()
def ingest() -> None:
    """Bring Dext items into the pipeline (topic received)."""


@cli.group()
def serve() -> None:
    """Run a long-lived HTTP service (push endpoint, operator page)."""


@cli.group()
def connect() -> None:
    """Connect billstream to an outside account (OAuth flows)."""


def print_json(obj: Any) -> None:
    """The ``--json`` convention: one JSON object, as the last line of stdout."""
    sys.stdout.write(orjson.dumps(obj, default=str).decode() + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> None:
    """Exit with a clear reason on stderr (exit 2 = unusable input or configuration)."""
    click.echo(f"billstream: {message}", err=True)
    raise SystemExit(code)


def load_tenants_or_fail(tenants_file: Path, tenant: str | None = None) -> Tenants:
    """The tenants file, or exit 2 naming what is wrong with it; ``tenant``, when given, must
    be one of its tenants."""
    from domain.tenants import TenantsFileError, load_tenants

    try:
        tenants = load_tenants(tenants_file)
    except TenantsFileError as exc:
        fail(str(exc))
        raise  # unreachable: fail exits
    if tenant is not None and tenant not in tenants.tenants:
        fail(f"unknown tenant {tenant!r} (known: {', '.join(sorted(tenants.tenants))})")
    return tenants
