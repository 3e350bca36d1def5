"""The agents: each a thin shell that decodes an event, calls a plain function, emits.

All logic lives in ``streams.stages`` (what a stage does), ``streams.idempotency`` (doing it
once) and ``streams.tracking`` (what the failed topic means).
"""

from __future__ import annotations

from typing import Any

from domain.events import Envelope, Stage
from streams import notifications, stages, tracking
from streams.app import Pipeline, done_table
from streams.idempotency import Once, StageSpec

_FUNCTIONS = {
    "validate": stages.validate,
    "resolve_vendor": stages.resolve_vendor,
    "create_bill": stages.create_bill,
    "attach": stages.attach,
}


def register_agents(pipeline: Pipeline) -> None:
    app, topics, settings = pipeline.app, pipeline.topics, pipeline.settings
    once = Once(pipeline.ports)

    async def emit(event: Envelope) -> None:
        # Wait for the broker's ack before the input offset can be committed: at-least-once.
        await (await topics[event.stage].send(key=event.subject.encode(), value=event.to_bytes()))

    def stage_agent(name: str, source: Stage, target: Stage) -> Any:
        spec = StageSpec(name, source, target, _FUNCTIONS[name])
        done = done_table(pipeline, name)

        async def agent(stream: Any) -> None:
            async for value in stream:
                await emit((await once(Envelope.from_bytes(value), spec, done)).event)

        agent.__name__ = agent.__qualname__ = f"{name}_agent"
        concurrency = settings.stage_concurrency
        return app.agent(topics[source], name=f"{name}", concurrency=concurrency)(agent)

    for name, (source, target) in stages.STAGES.items():
        pipeline.agents[name] = stage_agent(name, source, target)

    parked = tracking.parked_table(pipeline)
    notices = notifications.install(pipeline, parked)

    async def failed_agent(stream: Any) -> None:
        async for value in stream:
            tracking.on_failed(Envelope.from_bytes(value), parked, notices)

    async def attached_agent(stream: Any) -> None:
        async for value in stream:
            tracking.on_attached(Envelope.from_bytes(value), parked)

    pipeline.agents["failed"] = app.agent(topics[Stage.FAILED], name="failed")(failed_agent)
    pipeline.agents["attached"] = app.agent(topics[Stage.ATTACHED], name="attached")(attached_agent)
