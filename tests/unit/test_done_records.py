"""The done tables keep a compact record of each outcome and rebuild the very event first
emitted from it: same id, time, attempt and data, for every stage, and for failures."""

from __future__ import annotations

import datetime as dt

from domain.events import STAGES, Envelope, Received, Stage
from streams.pipeline import done as done_records
from streams.pipeline import stages
from streams.pipeline.idempotency import StageRunner, StageSpec
from streams.pipeline.wiring import Ports
from tests.conftest import dext_item, ledger_of


def received(item: dict) -> Envelope:
    return Envelope.new(
        stage=Stage.RECEIVED, subject=f"t1:{item['id']}", data=Received(item=item), source="test"
    )


def specs() -> list[StageSpec]:
    return [StageSpec(n, s, t, getattr(stages, n)) for n, (s, t) in STAGES.items()]


async def test_each_stage_records_a_fraction_of_its_event_and_rebuilds_it(ports: Ports) -> None:
    once = StageRunner(ports)
    tables: dict[str, dict[bytes, bytes]] = {}
    ev = received(dext_item())
    inputs, outputs = [], []
    for spec in specs():
        inputs.append(ev)
        ev = (await once(ev, spec, tables.setdefault(spec.name, {}))).event
        assert ev.stage is spec.target, ev
        outputs.append(ev)
    for spec, event, out in zip(specs(), inputs, outputs, strict=True):
        raw = tables[spec.name][event.subject.encode()]
        assert len(raw) < len(out.to_bytes()) / 3, (spec.name, len(raw), len(out.to_bytes()))
        again = await once(event, spec, tables[spec.name])  # a redelivery
        assert again.replayed
        assert again.event == out
        assert again.value == out.to_bytes()
    assert len(ledger_of(ports, "t1").writes()) == 3  # vendor, bill, attachment: once each


async def test_validation_is_re_derived_on_the_day_it_first_ran(ports: Ports) -> None:
    once = StageRunner(ports)
    spec = specs()[0]
    table: dict[bytes, bytes] = {}
    event = received(dext_item())
    first = (await once(event, spec, table)).event
    ports.today = lambda: dt.date(2031, 1, 1)  # type: ignore[method-assign]
    again = await once(event, spec, table)
    assert again.replayed and again.event == first


async def test_a_failure_is_kept_whole(ports: Ports) -> None:
    once = StageRunner(ports)
    table: dict[bytes, bytes] = {}
    event = received(dext_item(invoice_number=None))
    failed = (await once(event, specs()[0], table)).event
    assert failed.stage is Stage.FAILED
    record = done_records.read(table[event.subject.encode()])
    assert isinstance(record, done_records.DoneRecord) and record.event == failed
    assert (await once(event, specs()[0], table)).event == failed


async def test_an_entry_written_by_an_earlier_release_is_still_read(ports: Ports) -> None:
    once = StageRunner(ports)
    spec = specs()[0]
    event = received(dext_item())
    out = (await once(event, spec, {})).event
    table = {event.subject.encode(): out.to_bytes()}  # the whole event, as before records
    again = await once(event, spec, table)
    assert again.replayed and again.event == out


async def test_an_unusable_entry_runs_the_stage_again(ports: Ports) -> None:
    once = StageRunner(ports)
    spec = specs()[0]
    event = received(dext_item())
    table = {event.subject.encode(): b'{"v": 1, "id": "x"}'}
    out = await once(event, spec, table)
    assert not out.replayed and out.event.stage is Stage.VALIDATED
