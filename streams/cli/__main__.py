"""``python -m streams.cli``: the same as the ``billstream`` console script."""

from streams.cli.main import main

main()
