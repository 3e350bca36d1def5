"""The pipeline's metrics: parked gauge, replays counted where they arrive, consumer lag."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any, NamedTuple

import orjson
import pytest
from prometheus_client import REGISTRY

from domain.errors import Reason, StageError
from domain.events import Envelope, Failure, Stage, event_id
from domain.tenants import parse_tenants
from streams import metrics
from streams.kafka.publish import received_event
from streams.ops.replay import replay_event
from tests.conftest import dext_item


class TP(NamedTuple):
    topic: str
    partition: int


# -- parked ----------------------------------------------------------------------------------


def test_parked_counts_by_tenant_and_reason_with_zeros_for_every_reason() -> None:
    collector = metrics.ParkedCollector()
    collector.source = lambda: [("t1", "auth"), ("t1", "auth"), ("t2", "validation")]
    [family] = collector.collect()
    got = {(s.labels["tenant"], s.labels["reason"]): s.value for s in family.samples}
    assert got[("t1", "auth")] == 2
    assert got[("t2", "validation")] == 1
    # "Is t2 parked for auth?" has an answer, not a missing series.
    assert got[("t2", "auth")] == 0
    assert {r for t, r in got if t == "t1"} == {r.value for r in Reason}


def test_parked_knows_the_tenants_a_stage_has_seen() -> None:
    metrics.record_stage("validate", "seen-only-by-a-stage", "ok", 0.01)
    collector = metrics.ParkedCollector()
    collector.source = list
    [family] = collector.collect()
    tenant = "seen-only-by-a-stage"
    zeros = {s.labels["reason"] for s in family.samples if s.labels["tenant"] == tenant}
    assert zeros == {r.value for r in Reason}


def test_parked_reads_the_table_on_the_workers_loop() -> None:
    with running_loop() as loop:
        owner: list[int] = []

        def source() -> list[tuple[str, str]]:
            owner.append(threading.get_ident())
            return [("t1", "duplicate")]

        collector = metrics.ParkedCollector()
        collector.source = source
        collector.loop = loop
        [family] = collector.collect()
    assert owner and owner[0] != threading.get_ident()
    assert any(s.labels["reason"] == "duplicate" and s.value == 1 for s in family.samples)


def test_no_source_no_series() -> None:
    [family] = metrics.ParkedCollector().collect()
    assert family.samples == []


# -- replays ---------------------------------------------------------------------------------


def _failed(attempt: int = 1) -> Envelope:
    event = received_event("t1", dext_item(id="DX-77"), source="push", document=None, origin="x")
    if attempt > 1:
        event = event.model_copy(update={"attempt": attempt})
    err = StageError(Reason.PERIOD_CLOSED, "The period 2026-09 is closed.")
    return event.follow(Stage.FAILED, Failure.of(err, event))


def _app(parked: dict[bytes, bytes]) -> Any:
    return SimpleNamespace(tables={"parked": parked})


def _replays(stage: str, reason: str) -> float:
    labels = {"stage": stage, "tenant": "t1", "reason": reason}
    return REGISTRY.get_sample_value("billstream_replays_total", labels) or 0.0


def _all_replays() -> float:
    [family] = [m for m in REGISTRY.collect() if m.name == "billstream_replays"]
    return sum(s.value for s in family.samples if s.name == "billstream_replays_total")


def _deliver(sensor: metrics.PipelineSensor, event: Envelope) -> None:
    sensor.on_stream_event_in(TP("ap.x", 0), 0, None, SimpleNamespace(value=event.to_bytes()))


def test_a_replay_is_counted_once_at_the_stage_it_was_sent_to() -> None:
    failed = _failed()
    parked = {failed.subject.encode(): orjson.dumps({"id": failed.id, "reason": "period_closed"})}
    sensor = metrics.PipelineSensor(_app(parked))
    replayed, stage = replay_event(failed)
    assert stage is Stage.RECEIVED and replayed.source == "replay"
    before = _replays("validate", "period_closed")
    _deliver(sensor, replayed)
    _deliver(sensor, replayed)  # redelivered after a rebalance
    assert _replays("validate", "period_closed") == before + 1


def test_what_a_replayed_item_goes_on_to_cause_is_not_a_replay() -> None:
    failed = _failed()
    sensor = metrics.PipelineSensor(_app({}))
    replayed, _ = replay_event(failed)
    # What validate emits for it: Envelope.follow keeps the source, the cause is the replay.
    downstream = replayed.model_copy(
        update={
            "type": Stage.VALIDATED.event_type,
            "id": event_id(replayed.subject, Stage.VALIDATED, replayed.attempt),
            "causationid": replayed.id,
        }
    )
    before = _replays("resolve_vendor", "unknown")
    _deliver(sensor, downstream)
    assert _replays("resolve_vendor", "unknown") == before


def test_reason_unknown_when_the_parked_entry_is_another_failure() -> None:
    failed = _failed(attempt=2)
    other = orjson.dumps({"id": "someone-else", "reason": "duplicate"})
    sensor = metrics.PipelineSensor(_app({failed.subject.encode(): other}))
    replayed, _ = replay_event(failed)
    before = _replays("validate", "unknown")
    _deliver(sensor, replayed)
    assert _replays("validate", "unknown") == before + 1


def test_ordinary_events_and_garbage_are_not_counted() -> None:
    sensor = metrics.PipelineSensor(_app({}))
    event = received_event("t1", dext_item(id="DX-78"), source="push", document=None, origin="x")
    before = _all_replays()
    _deliver(sensor, event)
    # A crafted "replay" whose cause is not the item's failure, and bytes that are not JSON.
    fake = event.model_copy(update={"source": "replay", "attempt": 2, "causationid": "x"})
    _deliver(sensor, fake)
    sensor.on_stream_event_in(TP("t", 0), 0, None, SimpleNamespace(value=b'{"replay"'))
    assert _all_replays() == before


@pytest.mark.parametrize(
    ("event_type", "stage"),
    [
        ("billstream.received", "validate"),
        ("billstream.validated", "resolve_vendor"),
        ("billstream.vendor-resolved", "create_bill"),
        ("billstream.bill-created", "attach"),
        ("billstream.attached", None),
        ("billstream.failed", None),
        ("something.else", None),
    ],
)
def test_stage_receiving(event_type: str, stage: str | None) -> None:
    assert metrics.stage_receiving(event_type) == stage


def test_the_pipeline_app_gets_the_sensor_once_before_it_starts(ports: Any) -> None:
    from streams.pipeline.app import create_app

    app = create_app(ports.settings, "kafka://127.0.0.1:1", ports).app
    app.conf  # noqa: B018  (configuring the app is what sends on_after_configured)
    assert sum(isinstance(s, metrics.PipelineSensor) for s in app.sensors) == 1
    metrics.instrument(app)
    assert sum(isinstance(s, metrics.PipelineSensor) for s in app.sensors) == 1


# -- consumer lag ----------------------------------------------------------------------------


def test_lag_by_topic() -> None:
    a0, a1, b0, c0 = TP("a", 0), TP("a", 1), TP("b", 0), TP("c", 0)
    lag = metrics.lag_by_topic(
        [a0, a1, b0, c0],
        ends={a0: 10, a1: 5, b0: 7, c0: None},
        committed={a0: 4, a1: None, b0: 9},
        starts={a1: 2},
    )
    # a: 6 + (5 - 2) from the log start; b: committed past the end reads 0; c: end unknown.
    assert lag == {"a": 9, "b": 0}


class FakeConsumer:
    def __init__(self) -> None:
        self.tps = [TP("ap.received", 0), TP("ap.received", 1), TP("billstream-done-changelog", 0)]
        self._committed_offset = {TP("ap.received", 0): 3}

    def assignment(self) -> set[TP]:
        return set(self.tps)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 10)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)


class FakeApp(SimpleNamespace):
    # The collector keeps apps in a WeakKeyDictionary, as it does Faust apps.
    __hash__ = object.__hash__


def _fake_app() -> Any:
    return FakeApp(consumer=FakeConsumer(), topics=SimpleNamespace(acking_topics={"ap.received"}))


async def test_consumer_lag_reads_only_the_topics_the_agents_ack() -> None:
    assert await metrics.consumer_lag(_fake_app()) == {"ap.received": 7 + 10}


def test_lag_collector_asks_the_workers_loop() -> None:
    collector = metrics.LagCollector()
    app = _fake_app()
    with running_loop() as loop:
        collector.apps[app] = loop
        [family] = collector.collect()
    assert [(s.labels["topic"], s.value) for s in family.samples] == [("ap.received", 17)]
    # A stopped loop: no series rather than a scrape that hangs.
    [family] = collector.collect()
    assert family.samples == []


class SlowConsumer(FakeConsumer):
    """A broker that answers only when the test says so (an idle fetch long-polling)."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        await asyncio.to_thread(self.gate.wait)
        return dict.fromkeys(tps, 10)


