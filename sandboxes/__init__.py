"""Stand-ins for the systems billstream talks to, for the tests and the demo; not the product.

HTTP servers that behave like Dext (``sandboxes.dext``), Sage Intacct
(``sandboxes.intacct``) and Sage Accounting (``sandboxes.sage_accounting``), the sample
set the Dext sandbox serves, each sandbox as a child process (``sandboxes.process``) and
the harnesses the demo drives a ledger with (``sandboxes.harness``). The product
(``domain``, ``adapters``, the worker in ``streams``) never imports this package.
"""
