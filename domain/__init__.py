"""Pure domain: models, money, dates, validation, GL coding, events, errors, ports.

Nothing here does I/O or imports from ``adapters`` or ``streams``.
"""