def test_a_scrape_never_waits_for_a_slow_broker() -> None:
    # Regression: on Apache Kafka an idle worker's lag took longer than the scrape timeout,
    # and Prometheus saw the worker down after every run.
    gate = threading.Event()
    collector = metrics.LagCollector(wait=0.05)
    app = FakeApp(
        consumer=SlowConsumer(gate), topics=SimpleNamespace(acking_topics={"ap.received"})
    )
    with running_loop() as loop:
        collector.apps[app] = loop
        [family] = collector.collect()
        assert family.samples == [], "answered without the measurement, not blocked on it"
        gate.set()
        # The measurement the first scrape started is what a later one reports.
        for _ in range(200):
            [family] = collector.collect()
            if family.samples:
                break
    assert [(s.labels["topic"], s.value) for s in family.samples] == [("ap.received", 17)]


class running_loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> asyncio.AbstractEventLoop:
        self.thread.start()
        while not self.loop.is_running():
            pass
        return self.loop

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_initialise_creates_the_known_series_at_zero_before_any_observation() -> None:
    # Regression: series born with their first observation have no earlier sample, so a
    # short demo's quantile panels came out NaN on a real Prometheus.
    tenants = parse_tenants(
        '[tenants.init-probe]\nbase_currency = "GBP"\n'
        '[tenants.init-probe.ledger]\nkind = "intacct"\ncompany = "INIT-PROBE"\n',
        "probe.toml",
    )

    def sample(name: str, labels: dict[str, str]) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    stage = {"stage": "init-probe-stage"}
    tenant = {"tenant": "init-probe"}
    assert sample("billstream_stage_seconds_count", stage) is None
    assert sample("billstream_receipt_to_attached_seconds_count", tenant) is None

    assert sample("billstream_consumer_reseeks_total", {"topic": "init-probe.received"}) is None

    metrics.initialise(["init-probe-stage"], tenants, ["init-probe.received"])

    assert sample("billstream_stage_seconds_count", stage) == 0.0
    assert sample("billstream_stage_seconds_bucket", {**stage, "le": "0.1"}) == 0.0
    assert sample("billstream_receipt_to_attached_seconds_count", tenant) == 0.0
    assert sample("billstream_consumer_reseeks_total", {"topic": "init-probe.received"}) == 0.0
    for operation in ("read", "write"):
        labels = {"system": "intacct", "operation": operation}
        # Other tests in this process may have sent Intacct requests already: present is all
        # that can be said of these.
        assert sample("billstream_sage_request_duration_seconds_count", labels) is not None
