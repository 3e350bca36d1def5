"""The agents: each a thin shell that decodes an event, calls a plain function, emits.

All logic lives in ``stages`` (what a stage does), ``idempotency`` (doing it once) and
``tracking`` (what the failed topic means), beside this module in ``streams.pipeline``.
"""

from __future__ import annotations

from typing import Any

from domain.events import STAGES, Envelope, Stage
from streams.pipeline import notifications, poison, stages, tracking
from streams.pipeline.idempotency import StageFn, StageRunner, StageSpec
from streams.pipeline.parts import Pipeline, done_table
from streams.pipeline.poison import Delivered

_FUNCTIONS: dict[str, StageFn] = {
    "validate": stages.validate,
    "resolve_vendor": stages.resolve_vendor,
    "create_bill": stages.create_bill,
    "attach": stages.attach,
}


def register_agents(pipeline: Pipeline) -> None:
    app, topics, settings = pipeline.app, pipeline.topics, pipeline.settings
    once = StageRunner(pipeline.ports)

    async def emit(event: Envelope, raw: bytes | None = None) -> None:
        # Wait for the broker's ack before the input offset can be committed: at-least-once.
        value = event.to_bytes() if raw is None else raw
        await (await topics[event.stage].send(key=event.subject.encode(), value=value))

    def stage_agent(name: str, source: Stage, target: Stage) -> Any:
        spec = StageSpec(name, source, target, _FUNCTIONS[name])
        done = done_table(pipeline, name)

        async def agent(stream: Any) -> None:
            async for record in stream.events():
                delivered = Delivered.of(record)
                event = poison.decode(delivered, source)
                if event.stage is Stage.FAILED:  # unreadable: parked, the partition moves on
                    await emit(event)
                    continue
                outcome = await once(event, spec, done, delivered)
                await emit(outcome.event, outcome.value)

        agent.__name__ = agent.__qualname__ = f"{name}_agent"
        concurrency = settings.stage_concurrency
        return app.agent(topics[source], name=f"{name}", concurrency=concurrency)(agent)

    for name, (source, target) in STAGES.items():
        pipeline.agents[name] = stage_agent(name, source, target)

    parked = tracking.parked_table(pipeline)
    notices = notifications.install(pipeline, parked)

    async def failed_agent(stream: Any) -> None:
        async for record in stream.events():
            event = poison.readable(Delivered.of(record))
            if event is not None:
                tracking.on_failed(event, parked, notices)

    async def attached_agent(stream: Any) -> None:
        async for record in stream.events():
            event = poison.readable(Delivered.of(record))
            if event is not None:
                tracking.on_attached(event, parked)

    pipeline.agents["failed"] = app.agent(topics[Stage.FAILED], name="failed")(failed_agent)
    pipeline.agents["attached"] = app.agent(topics[Stage.ATTACHED], name="attached")(attached_agent)
