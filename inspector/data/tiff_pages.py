"""Which pages of a TIFF are pictures: the IFD chain walked, each page's NewSubfileType read (no pixel decoding).

TIFF 6.0 Section 8, NewSubfileType (254): bit 0 set, "a reduced-resolution version of another image in this TIFF
file"; bit 2 set, "a transparency mask for another image". OldSubfileType (255) 2 says reduced resolution too.
A scanner, a microscope's or a camera vendor's tool may write such a preview as the first page, before the
picture it previews: the decoder read the first page, so it scored a 16x24 preview of a 64x96 picture and told
the picture itself "not inspected". The picture of a file is its first page that is neither (:func:`picture_first`),
and only such pages count when the decoder says how many pages it left (:func:`picture_pages`): a full page
and its own preview are one picture, not one inspected and one lost.
"""

from __future__ import annotations

import struct

_REDUCED, _MASK = 1, 4  # NewSubfileType bits: a reduced-resolution copy, a transparency mask
_OLD_REDUCED = 2  # OldSubfileType: reduced-resolution image data
_MAX_PAGES = 1 << 16  # an IFD chain longer than this is not walked further (a damaged chain may loop)


def _form(buf: bytes) -> tuple[str, bool] | None:
    """(byte order, BigTIFF) of a TIFF header, None for anything else."""
    if buf[:4] in (b"II*\x00", b"MM\x00*"):
        return ("<" if buf[:2] == b"II" else ">"), False
    if buf[:4] in (b"II+\x00", b"MM\x00+"):
        return ("<" if buf[:2] == b"II" else ">"), True
    return None


def _subfile(order: str, kind: int, value: bytes) -> int:
    """The first value of a SHORT or LONG entry kept in the entry itself (NewSubfileType and OldSubfileType are
    one value), 0 for another type."""
    code = {3: "H", 4: "I", 16: "Q"}.get(kind)
    return struct.unpack_from(order + code, value)[0] if code else 0


def pages(buf: bytes) -> list[tuple[int, int]]:
    """(IFD offset, kind) of each page of the TIFF ``buf``, in chain order, ``kind`` being its NewSubfileType
    bits (an OldSubfileType 2 read as bit 0); [] when ``buf`` is no TIFF. The walk stops where the chain leaves
    the file or loops."""
    form = _form(buf)
    if form is None:
        return []
    order, big = form
    offset, number, entry = ("Q", "Q", "HHQ8s") if big else ("I", "H", "HHI4s")
    step, size, out, seen = struct.calcsize(order + entry), struct.calcsize(order + number), [], set()
    at = struct.unpack_from(order + offset, buf, 8 if big else 4)[0] if len(buf) >= (16 if big else 8) else 0
    while at and at not in seen and len(out) < _MAX_PAGES and at + size <= len(buf):
        seen.add(at)
        (count,) = struct.unpack_from(order + number, buf, at)
        first = at + size
        if first + step * count + struct.calcsize(order + offset) > len(buf):
            break
        kind = 0
        for i in range(count):
            tag, typ, _, value = struct.unpack_from(order + entry, buf, first + step * i)
            if tag == 254:
                kind |= _subfile(order, typ, value)
            elif tag == 255 and _subfile(order, typ, value) == _OLD_REDUCED:
                kind |= _REDUCED
        out.append((at, kind))
        at = struct.unpack_from(order + offset, buf, first + step * count)[0]
    return out


def _picture(kind: int) -> bool:
    return not kind & (_REDUCED | _MASK)


def picture_pages(buf: bytes) -> int:
    """How many pages of the TIFF ``buf`` are pictures (not reduced-resolution copies nor transparency masks);
    at least 1 (a file of previews alone, or one whose chain cannot be read, is its first page)."""
    return max(1, sum(_picture(kind) for _, kind in pages(buf)))


def picture_first(buf: bytes) -> bytes:
    """``buf`` itself, or, when its first page is a reduced-resolution copy or a mask and a later page is a
    picture, a copy whose header points at that picture's IFD: every reader (tags, pixels, orientation) then
    takes it as the first page. The other bytes are unchanged (the preview stays in the file, unreferenced)."""
    chain = pages(buf)
    if not chain or _picture(chain[0][1]):
        return buf
    found = next((at for at, kind in chain if _picture(kind)), None)
    if found is None:
        return buf
    order, big = _form(buf)
    if big:
        return buf[:8] + struct.pack(order + "Q", found) + buf[16:]
    return buf[:4] + struct.pack(order + "I", found) + buf[8:]
