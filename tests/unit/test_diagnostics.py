import asyncio

from streams.kafka.diagnostics import await_chain, describe_tasks


async def _innermost(gate: asyncio.Event) -> None:
    secret = "hunter2"  # a local a dump must never print
    await gate.wait()
    del secret


async def _middle(gate: asyncio.Event) -> None:
    await _innermost(gate)


async def test_the_chain_reaches_the_line_that_waits() -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(_middle(gate), name="stuck-agent")
    await asyncio.sleep(0)
    chain = await_chain(task)
    names = [line.rsplit(" in ", 1)[-1] for line in chain if line.lstrip().startswith("File")]
    assert names[:2] == ["_middle", "_innermost"]
    assert "wait" in names  # asyncio.Event.wait, where it really waits
    assert chain[-1] == "  awaiting Future"
    text = describe_tasks([task])
    assert text.startswith("Task stuck-agent:\n")
    assert "hunter2" not in text
    gate.set()
    await task


async def test_a_task_waiting_on_a_task_names_it() -> None:
    gate = asyncio.Event()
    inner = asyncio.create_task(gate.wait(), name="inner")

    async def outer() -> None:
        await inner

    task = asyncio.create_task(outer(), name="outer")
    await asyncio.sleep(0)
    assert await_chain(task)[-1] == "  awaiting task inner"
    gate.set()
    await task
