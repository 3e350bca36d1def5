"""The pipeline: plain stage functions, the Faust app, topics, agents, replay, audit, CLI."""
