"""The Faust app: topics, the per-stage "done" tables, and the agents, built from settings.

The app is built by a function rather than at import so that the worker, the tests and the
demo can each build one for their own broker, prefix and partition count.
"""

from __future__ import annotations

import faust

from domain.events import Stage
from streams import metrics  # noqa: F401 - importing metrics hooks every app
from streams.config import Settings
from streams.kafka import faust_patches, stall_watchdog
from streams.pipeline.agents import register_agents
from streams.pipeline.parts import Pipeline
from streams.pipeline.wiring import Ports


def faust_app(settings: Settings, kafka_url: str) -> faust.App:
    """The Faust app as every billstream worker configures it (the benchmark's bare chain
    uses it too, so that the two are compared on the same settings)."""
    faust_patches.apply()
    return faust.App(
        settings.app_id,
        broker=kafka_url,
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_compression_type=settings.producer_compression,
        # A few milliseconds of linger put the sends of concurrent agents into one batch:
        # fewer produce requests, and compression that has more than one record to work on.
        producer_linger=settings.producer_linger_ms / 1000,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=max(settings.session_timeout, 10.0),
        broker_commit_every=100,
        broker_commit_interval=1.0,
        # Standby copies would be counted twice by per-worker gauges and recovery from the
        # changelog is quick at AP volumes, so tables keep one active copy.
        table_standby_replicas=0,
        stream_wait_empty=False,
        consumer_group_instance_id=settings.group_instance_id,
    )


def create_app(settings: Settings, kafka_url: str, ports: Ports) -> Pipeline:
    app = faust_app(settings, kafka_url)
    pipeline = Pipeline(app=app, settings=settings, ports=ports)
    for stage in Stage:
        pipeline.topics[stage] = app.topic(
            settings.topic(stage),
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
        )
    register_agents(pipeline)
    stall_watchdog.install(app)
    return pipeline
