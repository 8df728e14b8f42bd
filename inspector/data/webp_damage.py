"""Whether a complete WebP file's data is damaged (bit flips, a bad copy) where libwebp decodes it all the same.

libwebp (through OpenCV and Pillow) refuses a WebP only when its data runs out before the picture is whole or a
header field is impossible; otherwise a damaged picture decodes "successfully" to wrong pixels. Measured with
libwebp 1.6 (27 lossy files: 3 pictures, 60x80 to 240x320, quality 30/80/95; 405 single-bit flips in their VP8
data): libwebp refused 210, decoded 5 to the intact pixels and 190 to wrong ones without a word; in lossless
(VP8L) data 591 of 603 flips decoded to wrong pixels. Neither bitstream carries a checksum (RFC 9649), so what is
told here is what the structure gives away:

* **the RIFF container** (RFC 9649 §2.2-2.7): its chunks, each ``size`` bytes plus one pad byte when odd, must
  tile the container exactly up to the size the RIFF header declares. A flipped chunk size makes the next chunk
  header garbage or runs past the end; libwebp reads the picture's chunk by its own size and decodes anyway.
  An extended file (VP8X) whose flags declare EXIF metadata must hold an EXIF chunk: its orientation turns the
  pixels, and a damaged chunk name (an unknown chunk libwebp skips) left the picture unturned without a word.
* **lossy (VP8) data** is arithmetic coded and never resynchronises: after a flip the decoder needs either more
  data than there is (libwebp refuses the file) or, about as often, less: it finishes the picture before the end
  of its data. An intact picture needs all of it but the encoder's flush (libwebp's 1-3 spare bytes, libvpx's
  ``vp8_stop_encode`` 32 zero bits more; :data:`VP8_SPARE` leaves room for both): a picture that
  still decodes with its last :data:`VP8_SPARE` bytes cut off was misread. Measured as above: intact files
  needed all but 1-3 bytes; 139 of the 190 silent flips are told so, 51 are not (their misreading ended within 8
  bytes of the end, which an intact file's flush may leave unused); 86% of the flips are now refused. Only the
  last token partition is judged this way (libwebp writes one unless asked for more).

Not told, and not tellable by any decoder: a flip in lossless (VP8L) data. Its prefix codes resynchronise within
a few symbols, so a damaged picture uses its data to the same byte as the intact one; only the pixels differ. A
flip in an alpha (ALPH) chunk changes alpha only, which the decoder drops. A truncated file is refused by libwebp
itself (its data ends before the picture does) and is told cut short by ``images.ends_cut_short``.

The cost: one more decode of a lossy picture (the shortened copy), by Pillow's libwebp.
"""

from __future__ import annotations

import io
import struct

VP8_SPARE = 8  # bytes cut off a lossy picture's data that no intact one decodes without (module docstring)
_VP8X_EXIF = 0x08  # VP8X flags bit E: the file holds an EXIF chunk (RFC 9649 §2.7)


def webp_damage(data: bytes) -> str | None:
    """What is damaged in the WebP file ``data`` (its whole bytes: ``RIFF`` size ``WEBP`` chunks …), else None.

    None too for a file shorter than its RIFF header declares (cut short: the decoder refuses it, and the caller
    tells an incomplete copy by its size) and for one this module cannot judge. Bytes after the RIFF container
    are ignored, as libwebp ignores them. Rules and what stays unseen: the module docstring.
    """
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    end = struct.unpack_from("<I", data, 4)[0] + 8
    if len(data) < end:
        return None
    chunks = _chunks(data, 12, end)
    if isinstance(chunks, str):
        return chunks
    kinds = [kind for kind, _, _ in chunks]
    if kinds[0] == b"VP8X" and data[20] & _VP8X_EXIF and b"EXIF" not in kinds:
        return "its VP8X header declares EXIF metadata (the orientation) but the file holds no EXIF chunk"
    frame = _lossy_frame(data, chunks)
    if frame is not None and len(frame) > VP8_SPARE + 10 and _decodes(frame[:-VP8_SPARE]):
        return (f"its lossy (VP8) picture decodes without the last {VP8_SPARE} bytes of its data: the data was "
                f"misread, a damaged bitstream")
    return None


def _chunks(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]] | str:
    """[(FourCC, payload offset, payload size)] of the RIFF chunks from ``start`` to ``end``, or what is wrong
    when they do not tile that span exactly (each chunk padded to an even size)."""
    found, pos = [], start
    while pos < end:
        if pos + 8 > end:
            return f"the RIFF container ends inside a chunk header at byte {pos}"
        kind, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if not all(32 <= c < 127 for c in kind):
            return f"a chunk at byte {pos} has no valid name ({kind!r}): a damaged chunk size or name before it"
        if pos + 8 + size > end:
            return (f"chunk {kind.decode()!r} at byte {pos} declares {size} bytes, past the end of its RIFF "
                    f"container ({end} bytes)")
        found.append((kind, pos + 8, size))
        pos += 8 + size + (size & 1)
    return found or "the RIFF container holds no chunk"


def _lossy_frame(data: bytes, chunks: list[tuple[bytes, int, int]]) -> bytes | None:
    """The payload of the first lossy picture (a ``VP8 `` chunk at the top, or in the first animation frame), or
    None when the first picture is lossless or there is none."""
    for kind, at, size in chunks:
        if kind == b"VP8 ":
            return data[at:at + size]
        if kind in (b"VP8L", b"ANMF"):
            inner = _chunks(data, at + 16, at + size) if kind == b"ANMF" and size > 16 else None
            return _lossy_frame(data, inner) if isinstance(inner, list) else None
    return None


def _decodes(frame: bytes) -> bool:
    """Whether libwebp (Pillow's) decodes the lossy picture ``frame`` (a VP8 payload) wrapped in a simple file."""
    from PIL import Image

    chunk = b"VP8 " + struct.pack("<I", len(frame)) + frame + b"\0" * (len(frame) & 1)
    try:
        with Image.open(io.BytesIO(b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk)) as im:
            im.load()
    except Exception:  # noqa: BLE001 - any refusal: it needed the bytes cut off, as an intact picture does
        return False
    return True
