"""What the failed topic means now: which items are parked, why, and the counts of it.

An item is parked from its failure until a later event of the same item reaches attached.
The ``parked`` table is keyed by item key (co-partitioned with the topics) so every worker
knows the items of its own partitions. Each failure is also handed to the notifications
(``streams.pipeline.notifications``) of the tenants that asked to be told.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from domain.events import Envelope, Failure
from streams import metrics

if TYPE_CHECKING:
    from streams.pipeline.notifications import Notices


def parked_table(pipeline: Any) -> Any:
    table = pipeline.app.Table(
        "parked",
        key_type=bytes,
        value_type=bytes,
        partitions=pipeline.settings.partitions,
        use_partitioner=True,
    )
    pipeline.tables["parked"] = table
    metrics.PARKED.source = lambda: parked_reasons(table)
    return table


def on_failed(
    event: Envelope, parked: MutableMapping[bytes, bytes], notices: Notices | None = None
) -> None:
    _park(event, parked)
    if notices is not None:
        # After the parked write, so a digest can tell whether its items are still parked;
        # ``record`` only writes a table entry: the agent never waits on Slack or SMTP.
        notices.record(event)


def _park(event: Envelope, parked: MutableMapping[bytes, bytes]) -> None:
    failure = event.data
    assert isinstance(failure, Failure)
    key = event.subject.encode()
    previous = parked.get(key)
    if previous is not None:
        prev = orjson.loads(previous)
        if prev["attempt"] > event.attempt or prev["id"] == event.id:
            return  # a redelivery, or an older failure arriving late: already counted
    parked[key] = orjson.dumps(
        {
            "id": event.id,
            "attempt": event.attempt,
            "reason": failure.reason.value,
            "stage": failure.stage.value,
            "message": failure.message,
            "time": event.time,
        }
    )
    metrics.FAILURES.labels(failure.stage.value, event.tenant, failure.reason.value).inc()


def on_attached(event: Envelope, parked: MutableMapping[bytes, bytes]) -> None:
    key = event.subject.encode()
    previous = parked.get(key)
    if previous is None:
        return
    prev = orjson.loads(previous)
    if prev["attempt"] > event.attempt:
        return  # an attached event older than the current failure: stays parked
    del parked[key]


def parked_reasons(parked: MutableMapping[bytes, bytes]) -> Iterator[tuple[str, str]]:
    """(tenant, reason) of every parked item this worker holds, for the parked gauge."""
    for key, value in list(parked.items()):
        yield key.decode().partition(":")[0], orjson.loads(value)["reason"]
