"""One module per command (or family); each registers itself on ``streams.cli.base`` groups."""
