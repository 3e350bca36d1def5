"""The outside world, one module or package per system; each client beside its sandbox."""
