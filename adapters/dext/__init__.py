"""Dext: the sources of items (API poller, export folder, signed push) and the sample set."""
