"""Whether a video file is, by its own bytes, a recording its muxer has not finished (:func:`being_recorded`).

A recorder (or a copy) that pauses longer than ``file_settle.SETTLE_S`` made a recording still being written look
finished: a one-pass camera ended at the end of what was there, the rest never inspected, and nothing said so (an
MPEG-TS copied in 3 kB parts, paused 2.6 s once: 49 of 100 frames read, the last ones made up by the decoder and
called damage). A file that says it is unfinished is waited for ``file_settle.STALLED_S`` instead:

- an ISO base media file (MP4, MOV) without its index and with an open-ended last box
  (:func:`_bmff_unfinished`), or a fragmented one without the ``mfra`` box it ends with once finished
  (:func:`_fragments_unfinished`);
- an MPEG-TS ending in a cut 188-byte packet (:func:`_ts_cut`): a finished TS is whole packets, and a
  recorder's or a copy's writes are buffered in power-of-two blocks, so its file ends mid-packet at 46 of every 47
  block ends (188 = 4 × 47; FFmpeg 5.1 recording a TS: 262144 bytes there after 12 s, the last packet cut 72 bytes
  in). A pause at the 47th looks finished, as every pause did before;
- a Matroska / WebM file whose Segment size is still "unknown" (:func:`_segment_size_unknown`), as FFmpeg's muxer
  writes it until it seeks back at the end (measured, FFmpeg 5.1: ``01ffffffffffffff`` while recording);
- an AVI whose RIFF size is still 0xFFFFFFFF (:func:`_riff_size_unset`), as FFmpeg's and OpenCV's AVI writers
  leave it until they are closed (measured, FFmpeg 5.1 and OpenCV's ``VideoWriter``, MJPG).

A finished file cut short (a copy cut off) is told apart for MP4 and AVI (its boxes run past its end; its RIFF size
is set); a TS or a Matroska file cut short and changed within STALLED_S is waited for that long before its end is
read as its end. Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

TS_PACKET = 188  # bytes (ISO/IEC 13818-1 §2.4.3.2)
_TS_SYNC = 0x47
# the top-level boxes an ISO base media file (MP4, MOV, 3GP) may begin with (ISO/IEC 14496-12 §4.3: ftyp first;
# QuickTime files written before it begin with the others)
_BMFF_FIRST = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_BMFF_MAX_BOXES = 4096  # top-level boxes walked at most (a fragmented recording has two per fragment)
_MOOV_READ_MAX = 1 << 20  # bytes of a moov box searched for mvex (a fragmented file's moov is small: no samples)
_EBML_ID = b"\x1a\x45\xdf\xa3"  # the EBML header's element ID (RFC 8794 §11.2.1)
_SEGMENT_ID = b"\x18\x53\x80\x67"  # Matroska's Segment (RFC 9559 §5.1.4)
_RIFF_UNSET = b"RIFF\xff\xff\xff\xffAVI "  # an AVI's RIFF header before its size is known


def being_recorded(path: str | Path) -> bool:
    """Whether the video file ``path`` is a recording its muxer has not finished, by its bytes (module docstring).
    False for any other file, or one that cannot be read."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return _bmff_unfinished(fh, size) or _ts_cut(fh, size) or _segment_size_unknown(fh) or \
                _riff_size_unset(fh)
    except OSError:
        return False


def is_ts(path: str | Path) -> bool:
    """Whether the file ``path`` is an MPEG-TS of 188-byte packets (its first three sync bytes); False when it
    cannot be read."""
    try:
        with open(path, "rb") as fh:
            return _starts_as_ts(fh)
    except OSError:
        return False


def _starts_as_ts(fh: BinaryIO) -> bool:
    fh.seek(0)
    head = fh.read(2 * TS_PACKET + 1)
    return len(head) > 2 * TS_PACKET and head[0] == head[TS_PACKET] == head[2 * TS_PACKET] == _TS_SYNC


def _ts_cut(fh: BinaryIO, size: int) -> bool:
    return size % TS_PACKET != 0 and _starts_as_ts(fh)


