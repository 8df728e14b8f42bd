"""Whether a complete JPEG's compressed data is damaged (bit flips, a lost block of bytes, a bad copy).

OpenCV and Pillow decode such a file "successfully": libjpeg resynchronises or fills the rest of the image and
only prints a warning ("Corrupt JPEG data: bad Huffman code", "… premature end of data segment", "… 86
extraneous bytes before marker 0xd9"), which neither passes on. The pixels are then garbage (tens of grey levels
off, smeared blocks) and would be scored as a part. libjpeg-turbo through simplejpeg with ``strict=True`` raises
those warnings instead; decoding at the smallest DCT scale (1/8) still reads every entropy-coded bit, at about
half the cost of the full decode. A damage that libjpeg cannot see (a flip that stays a valid Huffman code) stays
unseen: no JPEG carries a checksum.

Two kinds of damage OpenCV decodes with only a warning on stderr are not warnings to libjpeg-turbo's strict mode
but errors, told here too: a flipped bit in the byte after a 0xFF in the scan (the 0x00 that stuffs a data byte
0xFF) makes a marker where the file has none; OpenCV's libjpeg fills the image from there ("premature end of data
segment") and then fails on that marker after the last row, while simplejpeg names the marker ("Unsupported marker
type 0x40", "Invalid JPEG file structure: two SOI markers", "Bogus marker length", …). A file whose header reads
cleanly has all its markers before its first scan, so such an error is damage in the scans. 7 of 8 flips of such a
byte were scored as parts (benchmarks/README.md, Session 46). And a JPEG with bytes after its end marker (a
camera's padding to a block, a second picture appended) is judged like any other, up to its end marker.
"""

from __future__ import annotations

import re

# libjpeg's warnings that mean the decoded samples do not come from the coded data (jerror.h JWRN_*): the
# entropy-coded data is bad, or it ended early, or a progressive file's scans do not add up
_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file", "Inconsistent progression sequence")
_NOT_DAMAGE = ("Corrupt JPEG data: bad ICC marker",)  # metadata only: the pixels are whole
_EXTRANEOUS = re.compile(r"Corrupt JPEG data: (\d+) extraneous bytes before marker 0xd9")
_EOI = b"\xff\xd9"
# libjpeg's errors (jerror.h JERR_*) from reading a marker (jdmarker.c): in a file whose header reads cleanly they
# come from a marker in the scans that the file never had, made by damage
_MARKER_ERRORS = ("Unsupported marker type", "Invalid JPEG file structure", "Unsupported JPEG process: SOF type",
                  "Bogus marker length", "Bogus DQT index", "Bogus DHT index", "Bogus Huffman table definition",
                  "Bogus DAC", "Huffman table 0x", "Quantization table 0x", "Arithmetic table 0x",
                  "Invalid component ID", "Invalid progressive parameters", "Didn't expect more than one scan")
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM and RST0-7: markers without a length (T.81 B.1.1.3)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (T.81 Table B.1): not DHT, JPG, DAC
_LOSSLESS = frozenset((0xC3, 0xC7, 0xCB, 0xCF))  # lossless frames: Huffman / arithmetic, sequential / differential


def jpeg_damage(data: bytes) -> str | None:
    """libjpeg's warning (or marker error) when the JPEG file ``data`` (its whole bytes, SOI to EOI and any
    bytes after it) has damaged compressed data, else None.

    None too when libjpeg-turbo cannot judge the file (12- or 16-bit samples, which its 8-bit decoder refuses; a
    colour conversion it lacks: the caller's decoder reads it as before) and when the only warning is padding
    before the end marker: bytes of one fill value, 0x00 or 0xFF, or up to 4 stray bytes, between the last scan
    and EOI, which some cameras write and which leave every pixel whole. A lossless JPEG (SOF3, 7, 11, 15) is
    judged at full size: it has no DCT to scale, and simplejpeg 1.9 asked for 1/8 of it wrote the whole image
    into a buffer sized for the eighth (the heap overflowed and the process, a daemon with it, died of a
    segmentation fault a few files later). Source: libjpeg-turbo jerror.h (the JWRN_* warnings); simplejpeg
    ``decode_jpeg(strict=True)``.
    """
    import simplejpeg

    frame = jpeg_frame(data)
    if frame is not None and frame[1] != 8:
        return None
    smallest = {} if frame is None or frame[0] in _LOSSLESS else {"min_height": 1, "min_width": 1}
    try:
        simplejpeg.decode_jpeg(data, strict=True, **smallest)
    except ValueError as exc:
        message = str(exc).strip()
        if message.startswith(_NOT_DAMAGE) or _padding_only(data, message):
            return None
        if message.startswith(_DAMAGE) or (message.startswith(_MARKER_ERRORS) and _header_reads(simplejpeg, data)):
            return message
    return None


