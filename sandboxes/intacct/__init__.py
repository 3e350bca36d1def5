"""The Sage Intacct sandbox: the XML Web Services gateway in memory (see ``sandbox``), and
its process wrapper and demo harness (``harness``)."""
