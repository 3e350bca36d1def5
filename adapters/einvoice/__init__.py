"""European e-invoices (EN 16931) as Dext items: UBL 2.1, UN/CEFACT CII, Factur-X PDFs.

``read_einvoice(data, filename)`` reads one file (XML or a PDF with the XML embedded) into
the item shape every Dext source produces, with the EN 16931 totals checked; a file that is
not a readable e-invoice raises ``EInvoiceError`` with a stable code (``errors``).
"""
