"""``billstream demo``."""

from __future__ import annotations

from pathlib import Path

import click

from adapters.harness import HARNESSES
from streams.cli_base import cli, print_json


@cli.command()
@click.option(
    "--items",
    type=click.IntRange(1, 100_000),
    default=60,
    show_default=True,
    help="How many sample items to send (the sample set is cycled, each copy with "
    "its own id and invoice number).",
)
@click.option(
    "--scenario",
    type=click.Choice(["basic", "period-reopen"]),
    default="basic",
    show_default=True,
    help="period-reopen: September 2026 is closed, its invoices park as "
    "period_closed, the period reopens, replay puts them back.",
)
@click.option(
    "--ledger",
    type=click.Choice(sorted(HARNESSES)),
    default="local",
    show_default=True,
    help="Where bills go: the local SQLite ledger or a sandbox.",
)
@click.option(
    "--source",
    type=click.Choice(["dext-api", "sample"]),
    default="dext-api",
    show_default=True,
    help="dext-api: items come over HTTP from the Dext sandbox through the API poller and "
    "the attach stage downloads their documents; sample: read straight from the files.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Fresh folder for this run (default BILLSTREAM_DATA_DIR/demo; wiped first).",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for every item to finish.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def demo(
    items: int,
    scenario: str,
    ledger: str,
    source: str,
    data_dir: Path | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Run the whole pipeline on the sample invoices and print what happened.

    Starts the embedded broker (unless BILLSTREAM_KAFKA_URL is set), a worker process, the
    ledger (a sandbox in its own process for intacct and sage-accounting) and the Dext
    sandbox, polls the items from it, waits until every one is attached or failed, and prints a
    summary: received, attached, failed by reason, bills, attachments, duplicates (bills
    sharing an item key, which must be 0), replayed, seconds.
    """
    from streams.demo import DemoOptions, run_demo

    result = run_demo(
        DemoOptions(
            items=items,
            scenario=scenario,
            ledger=ledger,
            source=source,
            data_dir=data_dir,
            timeout=timeout,
            progress=not as_json,
        )
    )
    summary = result.as_dict()
    if as_json:
        print_json(summary)
        return
    click.echo(f"received    {result.received}")
    click.echo(f"attached    {result.attached}")
    for reason, n in result.failed.items():
        click.echo(f"failed      {n:<5} {reason}")
    click.echo(
        f"bills       {result.bills}   attachments {result.attachments}   "
        f"duplicates {result.duplicates}   replayed {result.replayed}"
    )
    for key, value in result.extra.items():
        click.echo(f"{key:<11} {value}")
    click.echo(f"seconds     {result.seconds:.1f}  ({result.items_per_second:.0f} items/s)")
    click.echo("")
    click.echo("What happened to one invoice (the event log is kept in the data folder):")
    for name, key in result.examples.items():
        click.echo(f"  billstream --data-dir {result.data_dir} audit {key}    # {name}")
    click.echo(
        f"Replay what is parked:\n  billstream --data-dir {result.data_dir} replay "
        "--reason any --dry-run"
    )
