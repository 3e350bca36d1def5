"""The Sage Accounting sandbox: the v3.1 API with OAuth in memory (see ``sandbox``), and
its process wrapper and demo harness (``harness``)."""
