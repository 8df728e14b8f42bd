"""Whether a complete JPEG's compressed data is damaged (bit flips, a lost block of bytes, a bad copy).

OpenCV and Pillow decode such a file "successfully": libjpeg resynchronises or fills the rest of the image and
only prints a warning ("Corrupt JPEG data: bad Huffman code", "… premature end of data segment", "… 86
extraneous bytes before marker 0xd9"), which neither passes on. The pixels are then garbage (tens of grey levels
off, smeared blocks) and would be scored as a part. libjpeg-turbo through simplejpeg with ``strict=True`` raises
those warnings instead; decoding at the smallest DCT scale (1/8) still reads every entropy-coded bit, at about
half the cost of the full decode. A damage that libjpeg cannot see (a flip that stays a valid Huffman code) stays
unseen: no JPEG carries a checksum.
"""

from __future__ import annotations

import re

# libjpeg's warnings that mean the decoded samples do not come from the coded data (jerror.h JWRN_*): the
# entropy-coded data is bad, or it ended early, or a progressive file's scans do not add up
_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file", "Inconsistent progression sequence")
_NOT_DAMAGE = ("Corrupt JPEG data: bad ICC marker",)  # metadata only: the pixels are whole
_EXTRANEOUS = re.compile(r"Corrupt JPEG data: (\d+) extraneous bytes before marker 0xd9")
_EOI = b"\xff\xd9"


def jpeg_damage(data: bytes) -> str | None:
    """libjpeg's warning when the complete JPEG file ``data`` (its whole bytes, SOI to EOI) has damaged
    compressed data, else None.

    None too when libjpeg-turbo cannot judge the file (CMYK, 12-bit, arithmetic or lossless coding: the caller's
    decoder reads it as before) and when the only warning is padding before the end marker: bytes of one fill
    value, 0x00 or 0xFF, or up to 4 stray bytes, between the last scan and EOI, which some cameras write and
    which leave every pixel whole. Source: libjpeg-turbo jerror.h (the JWRN_* warnings); simplejpeg ``decode_jpeg(strict=True)``.
    """
    import simplejpeg

    try:
        simplejpeg.decode_jpeg(data, min_height=1, min_width=1, strict=True)
    except ValueError as exc:
        message = str(exc).strip()
        if not message.startswith(_DAMAGE) or message.startswith(_NOT_DAMAGE) or _padding_only(data, message):
            return None
        return message
    return None


def _padding_only(data: bytes, message: str) -> bool:
    """Whether the extraneous bytes before the end marker that ``message`` counts are padding: one fill value,
    or at most :data:`_QUIRK_BYTES` of anything."""
    extraneous = _EXTRANEOUS.fullmatch(message)
    end = data.rfind(_EOI)
    if extraneous is None or end < 0:
        return False
    count = int(extraneous[1])
    fill = data[end - count:end]
    return count <= _QUIRK_BYTES or (len(fill) == count and fill in (b"\x00" * count, b"\xff" * count))


# A decoder that lost step in the scan fills the image and leaves the rest of the scan unread: tens to hundreds of
# bytes (58-269 in 48 single-byte flips, benchmarks/README.md Session 40). Some camera firmware ends a whole scan
# with a stray byte or two ("1 extraneous bytes before marker 0xd9" on frames that are fine): not refused.
_QUIRK_BYTES = 4
