"""A readable PDF of an XML-only e-invoice, with the XML itself embedded in it.

An XML invoice is the legal original, but the accountant who opens the bill in Sage needs
something to read, and Sage (and the attach stage) take PDFs and images, not XML. So the
attachment is this rendering: what the invoice says (parties, lines, totals, VAT breakdown)
on A4, and the original XML embedded byte for byte, as Factur-X does, so the bill in Sage
still carries the original.

fpdf2's built-in fonts cover Latin-1 only; text outside it is transliterated or replaced,
never a failure (the embedded XML keeps every character).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF

from adapters.einvoice.model import EInvoice

_FONT = "Helvetica"
# A stable date, so the same XML renders to the same bytes (the file is named by content).
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_SUBSTITUTES = {
    "\u20ac": "EUR",
    "\u2026": "...",
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
}


def latin1(text: str | None) -> str:
    """``text`` in what the built-in fonts can draw."""
    if not text:
        return ""
    out: list[str] = []
    for ch in text:
        ch = _SUBSTITUTES.get(ch, ch)
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(plain or "?")
    return "".join(out).replace("\u00a0", " ")


def _amount(value: Decimal | None) -> str:
    return (
        ""
        if value is None
        else f"{value:,.2f}"
        if value == value.quantize(Decimal("0.01"))
        else f"{value:,}"
    )


def render_pdf(inv: EInvoice, original: bytes, filename: str) -> bytes:
    """The rendering of ``inv``, with ``original`` (the file ``filename``) embedded."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_EPOCH)
    pdf.set_title(latin1(f"{_kind(inv)} {inv.number or ''}"))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    _header(pdf, inv)
    _lines(pdf, inv)
    _totals(pdf, inv)
    _footer(pdf, original, filename)
    pdf.embed_file(
        bytes=original,
        basename=filename,
        modification_date=_EPOCH,
        mime_type="application/xml",
        desc="The original e-invoice",
        associated_file_relationship="Source",
    )
    return bytes(pdf.output())


def write_rendering(inv: EInvoice, original: bytes, filename: str, folder: Path) -> Path:
    """The rendering of ``inv`` as a file in ``folder``, written once per content (named by
    the original's hash) and whole or not at all, as the attach stage must read it."""
    stem = Path(filename).stem
    target = folder / f"{stem}-{hashlib.sha256(original).hexdigest()[:12]}.pdf"
    if not target.exists():
        content = render_pdf(inv, original, filename)
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(content)
        partial.replace(target)
    return target


def _kind(inv: EInvoice) -> str:
    return "Credit note" if inv.credit_note else "Invoice"


def _text(pdf: FPDF, text: str, *, size: int = 9, style: str = "") -> None:
    pdf.set_font(_FONT, style=style, size=size)
    pdf.multi_cell(0, size * 0.5, latin1(text), new_x="LMARGIN", new_y="NEXT")


def _header(pdf: FPDF, inv: EInvoice) -> None:
    _text(pdf, f"{_kind(inv)} {inv.number or '(no number)'}", size=16, style="B")
    pdf.ln(2)
    dates = f"Issued {inv.issue_date or '-'}"
    if inv.due_date:
        dates += f", due {inv.due_date}"
    _text(pdf, f"{dates}. Currency {inv.currency or '-'}. Type code {inv.type_code or '-'}.")
    pdf.ln(2)
    seller = inv.seller_name or inv.seller_trading_name or "(no name)"
    if inv.seller_trading_name and inv.seller_trading_name != seller:
        seller += f" ({inv.seller_trading_name})"
    ids = ", ".join(
        f"{label} {value}"
        for label, value in (("VAT", inv.seller_vat_id), ("tax no.", inv.seller_tax_registration))
        if value
    )
    _text(pdf, f"From: {seller}" + (f"; {ids}" if ids else ""), style="B")
    _text(pdf, f"To: {inv.buyer_name or '-'}")
    pdf.ln(3)


def _lines(pdf: FPDF, inv: EInvoice) -> None:
    pdf.set_font(_FONT, size=8)
    widths = (12, 74, 18, 14, 24, 24, 24)
    heading = ("#", "Item", "Qty", "Unit", "Price", "Net", "VAT")
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=4) as table:
        table.row([*heading])
        for ln in inv.lines:
            name = ln.name or ""
            if ln.description and ln.description != name:
                name = f"{name}\n{ln.description}" if name else ln.description
            vat = f"{ln.vat_category or ''} {'' if ln.vat_rate is None else f'{ln.vat_rate}%'}"
            table.row(
                [
                    latin1(ln.id),
                    latin1(name),
                    "" if ln.quantity is None else f"{ln.quantity:,}",
                    latin1(ln.unit_code),
                    _amount(ln.net_price),
                    _amount(ln.net_amount),
                    vat.strip(),
                ]
            )
        for ac in inv.allowances_charges:
            kind = "Charge" if ac.charge else "Allowance"
            reason = f"{kind}: {ac.reason}" if ac.reason else kind
            amount = ac.amount if ac.charge else -ac.amount
            vat = f"{ac.vat_category or ''} {'' if ac.vat_rate is None else f'{ac.vat_rate}%'}"
            table.row(["", latin1(reason), "", "", "", _amount(amount), vat.strip()])
    pdf.ln(3)


def _totals(pdf: FPDF, inv: EInvoice) -> None:
    rows = [
        ("Sum of lines", inv.sum_of_line_net),
        ("Allowances", inv.allowance_total),
        ("Charges", inv.charge_total),
        ("Total without VAT", inv.tax_exclusive),
        ("VAT", inv.tax_total),
        ("Total with VAT", inv.tax_inclusive),
        ("Paid in advance", inv.prepaid),
        ("Rounding", inv.rounding),
        ("Amount due", inv.payable),
    ]
    pdf.set_font(_FONT, size=9)
    for label, value in rows:
        if value is None:
            continue
        bold = label in ("Total with VAT", "Amount due")
        pdf.set_font(_FONT, style="B" if bold else "", size=9)
        pdf.cell(150, 5, label, align="R")
        pdf.cell(
            0, 5, f"{_amount(value)} {inv.currency or ''}", align="R", new_x="LMARGIN", new_y="NEXT"
        )
    if inv.vat_breakdown:
        pdf.ln(2)
        _text(pdf, "VAT breakdown", style="B")
        for b in inv.vat_breakdown:
            rate = "" if b.rate is None else f" {b.rate}%"
            _text(pdf, f"{b.category or ''}{rate}: {_amount(b.tax)} on {_amount(b.taxable)}")


def _footer(pdf: FPDF, original: bytes, filename: str) -> None:
    pdf.ln(4)
    digest = hashlib.sha256(original).hexdigest()
    _text(
        pdf,
        f"Rendered by billstream from the e-invoice {filename} (SHA-256 {digest}). That XML is "
        "the original invoice; it is embedded in this PDF.",
        size=7,
    )
