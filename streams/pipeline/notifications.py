"""Notifications from the failed side of the worker: grouped, sent once, never in the way.

``Notices.record`` runs in the failed agent for every failure event. It only writes a small
entry to the changelog-backed ``notify-pending`` table (no I/O), so the agents never wait on
Slack or SMTP. A timer (``Notices.tick``) groups the pending entries by tenant and reason and,
once the oldest of a group is ``digest_seconds`` old, sends one digest per channel, retried
with backoff and logged; a channel that keeps failing is tried again later, never in a loop.

Once per failure, across restarts: a failure event's id is deterministic (item key, stage,
attempt), and two tables keyed by item key (co-partitioned with the topics, so they move
with the items) remember it: ``notify-pending`` until every channel delivered, then
``notify-sent``. A redelivered or late failure whose attempt is already pending or sent is
ignored.

Order: send first, record after (at-least-once). A finance team would rather get a digest
twice, in the rare case of a crash in the moment between Slack's answer and the changelog
write, than miss one that said their period is closed. The window is kept small by
flushing the table writes to Kafka right after each delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

from adapters.notify import (
    Channel,
    Channels,
    DeliveryRetries,
    Digest,
    DigestItem,
    NotifyError,
    channels_for,
    deliver,
)
from domain.errors import Reason
from domain.events import Envelope, Failure, Received, Stage, Work
from domain.tenants import Tenant, Tenants
from streams.kafka.eventlog import partition_of

if TYPE_CHECKING:
    from streams.pipeline.parts import Pipeline

log = logging.getLogger("billstream.notify")

NOTIFICATIONS = Counter(
    "billstream_notifications_total",
    "Digests of parked items sent (or given up on), by channel.",
    ["tenant", "channel", "outcome"],
)

MAX_BACKOFF = 900.0  # a channel that keeps failing is tried again at least every 15 minutes


@dataclass(frozen=True)
class ParkedSummary:
    """A failure event as a person reads it: which invoice, why, and when."""

    key: str
    tenant: str
    reason: Reason
    stage: Stage
    supplier: str
    number: str
    amount: str
    message: str
    time: str
    attempt: int
    id: str
    rule: str | None = None  # a held duplicate: the rule that matched
    matches: tuple[str, ...] = ()  # and the earlier items it looks like


def summarize(event: Envelope) -> ParkedSummary:
    failure = event.data
    assert isinstance(failure, Failure)
    supplier, number, amount = "?", "?", ""
    data = failure.input.data if failure.input is not None else None
    if isinstance(data, Work):
        bill = data.bill
        supplier, number = bill.vendor_name, bill.number
        amount = f"{bill.currency} {bill.total}" + (" (credit)" if bill.credit_note else "")
    elif isinstance(data, Received):
        item = data.item
        supplier = str(item.get("payee") or "?")
        number = str(item.get("invoice_number") or "?")
        amount = f"{item.get('currency') or ''} {item.get('total_amount') or '?'}".strip()
    return ParkedSummary(
        key=event.subject,
        tenant=event.tenant,
        reason=failure.reason,
        stage=failure.stage,
        supplier=supplier,
        number=number,
        amount=amount,
        message=failure.message,
        time=event.time.isoformat(),
        attempt=event.attempt,
        id=event.id,
        rule=failure.detail.get("rule") if failure.reason is Reason.POSSIBLE_DUPLICATE else None,
        matches=tuple(failure.detail.get("matches", ()))
        if failure.reason is Reason.POSSIBLE_DUPLICATE
        else (),
    )


def tick_seconds(tenants: Tenants) -> float:
    """How often the timer looks: a few times per shortest window, within reason."""
    windows = [t.notify.digest_seconds for t in tenants.all() if t.notify is not None]
    if not windows:
        return 15.0
    return min(15.0, max(0.5, min(windows) / 4))


Deliver = Callable[[Channel, Digest, DeliveryRetries], Awaitable[None]]


class Notices:
    """Pending and sent notifications over two tables; the worker's timer calls ``send_due``."""

    def __init__(
        self,
        tenants: Tenants,
        env: Mapping[str, str],
        *,
        pending: MutableMapping[bytes, bytes],
        sent: MutableMapping[bytes, bytes],
        parked: Mapping[bytes, bytes] | None = None,
        partitions: int = 1,
        clock: Callable[[], float] = time.time,
        send: Deliver | None = None,
        policy: DeliveryRetries | None = None,
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.tenants = tenants
        self.env = env
        self.pending = pending
        self.sent = sent
        self.parked = parked
        self.partitions = partitions
        self.clock = clock
        self.send: Deliver = send or deliver
        self.policy = policy or DeliveryRetries()
        self.flush = flush
        self._channels: dict[str, Channels] = {}
        self._backoff: dict[tuple[str, str], tuple[float, int]] = {}
        self._warned: set[str] = set()

    def channels(self, tenant: Tenant) -> list[Channel]:
        if tenant.id not in self._channels:
            found = channels_for(tenant, self.env)
            for problem in found.problems:
                log.error("notifications of tenant %s: %s", tenant.id, problem)
            self._channels[tenant.id] = found
        return self._channels[tenant.id].channels

    # -- the failed agent's side: a table write, nothing else ---------------------------------

    def record(self, event: Envelope) -> bool:
        """Note a failure for the next digest; False when it is not to be (or already) told."""
        failure = event.data
        if not isinstance(failure, Failure):
            return False
        tenant = self.tenants.tenants.get(event.tenant)
        if tenant is None or tenant.notify is None or failure.reason not in tenant.notify.reasons:
            return False
        key = event.subject.encode()
        for table in (self.sent, self.pending):
            seen = table.get(key)
            # The same failure again (a redelivery after a restart) or an older one arriving
            # late: already told, or about to be.
            if seen is not None and orjson.loads(seen)["attempt"] >= event.attempt:
                return False
        names = [c.name for c in self.channels(tenant)]
        if not names:
            if tenant.id not in self._warned:
                self._warned.add(tenant.id)
                log.error("notifications of tenant %s: no usable channel", tenant.id)
            return False
        s = summarize(event)
        self.pending[key] = orjson.dumps(
            {
                "id": event.id,
                "attempt": event.attempt,
                "tenant": event.tenant,
                "reason": failure.reason.value,
                "supplier": s.supplier,
                "number": s.number,
                "amount": s.amount,
                "message": s.message,
                "at": self.clock(),
                "todo": names,
            }
        )
        return True

    # -- the timer's side: digests ------------------------------------------------------------

    def _resolved(self, key: bytes, entry: dict[str, Any]) -> bool:
        if self.parked is None:
            return False
        now = self.parked.get(key)
        return now is None or orjson.loads(now)["id"] != entry["id"]

    def _due(self, owned: Collection[int] | None) -> dict[tuple[str, str], list[tuple[bytes, Any]]]:
        groups: dict[tuple[str, str], list[tuple[bytes, Any]]] = defaultdict(list)
        for key, raw in list(self.pending.items()):
            if owned is not None and partition_of(key.decode(), self.partitions) not in owned:
                continue  # another worker's partition now: it sends these
            entry = orjson.loads(raw)
            groups[(entry["tenant"], entry["reason"])].append((key, entry))
        return groups

    def _done(self, channel: str, entries: list[tuple[bytes, Any]]) -> None:
        for key, entry in entries:
            raw = self.pending.get(key)
            if raw is None:
                continue
            current = orjson.loads(raw)
            if current["id"] != entry["id"]:
                continue  # a newer failure of the item took its place: still to be told
            todo = [c for c in current["todo"] if c != channel]
            if todo:
                self.pending[key] = orjson.dumps({**current, "todo": todo})
            else:
                del self.pending[key]
                self.sent[key] = orjson.dumps({"id": current["id"], "attempt": current["attempt"]})

    async def send_due(self, owned: Collection[int] | None = None) -> list[Digest]:
        """Send every digest whose window has passed; returns what was delivered."""
        now = self.clock()
        delivered: list[Digest] = []
        changed = False
        for (tenant_id, reason), entries in sorted(self._due(owned).items()):
            tenant = self.tenants.tenants.get(tenant_id)
            if tenant is None or tenant.notify is None:
                # The tenants file changed under us: nobody is to be told any more.
                for key, _ in entries:
                    del self.pending[key]
                changed = True
                continue
            if now - min(e["at"] for _, e in entries) < tenant.notify.digest_seconds:
                continue
            entries.sort(key=lambda ke: (ke[1]["at"], ke[0]))
            for channel in self.channels(tenant):
                todo = [(k, e) for k, e in entries if channel.name in e["todo"]]
                not_before, failures = self._backoff.get((tenant_id, channel.name), (0.0, 0))
                if not todo or now < not_before:
                    continue
                digest = Digest(
                    tenant_id=tenant.id,
                    tenant_name=tenant.name,
                    reason=Reason(reason),
                    items=[
                        DigestItem(
                            key=k.decode(),
                            supplier=e["supplier"],
                            number=e["number"],
                            amount=e["amount"],
                            message=e["message"],
                            resolved=self._resolved(k, e),
                        )
                        for k, e in todo
                    ],
                    page_url=tenant.notify.page_url,
                )
                try:
                    await self.send(channel, digest, self.policy)
                except NotifyError as exc:
                    if exc.transient:
                        wait = min(MAX_BACKOFF, 30.0 * 2**failures)
                        self._backoff[(tenant_id, channel.name)] = (now + wait, failures + 1)
                        NOTIFICATIONS.labels(tenant_id, channel.name, "retry_later").inc()
                        log.error(
                            "%s digest of %d item(s) (%s, %s) not delivered, next try in %.0f s:"
                            " %s",
                            channel.name,
                            len(todo),
                            tenant_id,
                            reason,
                            wait,
                            exc.message,
                        )
                        continue
                    # Asking again changes nothing (a revoked webhook, a refused login): say
                    # so loudly once and move on rather than retry for ever.
                    NOTIFICATIONS.labels(tenant_id, channel.name, "given_up").inc()
                    log.error(
                        "%s digest of %d item(s) (%s, %s) given up: %s",
                        channel.name,
                        len(todo),
                        tenant_id,
                        reason,
                        exc.message,
                    )
                else:
                    NOTIFICATIONS.labels(tenant_id, channel.name, "sent").inc()
                    log.info(
                        "%s digest sent: %d item(s) of %s, %s",
                        channel.name,
                        len(todo),
                        tenant_id,
                        reason,
                    )
                    delivered.append(digest)
                self._backoff.pop((tenant_id, channel.name), None)
                self._done(channel.name, todo)
                changed = True
                if self.flush is not None:
                    # Recorded before the next channel or group is tried: the window for a
                    # repeat after a crash is one delivery wide.
                    await self.flush()
        if changed and self.flush is not None:
            await self.flush()
        return delivered


def install(pipeline: Pipeline, parked: Mapping[bytes, bytes]) -> Notices | None:
    """The worker's notices: two tables and a timer, when any tenant wants notifications."""
    tenants = pipeline.ports.tenants
    if not any(t.notify is not None for t in tenants.all()):
        return None
    app, settings = pipeline.app, pipeline.settings

    def table(name: str) -> Any:
        made = app.Table(
            name,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            use_partitioner=True,
        )
        pipeline.tables[name] = made
        return made

    async def flush() -> None:
        await app.producer.flush()

    notices = Notices(
        tenants,
        pipeline.ports.env,
        pending=table("notify-pending"),
        sent=table("notify-sent"),
        parked=parked,
        partitions=settings.partitions,
        flush=flush,
    )
    failed_topic = settings.topic(Stage.FAILED)
    running: set[asyncio.Task[list[Digest]]] = set()

    def finished(task: asyncio.Task[list[Digest]]) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("notification digests: unexpected error", exc_info=task.exception())

    async def notify_digests() -> None:
        # Never while partitions move or tables recover: a half-recovered table could
        # still hold an entry whose deletion (its delivery) has not been replayed yet.
        if running or app.rebalancing or app.in_recovery:
            return
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == failed_topic}
        if owned:
            # Sending (retries and all) runs beside the timer, which only starts it: a slow
            # relay delays the next digest, never the timer nor the agents.
            task = asyncio.create_task(notices.send_due(owned), name="notify-send")
            running.add(task)
            task.add_done_callback(finished)

    app.timer(tick_seconds(tenants), name="notify-digests")(notify_digests)
    return notices
