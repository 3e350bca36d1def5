"""``billstream replay`` and ``billstream audit``: the event log as an operator sees it."""

from __future__ import annotations

import asyncio
import sys

import click

from domain.errors import RETRY_OF, Reason, Retry
from streams.cli.base import cli, fail, print_json
from streams.config import Settings

REASONS = sorted(r.value for r in Reason)


@cli.command()
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    required=True,
    type=click.Choice([*REASONS, "any"]),
    help="Failure reason to replay (repeatable), or 'any': every reason that is ever retried "
    "(duplicate items are replayed only when named).",
)
@click.option("--tenant", default=None, help="Only this tenant's items.")
@click.option("--item", default=None, metavar="KEY", help="Only this item (tenant:dext_item_id).")
@click.option(
    "--since",
    default=None,
    metavar="TIME",
    help="Only failures since TIME: ISO (2026-11-01T09:00Z) or relative (90m, 2h, 7d).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def replay(
    reasons: tuple[str, ...],
    tenant: str | None,
    item: str | None,
    since: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Put parked items back on the topic of the stage that failed, as attempt + 1.

    Only items still parked (latest failure newer than any attachment) match. Earlier effects
    are found again, never repeated: a vendor or bill made before the failure is adopted.
    Example, after reopening a closed period in Sage:

        billstream replay --reason period_closed --tenant acme-uk
    """
    from tqdm import tqdm

    from streams.ops.replay import ReplayFilter, parse_since
    from streams.ops.replay import replay as run_replay
    from streams.pipeline.runtime import kafka_for

    try:
        when = parse_since(since) if since else None
    except ValueError as exc:
        fail(str(exc))
    named = frozenset(Reason(r) for r in reasons if r != "any")
    flt = ReplayFilter(
        reasons=None if "any" in reasons and not named else _with_any(named, "any" in reasons),
        tenant=tenant,
        item=item,
        since=when,
    )
    settings = Settings()
    bar = tqdm(desc="replaying", unit="item", file=sys.stderr, disable=as_json or dry_run)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with kafka_for(settings) as url, bar:
        report = asyncio.run(run_replay(settings, url, flt, dry_run=dry_run, progress=progress))
    if as_json:
        print_json(report.as_dict())
        return
    for entry in report.items:
        click.echo(
            f"{entry['item']:<32} {entry['reason']:<20} -> {entry['stage']} "
            f"(attempt {entry['attempt']})"
        )
    verb = "would be sent" if dry_run else "sent"
    click.echo(f"matched {report.matched}, {verb} {report.matched if dry_run else report.sent}")


@cli.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as one JSON object.")
def audit(key: str, as_json: bool) -> None:
    """Show what happened to one invoice: its events across every topic, in order.

    KEY is the item key, tenant:dext_item_id (for example acme-uk:DX-100001).
    """
    from streams.ops.audit import timeline
    from streams.pipeline.runtime import kafka_for

    if ":" not in key:
        fail(f"{key!r} is not an item key; use tenant:dext_item_id, e.g. acme-uk:DX-100001")
    settings = Settings()
    with kafka_for(settings) as url:
        steps = asyncio.run(timeline(settings, url, key))
    if as_json:
        print_json({"item": key, "found": bool(steps), "steps": [s.as_dict() for s in steps]})
        return
    if not steps:
        click.echo(f"no events for {key} in {settings.topic_prefix}* topics")
        raise SystemExit(1)
    for s in steps:
        click.echo(f"{s.time[:23]:<23}  {s.type:<27} #{s.attempt}  {s.outcome:<20} {s.detail}")


def _with_any(named: frozenset[Reason], any_reason: bool) -> frozenset[Reason]:
    retried = frozenset(r for r in Reason if RETRY_OF[r] is not Retry.NEVER)
    return named | retried if any_reason else named
