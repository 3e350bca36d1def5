"""The outside world, one module or package per system; each client beside its sandbox."""

from adapters import kafka_fetch

# Every Kafka consumer of the project (Faust's, the CLIs', the Dext cursor's) comes through
# here before it starts: see kafka_fetch for why an empty fetch must wait.
kafka_fetch.apply()
