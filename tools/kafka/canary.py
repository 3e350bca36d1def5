"""Broker canary: a quick end-to-end check that a Kafka broker behaves, using aiokafka only.

    python tools/kafka/canary.py 127.0.0.1:19092

Creates a fresh 1-partition topic, produces 20 records to partition 0 in ONE batch, checks that
end_offsets is 20 (a broker that mis-reports offsets after batched produce fails here), consumes
them back in a consumer group, commits, checks the committed offset and that a new member of the
group resumes at the end, then deletes the topic. Exits 0 on success, 1 on any failure.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

N = 20
TIMEOUT_S = 60.0


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


async def canary(bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]
    topic, group = f"canary-{run}", f"canary-group-{run}"
    tp = TopicPartition(topic, 0)

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="canary")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        try:
            # ---- one batch of N records, all to partition 0
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
            await producer.start()
            try:
                batch = producer.create_batch()
                for i in range(N):
                    meta = batch.append(
                        key=f"k{i}".encode(), value=f"v{i}".encode(), timestamp=None
                    )
                    check(meta is not None, f"record {i} did not fit in one batch")
                batch.close()
                fut = await producer.send_batch(batch, topic, partition=0)
                rec = await fut
                check(rec.offset == 0, f"batch base offset {rec.offset}, expected 0")
            finally:
                await producer.stop()

            # ---- consume in a group, commit
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
            )
            await consumer.start()
            try:
                end = await consumer.end_offsets([tp])
                check(
                    end[tp] == N,
                    f"end_offsets={end[tp]} after a batched produce of {N}, expected {N}",
                )
                beg = await consumer.beginning_offsets([tp])
                check(beg[tp] == 0, f"beginning_offsets={beg[tp]}, expected 0")

                got = []
                deadline = time.monotonic() + 30
                while len(got) < N and time.monotonic() < deadline:
                    batches = await consumer.getmany(timeout_ms=1000)
                    for msgs in batches.values():
                        got.extend(msgs)
                check(len(got) == N, f"consumed {len(got)} records, expected {N}")
                check([m.offset for m in got] == list(range(N)), "offsets not 0..N-1 in order")
                check(
                    [(m.key, m.value) for m in got]
                    == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(N)],
                    "keys/values differ from what was produced",
                )
                await consumer.commit()
                committed = await consumer.committed(tp)
                check(committed == N, f"committed={committed}, expected {N}")
            finally:
                await consumer.stop()

            # ---- a new member of the group resumes after the committed offset
            consumer2 = AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer2.start()
            try:
                deadline = time.monotonic() + 30
                # polling: aiokafka offers no event for a finished group join
                while not consumer2.assignment() and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                check(tp in consumer2.assignment(), "second consumer got no assignment")
                extra = await consumer2.getmany(timeout_ms=500)
                check(not any(extra.values()), "second consumer re-read committed records")
                pos = await consumer2.position(tp)
                check(pos == N, f"resumed at {pos}, expected {N}")
            finally:
                await consumer2.stop()
        finally:
            await admin.delete_topics([topic])
    finally:
        await admin.close()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: canary.py HOST:PORT", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(canary(sys.argv[1]), TIMEOUT_S))
    except Exception as exc:
        print(f"canary: FAILED against {sys.argv[1]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"canary: ok against {sys.argv[1]} ({N} batched records, {time.monotonic() - t0:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
