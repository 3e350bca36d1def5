"""``billstream duplicates held|release|reject``: the review of items held as possible
duplicates, from the event log (``streams.ops.review``)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import click

from streams.cli.base import fail, print_json
from streams.cli.commands.duplicates import duplicates
from streams.config import Settings


@duplicates.command("held")
@click.option("--tenant", default=None, help="Only this tenant's items.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: {'held': [...]}.")
def held(tenant: str | None, as_json: bool) -> None:
    """List the items held as possible duplicates, each beside what it matched.

    Each held item names the rule that matched (number_variant, same_document,
    same_total_near_date) and the earlier items; `billstream audit KEY` shows either side in
    full. Decide with `billstream duplicates release KEY --by NAME` (the bill is posted, once)
    or `reject KEY --by NAME` (it ends as a duplicate). Replay never releases one.
    """
    from streams.ops.review import held_items
    from streams.pipeline.runtime import kafka_for

    settings = Settings()
    with kafka_for(settings) as url:
        found = asyncio.run(held_items(settings, url, tenant=tenant))
    rows = [h.as_dict() for h in found]
    if as_json:
        print_json({"held": rows})
        return
    for row in rows:
        click.echo(
            f"{row['item']:<32} {row['supplier']} {row['number']} {row['date']} "
            f"{row['currency']} {row['total']}\n{'':<32} {row['rule']}: like "
            f"{', '.join(row['matches'])}"
        )
    click.echo(f"{len(rows)} held")


def _decide(
    key: str, decision: Literal["release", "reject"], by: str, note: str, as_json: bool
) -> None:
    from streams.ops.review import ReviewError, decide
    from streams.pipeline.runtime import kafka_for

    settings = Settings()
    try:
        with kafka_for(settings) as url:
            out: dict[str, Any] = asyncio.run(
                decide(settings, url, key, decision, by=by, note=note)
            )
    except ReviewError as exc:
        fail(str(exc), code=1)
        return
    if as_json:
        print_json(out)
        return
    verb = "released: it goes on to the ledger" if decision == "release" else "rejected"
    click.echo(f"{key} {verb} (attempt {out['attempt']}, by {out['by']})")


_BY = click.option("--by", required=True, help="Who decides (kept in the log for the audit).")
_NOTE = click.option("--note", default="", help="Why, in a few words.")
_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object.")


@duplicates.command("release")
@click.argument("key")
@_BY
@_NOTE
@_JSON
def release(key: str, by: str, note: str, as_json: bool) -> None:
    """Release the held item KEY: not a duplicate after all, post its bill (once)."""
    _decide(key, "release", by, note, as_json)


@duplicates.command("reject")
@click.argument("key")
@_BY
@_NOTE
@_JSON
def reject(key: str, by: str, note: str, as_json: bool) -> None:
    """Reject the held item KEY as a duplicate: it ends as `duplicate`, no bill."""
    _decide(key, "reject", by, note, as_json)
