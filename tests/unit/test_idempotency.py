"""``StageRunner``: a redelivered event repeats no side effect; a replay re-runs a failure;
transient errors are retried in place and parked only when the budget runs out."""

from __future__ import annotations

import asyncio

from domain.errors import LedgerError, Reason
from domain.events import STAGES, Envelope, Failure, Received, Stage, Work
from streams.pipeline import stages
from streams.pipeline.idempotency import StageRunner, StageSpec, run_stage
from streams.pipeline.wiring import Ports
from tests.conftest import dext_item, ledger_of

VALIDATE = StageSpec("validate", Stage.RECEIVED, Stage.VALIDATED, stages.validate)


def received(item: dict, attempt: int = 1) -> Envelope:
    return Envelope.new(
        stage=Stage.RECEIVED,
        subject=f"t1:{item['id']}",
        data=Received(item=item),
        source="test",
        attempt=attempt,
    )


async def pipeline(ports: Ports, ev: Envelope, done: dict[str, dict]) -> Envelope:
    once = StageRunner(ports)
    for name, (source, target) in STAGES.items():
        spec = StageSpec(name, source, target, getattr(stages, name))
        ev = (await once(ev, spec, done.setdefault(name, {}))).event
        if ev.stage is Stage.FAILED:
            break
    return ev


async def test_redelivery_re_emits_and_repeats_no_side_effect(ports: Ports) -> None:
    done: dict[str, dict] = {}
    first = await pipeline(ports, received(dext_item()), done)
    second = await pipeline(ports, received(dext_item()), done)
    assert first.stage is Stage.ATTACHED
    assert second == first  # byte-identical event, same deterministic id
    writes = [w["op"] for w in ledger_of(ports, "t1").writes()]
    assert writes == ["create_vendor", "create_draft_bill", "attach_document"]


async def test_a_crash_after_the_write_but_before_the_table_adopts(ports: Ports) -> None:
    done: dict[str, dict] = {}
    await pipeline(ports, received(dext_item()), done)
    done["create_bill"].clear()  # the table write was lost in the crash
    done["attach"].clear()
    again = await pipeline(ports, received(dext_item()), done)
    assert again.stage is Stage.ATTACHED
    assert len(ledger_of(ports, "t1").writes("create_draft_bill")) == 1
    assert len(ledger_of(ports, "t1").writes("attach_document")) == 1


async def test_failure_is_re_emitted_on_redelivery_but_re_run_on_replay(ports: Ports) -> None:
    ledger_of(ports, "t1").close_period("2026-10")
    done: dict[str, dict] = {}
    failed = await pipeline(ports, received(dext_item()), done)
    assert isinstance(failed.data, Failure) and failed.data.reason is Reason.PERIOD_CLOSED
    assert await pipeline(ports, received(dext_item()), done) == failed
    ledger_of(ports, "t1").open_period("2026-10")
    from streams.ops.replay import replay_event

    again, stage = replay_event(failed)
    assert stage is Stage.VENDOR_RESOLVED and again.attempt == 2
    once = StageRunner(ports)
    ev = again
    for name in ("create_bill", "attach"):
        source, target = STAGES[name]
        ev = (
            await once(
                ev,
                StageSpec(name, source, target, getattr(stages, name)),
                done[name] if name in done else done.setdefault(name, {}),
            )
        ).event
    assert ev.stage is Stage.ATTACHED and ev.attempt == 2
    assert len(ledger_of(ports, "t1").writes("create_draft_bill")) == 1


async def test_concurrent_deliveries_of_one_item_do_the_work_once(ports: Ports) -> None:
    once = StageRunner(ports)
    validated = (await once(received(dext_item()), VALIDATE, {})).event
    done: dict = {}
    calls = 0

    async def slow_resolve(work: Work, ctx: stages.StageContext) -> Work:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # slow work: the four other deliveries arrive meanwhile
        return await stages.resolve_vendor(work, ctx)

    spec = StageSpec("resolve_vendor", Stage.VALIDATED, Stage.VENDOR_RESOLVED, slow_resolve)
    outs = await asyncio.gather(*(once(validated, spec, done) for _ in range(5)))
    assert calls == 1
    assert len({o.event.id for o in outs}) == 1
    assert len({o.value for o in outs}) == 1  # the same bytes each time
    assert sum(not o.replayed for o in outs) == 1


async def test_transient_errors_are_retried_in_place(ports: Ports) -> None:
    tries = 0

    async def flaky(data: Received, ctx: stages.StageContext) -> Work:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise LedgerError(Reason.UNAVAILABLE, "Sage is down", retry_after=0.01)
        return await stages.validate(data, ctx)

    out = await run_stage(
        received(dext_item()), StageSpec("v", Stage.RECEIVED, Stage.VALIDATED, flaky), ports
    )
    assert out.stage is Stage.VALIDATED
    assert tries == 3


async def test_transient_errors_park_when_the_budget_runs_out(ports: Ports) -> None:
    tries = 0

    async def down(data: Received, ctx: stages.StageContext) -> Work:
        nonlocal tries
        tries += 1
        raise LedgerError(Reason.RATE_LIMITED, "429 Too Many Requests")

    out = await run_stage(
        received(dext_item()), StageSpec("v", Stage.RECEIVED, Stage.VALIDATED, down), ports
    )
    assert isinstance(out.data, Failure)
    assert out.data.reason is Reason.RATE_LIMITED
    assert tries == ports.settings.retry_attempts


async def test_permanent_errors_are_not_retried(ports: Ports) -> None:
    tries = 0

    async def refused(data: Received, ctx: stages.StageContext) -> Work:
        nonlocal tries
        tries += 1
        raise LedgerError(Reason.AUTH, "XL03000006 sender not authorised")

    out = await run_stage(
        received(dext_item()), StageSpec("v", Stage.RECEIVED, Stage.VALIDATED, refused), ports
    )
    assert isinstance(out.data, Failure) and out.data.reason is Reason.AUTH
    assert tries == 1


async def test_a_bug_is_parked_with_its_type_not_lost(ports: Ports) -> None:
    async def buggy(data: Received, ctx: stages.StageContext) -> Work:
        raise KeyError("oops")

    out = await run_stage(
        received(dext_item()), StageSpec("v", Stage.RECEIVED, Stage.VALIDATED, buggy), ports
    )
    assert isinstance(out.data, Failure)
    assert out.data.reason is Reason.UNAVAILABLE
    assert "KeyError" in out.data.message


async def test_unknown_tenant_parks_with_a_clear_reason(ports: Ports) -> None:
    ev = Envelope.new(
        stage=Stage.RECEIVED, subject="nobody:DX-1", data=Received(item=dext_item()), source="test"
    )
    out = await run_stage(ev, VALIDATE, ports)
    assert isinstance(out.data, Failure)
    assert out.data.problems[0].code == "unknown_tenant"
