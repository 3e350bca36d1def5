"""Sage Intacct over its XML Web Services gateway: envelopes, client, ledger port, sandbox.

- ``xml``: request/response envelopes, built with ElementTree and parsed with defusedxml.
- ``errors``: Intacct error blocks mapped to the pipeline's failure reasons
  (``domain.errors.Reason``).
- ``keys``: billstream's conventions inside Intacct (item key tag, derived ids, control ids).
- ``client``: ``IntacctClient``, the wire (sessions, concurrency limit, batching, retries).
- ``ledger``: ``IntacctLedger``, the ledger port (vendors, bills, periods, chart) over it;
  ``attachments`` (supdocs), ``queries`` (the XML it sends and reads) and ``caching``
  (per-key locks, recent misses) are its parts.
- ``sandbox``: a stateful HTTP server speaking the same XML (``billstream sandbox intacct``).
- ``harness``: runs the sandbox in its own process for the demo and the tests.
"""
