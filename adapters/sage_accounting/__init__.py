"""Sage Accounting (formerly Sage Business Cloud Accounting / Sage One), Accounting API v3.1.

- ``oauth``: authorization-code flow, rotating refresh tokens kept in a 0600 file, refreshed
  under a lock shared by every coroutine and process using that file.
- ``client``: the async HTTP client (budgets, token refresh, retries, error mapping).
- ``ledger``: ``SageAccountingLedger``, the ledger port over it (bills and credit notes);
  ``vendors`` (suppliers), ``attachments`` and ``reference`` (settings, periods, chart, tax
  rates) are its parts. ``wire``: JSON with exact money, idempotency ids, timestamps.
- ``sandbox``: a stateful stand-in server speaking the same JSON, run by
  ``billstream sandbox sage-accounting``.
- ``schema``: request/response validation against Sage's Swagger definitions.
- ``harness``: drives the sandbox for the demo and the end-to-end tests.
"""
