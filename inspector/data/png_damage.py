"""Whether a PNG chunk that decides its pixels is damaged where libpng decodes the file all the same.

Every PNG chunk ends with a CRC-32 of its type and data (PNG specification §5.3). libpng refuses a file whose
critical chunk (IHDR, PLTE, IDAT) fails it, but an ancillary chunk that fails it is dropped with a warning
(libpng's default ``PNG_CRC_DEFAULT``: "discard data, warn"), and the file decodes. Two ancillary chunks decide
the pixels here: **sBIT**, the significant bits a 16-bit picture is scaled by (``images.declared_full_scale``), and
**eXIf**, whose Orientation turns the picture (``images._exif_orientation``). Read by their own readers, not
libpng's, a damaged sBIT was used as it stood (12 flipped to 13 read a 12-bit picture at half brightness) and a
damaged eXIf read as no orientation (the picture came out unturned), both without a word. Such a file cannot be
read right, so it is refused; a damaged chunk that changes nothing here (text, gamma, an ICC profile, all ignored)
is not. Only the chunks before the first IDAT are judged: a later eXIf is not read (OpenCV reads none after it).
"""

from __future__ import annotations

import struct
import zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# chunks whose content decides the pixels (module docstring); IHDR and PLTE too, for a message naming them
PIXEL_CHUNKS = (b"IHDR", b"PLTE", b"sBIT", b"eXIf")


def png_damage(data: bytes) -> str | None:
    """What is damaged in the PNG file ``data`` (its whole bytes), else None: a chunk of :data:`PIXEL_CHUNKS`
    before the first IDAT whose CRC does not match its type and data. None where the chunks run past the end
    (a file cut short: the decoder refuses it) and for a file that is no PNG."""
    if not data.startswith(_SIGNATURE):
        return None
    pos = len(_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind in (b"IDAT", b"IEND") or pos + 12 + length > len(data):
            return None
        if kind in PIXEL_CHUNKS:
            stored = struct.unpack_from(">I", data, pos + 8 + length)[0]
            if zlib.crc32(data[pos + 4:pos + 8 + length]) != stored:
                return f"its {kind.decode()} chunk at byte {pos} fails its CRC: the chunk is damaged"
        pos += 12 + length
    return None
