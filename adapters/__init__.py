"""The outside world, one module or package per system: Dext, Sage Intacct, Sage
Accounting, the SQLite reference ledger, document fetching and notifications.

Importing any adapter has no side effect; the sandboxes that imitate these systems live in
the top-level ``sandboxes`` package, which no adapter imports.
"""