def _bmff_unfinished(fh: BinaryIO, size: int) -> bool:
    """Whether the open file ``fh`` of ``size`` bytes is an ISO base media file (MP4, MOV …) as a muxer leaves it
    while recording: no ``moov`` box (the index every MP4 needs, written last) and a last box of size 0 (ISO/IEC
    14496-12 §4.2: it runs to the end of the file; FFmpeg's, GStreamer's and OpenCV's writers put ``mdat`` so
    until they know its size), or a fragmented file not yet ended (:func:`_fragments_unfinished`). A finished
    file cut short (its boxes' sizes run past its end) is not this."""
    pos = 0
    for _ in range(_BMFF_MAX_BOXES):
        fh.seek(pos)
        head = fh.read(16)
        if len(head) < 8 or (pos == 0 and head[4:8] not in _BMFF_FIRST):
            return False
        n = int.from_bytes(head[:4], "big")
        if n == 0 and head[4:8] != b"moov":
            return True  # the last box, to the end of the file, and no index before it
        if n <= 1:  # a 64-bit size; a moov to the end of the file
            n = (int.from_bytes(head[8:16], "big") if len(head) == 16 else 0) if n == 1 else size - pos
        if head[4:8] == b"moov":  # the index: a fragmented file's (empty, with mvex) is written first
            return _fragments_unfinished(fh, pos, n, size)
        if n < 8:
            return False  # malformed: corrupt, not being written
        pos += n
        if pos >= size:  # a box runs to or past the end: finished (or cut short); a 64-bit size past any seek
            return False
    return False


def _fragments_unfinished(fh: BinaryIO, moov_at: int, moov_size: int, size: int) -> bool:
    """Whether an ISO BMFF file whose ``moov`` box (at ``moov_at``, ``moov_size`` bytes) declares movie fragments
    (an ``mvex`` box, ISO/IEC 14496-12 §8.8.1) lacks the ``mfra`` box a fragmented file ends with once finished, whose
    last 16 bytes are its ``mfro`` box (§8.8.11). A fragmented MP4 (FFmpeg's ``-movflags frag_keyframe``, crash-safe
    recorders) is a sequence of moof/mdat pairs while recorded (measured, FFmpeg 5.1: no mfra while recording, or
    when killed; an mfra at the end once finished). A file whose moov declares no fragments is finished."""
    fh.seek(moov_at)
    if b"mvex" not in fh.read(min(moov_size, _MOOV_READ_MAX)) or size < 16:
        return False
    fh.seek(size - 16)
    tail = fh.read(16)
    return not (tail[:4] == b"\x00\x00\x00\x10" and tail[4:8] == b"mfro")


def _vint(data: bytes, at: int) -> tuple[int, int, bool] | None:
    """(value, bytes it takes, whether it is the reserved "unknown" value: all data bits 1) of the EBML variable-size
    integer at ``data[at]`` (RFC 8794 §4); None when it is not all there or not valid."""
    if at >= len(data) or data[at] == 0:
        return None
    width = 9 - data[at].bit_length()  # the leading zeros, plus the marker bit
    if at + width > len(data):
        return None
    value = int.from_bytes(data[at:at + width], "big") & ((1 << (7 * width)) - 1)
    return value, width, value == (1 << (7 * width)) - 1


def _segment_size_unknown(fh: BinaryIO) -> bool:
    fh.seek(0)
    head = fh.read(4096)
    if not head.startswith(_EBML_ID) or (header := _vint(head, len(_EBML_ID))) is None:
        return False
    at = len(_EBML_ID) + header[1] + header[0]  # past the EBML header: the Segment comes next
    if head[at:at + len(_SEGMENT_ID)] != _SEGMENT_ID:
        return False
    segment = _vint(head, at + len(_SEGMENT_ID))
    return segment is not None and segment[2]


def _riff_size_unset(fh: BinaryIO) -> bool:
    fh.seek(0)
    return fh.read(len(_RIFF_UNSET)) == _RIFF_UNSET
