"""The ``billstream`` command line: ``main`` (the console script), ``base`` (the shared
click group and helpers) and one module per command family in ``commands``."""
