"""Sage Intacct over its XML Web Services gateway: envelopes, client, ledger port, sandbox.

- ``xml``: request/response envelopes, built with ElementTree and parsed with defusedxml.
- ``errors``: Intacct error blocks mapped to the DESIGN §5 reasons.
- ``keys``: billstream's conventions inside Intacct (item key tag, derived ids, control ids).
- ``client``: ``IntacctClient`` (sessions, concurrency limit, batching, retries) and
  ``IntacctLedger`` (the ledger port).
- ``sandbox``: a stateful HTTP server speaking the same XML (``billstream sandbox intacct``).
- ``harness``: runs the sandbox in its own process for the demo and the tests.
"""
