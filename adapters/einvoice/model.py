"""An e-invoice as EN 16931 defines it, whatever its syntax (UBL or CII).

Both syntaxes carry the same semantic model; reading each into these classes first keeps the
syntax readers small and lets one arithmetic check and one item mapping serve both. Field
comments give the EN 16931 business terms (BT-n) the values come from. Amounts stay the
Decimal of the XML's text, so "1225" and "1225.00" both survive as written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

# UNTDID 1001 document types that are credit notes (381 credit note, 261 self-billed credit
# note, 396 factored credit note, 532 forwarder's credit note); everything else is a bill.
CREDIT_TYPE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)


@dataclass(frozen=True)
class VatBreakdown:
    """One VAT category and rate of the invoice (BG-23)."""

    category: str | None  # BT-118
    rate: Decimal | None  # BT-119
    taxable: Decimal | None  # BT-116
    tax: Decimal | None  # BT-117


@dataclass(frozen=True)
class AllowanceCharge:
    """A document-level allowance (BG-20) or charge (BG-21)."""

    charge: bool
    amount: Decimal  # BT-92 / BT-99
    reason: str | None  # BT-97 / BT-104
    vat_category: str | None  # BT-95 / BT-102
    vat_rate: Decimal | None  # BT-96 / BT-103


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice line (BG-25)."""

    id: str | None  # BT-126
    name: str | None  # BT-153
    description: str | None  # BT-154
    quantity: Decimal | None  # BT-129
    unit_code: str | None  # BT-130
    net_price: Decimal | None  # BT-146
    base_quantity: Decimal | None  # BT-149
    net_amount: Decimal  # BT-131
    vat_category: str | None  # BT-151
    vat_rate: Decimal | None  # BT-152
    accounting_ref: str | None = None  # BT-133, the buyer's booking code for the line
    # Line allowances or charges (BG-27/28): with them, quantity x price is not the net.
    adjusted: bool = False


@dataclass
class EInvoice:
    """The invoice as the XML states it; nothing derived except ``format``."""

    format: str  # ubl-invoice, ubl-creditnote, cii
    customization_id: str | None  # BT-24
    type_code: str | None  # BT-3
    number: str | None  # BT-1
    issue_date: dt.date | None  # BT-2
    due_date: dt.date | None  # BT-9
    currency: str | None  # BT-5
    tax_currency: str | None  # BT-6
    seller_name: str | None  # BT-27
    seller_trading_name: str | None  # BT-28
    seller_vat_id: str | None  # BT-31
    seller_tax_registration: str | None  # BT-32
    buyer_name: str | None  # BT-44
    accounting_ref: str | None = None  # BT-19, the buyer's booking code
    lines: list[InvoiceLine] = field(default_factory=list)
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)
    sum_of_line_net: Decimal | None = None  # BT-106
    allowance_total: Decimal | None = None  # BT-107
    charge_total: Decimal | None = None  # BT-108
    tax_exclusive: Decimal | None = None  # BT-109
    tax_total: Decimal | None = None  # BT-110, in the invoice currency
    tax_total_tax_currency: Decimal | None = None  # BT-111
    tax_inclusive: Decimal | None = None  # BT-112
    prepaid: Decimal | None = None  # BT-113
    rounding: Decimal | None = None  # BT-114
    payable: Decimal | None = None  # BT-115
    # XRechnung's extension: amounts the seller collects for third parties (BT-DEX-002,
    # summed), which BR-DEX-09 adds to the amount due.
    third_party: Decimal | None = None
    vat_breakdown: list[VatBreakdown] = field(default_factory=list)

    @property
    def credit_note(self) -> bool:
        return self.format == "ubl-creditnote" or (self.type_code or "") in CREDIT_TYPE_CODES
