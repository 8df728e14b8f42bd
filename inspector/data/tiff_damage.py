"""Whether a TIFF page's deflate or JPEG strips or tiles are damaged where libtiff decodes them all the same.

A deflate strip (Compression 8, Adobe Deflate, or 32946, the old PKZIP tag: TIFF Technical Note 2) is a zlib
stream, which ends with an Adler-32 checksum of its uncompressed bytes (RFC 1950 §2.2). libtiff's decoder stops
inflating once the strip's rows are filled, before that checksum, and OpenCV decodes a strip the inflater does
refuse to what it got: measured with OpenCV 5.1, 60 of 60 single-bit flips in a deflate TIFF's data decoded to
wrong pixels without a word. Each strip is inflated here to its end, checksum included.

A JPEG strip (Compression 7, TIFF Technical Note 2: an abbreviated JPEG stream whose tables are the page's
JPEGTables, tag 347) is judged as a JPEG file is (:func:`inspector.data.jpeg_damage.jpeg_damage`: libjpeg-turbo's
strict warnings), its tables put back in front of it: OpenCV's libtiff decodes a damaged one with only a warning.

Not told, and not tellable: damage in uncompressed, PackBits or LZW strips (none carries a checksum: the flipped
samples are read as they stand), nor a JPEG flip libjpeg cannot see (jpeg_damage's docstring).

The cost: one more inflate of a deflate page's data (a fraction of its decode), a 1/8-scale decode of a JPEG one.
"""

from __future__ import annotations

import struct
import zlib

from inspector.data.jpeg_damage import jpeg_damage
from inspector.data.tiff_retag import RetagError, first_ifd

_DEFLATE = (8, 32946)  # Compression: Adobe Deflate, Deflate (TIFF Technical Note 2)
_JPEG = 7  # Compression: JPEG (TIFF Technical Note 2; 6, the old-style JPEG, is not judged)
_DATA_TAGS = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), (TileOffsets, TileByteCounts)


def tiff_damage(buf: bytes) -> str | None:
    """What is damaged in the first page of the TIFF ``buf``, else None: a deflate strip or tile whose zlib stream
    is invalid or fails its Adler-32 check, or a JPEG one libjpeg-turbo finds damaged. None for another compression, a BigTIFF or an IFD that cannot be read
    (the decoder judges those), and for a strip past the end of ``buf`` (cut short: the decoder refuses it)."""
    try:
        _, tags = first_ifd(buf)
    except RetagError:
        return None
    compression = tags[259][2][0] if tags.get(259) and tags[259][2] else 1
    if compression not in (*_DEFLATE, _JPEG):
        return None
    tables = _jpeg_tables(buf) if compression == _JPEG else b""
    for offsets_tag, counts_tag in _DATA_TAGS:
        if offsets_tag not in tags or counts_tag not in tags:
            continue
        what = "strip" if offsets_tag == 273 else "tile"
        for n, (at, size) in enumerate(zip(tags[offsets_tag][2], tags[counts_tag][2])):
            if at + size > len(buf):
                return None
            if compression == _JPEG:
                strip = buf[at:at + size]
                problem = jpeg_damage(tables[:-2] + strip[2:] if tables and strip[:2] == b"\xff\xd8" else strip)
                if problem is not None:
                    return f"{what} {n} of its JPEG data is damaged ({problem})"
                continue
            problem = _inflate_problem(buf[at:at + size])
            if problem is not None:
                return f"{what} {n} of its deflate data fails its zlib check ({problem})"
    return None


def _jpeg_tables(buf: bytes) -> bytes:
    """The first IFD's JPEGTables (tag 347: an abbreviated JPEG stream, SOI, tables, EOI), b"" without one."""
    order = "<" if buf[:2] == b"II" else ">"
    at = struct.unpack_from(order + "I", buf, 4)[0]
    (count,) = struct.unpack_from(order + "H", buf, at)
    for k in range(count):
        tag, _, size, value = struct.unpack_from(order + "HHI4s", buf, at + 2 + 12 * k)
        if tag == 347 and size > 4:
            where = struct.unpack(order + "I", value)[0]
            tables = buf[where:where + size]
            return tables if tables[:2] == b"\xff\xd8" and tables[-2:] == b"\xff\xd9" else b""
    return b""


def _inflate_problem(stream: bytes) -> str | None:
    """What zlib finds wrong with ``stream`` inflated to its end (its Adler-32 checked), else None; inflated 1 MiB
    at a time and thrown away, so a large strip costs no more memory than that."""
    inflater, pending = zlib.decompressobj(), stream
    try:
        while pending and not inflater.eof:
            inflater.decompress(pending, 1 << 20)
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        return str(exc)
    return None if inflater.eof else "the stream ends before its end mark and checksum"
