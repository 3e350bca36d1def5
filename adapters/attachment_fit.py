"""Make a document fit what the ledger takes, or say precisely why it cannot.

An image over the ledger's size limit is re-encoded as JPEG and, if need be, downscaled step
by step (Pillow); an image in a type the ledger refuses is converted (a multi-page TIFF to a
PDF of all its pages, anything else to JPEG). A PDF over the limit has its streams
recompressed and its large images re-encoded (pikepdf, Pillow). What still does not fit, or
cannot be converted, is ``attachment_too_large`` / ``attachment_type`` with the sizes: never
a bill whose document was dropped without a word. The original's name, hash and size travel
with the attachment (``Attachment.reencoded_from``).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import PurePath

import pikepdf
from pikepdf.models.image import PdfImage
from PIL import Image, ImageOps, ImageSequence

from domain.errors import LedgerError, Reason
from domain.models import AttachmentLimits, Document, Reencoded

PDF = "application/pdf"
JPEG = "image/jpeg"
# Longest side, then JPEG quality, tried in this order until the file fits: a receipt stays
# legible at 1600 px; below 1000 px it would not, so that is where trying stops.
_SIDES = (None, 3000, 2400, 2000, 1600, 1300, 1000)
_QUALITIES = (85, 70, 55)
_PDF_IMAGE_MIN_BYTES = 32 * 1024  # smaller images are not worth re-encoding
# A bigger picture is not a scan but an attack on memory (Pillow's bomb check, made strict).
_MAX_PIXELS = 80_000_000


@dataclass(frozen=True)
class Fitted:
    document: Document
    reencoded_from: Reencoded | None = None


def fit_document(document: Document, limits: AttachmentLimits) -> Fitted:
    """``document`` as it is when the ledger takes it, else a re-encoded copy that fits;
    ``LedgerError`` (``attachment_too_large`` or ``attachment_type``) when neither exists."""
    kind = _kind(document)
    size = len(document.content)
    if limits.takes(document.content_type) and size <= limits.max_bytes:
        return Fitted(document)
    if kind == "image":
        made, how = _fit_image(document, limits)
    elif kind == "pdf" and limits.takes(PDF):
        made, how = _fit_pdf(document, limits)
    else:
        raise _type_error(document, limits)
    if len(made.content) > limits.max_bytes:
        raise _too_large(document, limits, f"{how}: still {len(made.content):,} bytes")
    original = Reencoded(
        filename=document.filename,
        content_type=document.content_type,
        sha256=document.sha256,
        size=size,
        how=how,
    )
    return Fitted(made, original)


def _kind(document: Document) -> str:
    head = document.content[:16]
    if head.lstrip().startswith(b"%PDF-"):
        return "pdf"
    if document.content_type.startswith("image/") or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    return "other"


def _type_error(document: Document, limits: AttachmentLimits) -> LedgerError:
    takes = ", ".join(sorted(limits.types)) or "any type"
    return LedgerError(
        Reason.ATTACHMENT_TYPE,
        f"{document.filename} is {document.content_type}; {limits.ledger} takes {takes} "
        f"({limits.source}), and it cannot be converted to one of them.",
        detail={"content_type": document.content_type, "size": len(document.content)},
    )


def _too_large(document: Document, limits: AttachmentLimits, tried: str) -> LedgerError:
    size = len(document.content)
    return LedgerError(
        Reason.ATTACHMENT_TOO_LARGE,
        f"{document.filename} is {size:,} bytes; {limits.ledger} takes at most "
        f"{limits.max_bytes:,} bytes per attachment ({limits.source}) and it could not be "
        f"made to fit ({tried}).",
        detail={"size": size, "limit": limits.max_bytes, "tried": tried},
    )


def _renamed(document: Document, suffix: str) -> str:
    return str(PurePath(document.filename).with_suffix(suffix))


def _open_image(document: Document) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(document.content))
            if image.width * image.height > _MAX_PIXELS:
                raise ValueError(f"{image.width} x {image.height} pixels")
            image.load()
        except (
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombWarning,
            Image.DecompressionBombError,
        ) as exc:
            raise LedgerError(
                Reason.ATTACHMENT_TYPE,
                f"{document.filename} is not an image that can be read ({exc}); attach it "
                "as PDF, JPEG or PNG.",
                detail={"content_type": document.content_type, "size": len(document.content)},
            ) from None
    return image


def _fit_image(document: Document, limits: AttachmentLimits) -> tuple[Document, str]:
    image = _open_image(document)
    frames = int(getattr(image, "n_frames", 1))
    if frames > 1:
        # A multi-page scan: one JPEG would keep its first page only.
        if not limits.takes(PDF):
            raise _type_error(document, limits)
        pages = [f.convert("RGB") for f in ImageSequence.Iterator(image)]
        out = io.BytesIO()
        pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=150)
        return Document.of(_renamed(document, ".pdf"), PDF, out.getvalue()), (
            f"{frames} pages as one PDF"
        )
    if not limits.takes(JPEG):
        raise _type_error(document, limits)
    rgb = (ImageOps.exif_transpose(image) or image).convert("RGB")
    last = document
    how = ""
    for side in _SIDES:
        scaled = rgb if side is None or max(rgb.size) <= side else _scaled(rgb, side)
        for quality in _QUALITIES:
            out = io.BytesIO()
            scaled.save(out, "JPEG", quality=quality, optimize=True)
            last = Document.of(_renamed(document, ".jpg"), JPEG, out.getvalue())
            how = f"{scaled.width} x {scaled.height} px, JPEG quality {quality}"
            if len(last.content) <= limits.max_bytes:
                return last, f"re-encoded as {how}"
    return last, f"re-encoded down to {how}"


def _scaled(image: Image.Image, side: int) -> Image.Image:
    ratio = side / max(image.size)
    size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _fit_pdf(document: Document, limits: AttachmentLimits) -> tuple[Document, str]:
    try:
        pdf = pikepdf.open(io.BytesIO(document.content))
    except (pikepdf.PdfError, pikepdf.PasswordError) as exc:
        raise _too_large(
            document, limits, f"the PDF cannot be opened to compress it: {exc}"
        ) from None
    with pdf:
        out = _save(pdf)
        how = "streams recompressed"
        if len(out) > limits.max_bytes:
            for side, quality in ((2000, 75), (1600, 60), (1200, 50)):
                changed = _reencode_pdf_images(pdf, side, quality)
                out = _save(pdf)
                how = f"streams recompressed, {changed} images at {side} px JPEG {quality}"
                if len(out) <= limits.max_bytes:
                    break
    return Document.of(document.filename, PDF, out), how


def _save(pdf: pikepdf.Pdf) -> bytes:
    buffer = io.BytesIO()
    pdf.save(
        buffer,
        compress_streams=True,
        recompress_flate=True,
        object_stream_mode=pikepdf.ObjectStreamMode.generate,
    )
    return buffer.getvalue()


def _reencode_pdf_images(pdf: pikepdf.Pdf, side: int, quality: int) -> int:
    """Every large image of ``pdf`` as a JPEG of at most ``side`` px; how many changed."""
    changed = 0
    for page in pdf.pages:
        for _, raw in page.get_images().items():
            if not isinstance(raw, pikepdf.Stream):
                continue
            if len(raw.read_raw_bytes()) < _PDF_IMAGE_MIN_BYTES or "/SMask" in raw:
                continue  # small, or with transparency JPEG cannot keep
            try:
                picture = PdfImage(raw).as_pil_image()
            except (pikepdf.PdfError, NotImplementedError, ValueError, OSError):
                continue  # an encoding Pillow cannot read: left as it is
            picture = picture.convert("RGB")
            if max(picture.size) > side:
                picture = _scaled(picture, side)
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=quality, optimize=True)
            raw.write(out.getvalue(), filter=pikepdf.Name.DCTDecode)
            raw.Width, raw.Height = picture.width, picture.height
            raw.ColorSpace = pikepdf.Name.DeviceRGB
            raw.BitsPerComponent = 8
            for key in ("/DecodeParms", "/Decode"):
                if key in raw:
                    del raw[key]
            changed += 1
    return changed