def _header_reads(simplejpeg, data: bytes) -> bool:
    """Whether libjpeg reads the file's header (every marker up to its first scan) without an error."""
    try:
        simplejpeg.decode_jpeg_header(data, strict=False)
    except ValueError:
        return False
    return True


def _header_segments(data: bytes):
    """(marker, offset of its segment's first byte after the marker, offset just past the segment) of each marker
    segment of the JPEG ``data`` (starting with SOI) up to and with its first SOS, walked by their lengths (T.81
    B.1.1.4: an EXIF thumbnail inside APP1 is skipped whole); the walk stops early where a byte between segments
    is no marker."""
    pos, size = 2, len(data)
    while pos + 4 <= size and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill bytes before a marker (T.81 B.1.1.2)
            pos += 1
            continue
        start = pos + 2
        pos = start if marker in _STANDALONE else start + int.from_bytes(data[start:start + 2], "big")
        yield marker, start, pos
        if marker == 0xDA:
            return


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(SOF marker: 0xC0 baseline … 0xC3 lossless …, sample precision P in bits) of the JPEG ``data``'s frame
    header (T.81 B.2.2: length, P, …), None when its header holds none that can be read."""
    for marker, start, end in _header_segments(data):
        if marker in _SOF:
            return (marker, data[start + 2]) if start + 2 < min(end, len(data)) else None
    return None


def jpeg_complete(data: bytes) -> bool:
    """Whether the JPEG ``data`` holds its EOI marker after its scans (:func:`jpeg_end`), bytes after it or not.
    Cheap on the hot path: a file ending in EOI says so by its last two bytes, and a padded one is searched from
    its end (a forward search through 350 kB of scan, 0xFF-stuffed, took 1.2 ms)."""
    if data[-2:] == _EOI:
        return True
    scan = next((end for marker, _, end in _header_segments(data) if marker == 0xDA), None)
    return scan is not None and data.rfind(_EOI, scan) >= 0


def jpeg_end(data: bytes) -> int | None:
    """Where the EOI marker of the JPEG ``data`` (starting with SOI) lies: the first FF D9 after its first scan's
    header (:func:`_header_segments`, so an EXIF thumbnail's own end marker is skipped). None when there is none
    (a file cut short, or no scan). Bytes after it (padding, an appended picture) are no part of the image:
    libjpeg stops reading at it. A header the walk loses its way in (bytes between segments, which libjpeg skips
    with a warning) ends where the file ends in EOI, if it does."""
    for marker, _, end in _header_segments(data):
        if marker == 0xDA:
            at = data.find(_EOI, end)
            return at if at >= 0 else None
    return len(data) - 2 if data[-2:] == _EOI else None


def _padding_only(data: bytes, message: str) -> bool:
    """Whether the extraneous bytes before the end marker that ``message`` counts are padding: one fill value,
    or at most :data:`_QUIRK_BYTES` of anything."""
    extraneous = _EXTRANEOUS.fullmatch(message)
    end = jpeg_end(data) if extraneous is not None else None
    if extraneous is None or end is None:
        return False
    count = int(extraneous[1])
    fill = data[end - count:end]
    return count <= _QUIRK_BYTES or (len(fill) == count and fill in (b"\x00" * count, b"\xff" * count))


# A decoder that lost step in the scan fills the image and leaves the rest of the scan unread: tens to hundreds of
# bytes (58-269 in 48 single-byte flips, benchmarks/README.md Session 40). Some camera firmware ends a whole scan
# with a stray byte or two ("1 extraneous bytes before marker 0xd9" on frames that are fine): not refused.
_QUIRK_BYTES = 4
