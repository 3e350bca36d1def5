"""The outside world, one module or package per system; each client beside its sandbox.

Importing any adapter has no side effect. The entry points that start Kafka consumers
(``streams.cli.main``, ``streams.runtime.run_worker``) install ``kafka_fetch``'s empty-fetch
wait themselves.
"""
