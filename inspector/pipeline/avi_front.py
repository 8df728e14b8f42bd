"""How many frames of an AVI still being written are whole on disk (:class:`AviFront`).

A writer's buffered flush cuts a frame's chunk at the end of the file (FFmpeg's AVI muxer behind OpenCV's
``VideoWriter`` writes in 256 KiB blocks), and FFmpeg's AVI demuxer hands over a chunk cut by the end of the file
as it is. Such a recording has no index yet (``idx1`` is written when it is closed), and FFmpeg cannot seek an
AVI without one: a seek back to the cut frame read it cut again (7222 of its 15142 bytes), the next frame was
then there, and the cut one was counted corrupt and lost (3 of 150 MJPG frames written 30 at a time while read).
So a frame is never grabbed before its chunk is whole: :class:`AviFront` walks the chunks as the file grows,
from where it stopped, and counts those of the video stream OpenCV reads that end within the file.

The layout walked (Microsoft, "AVI RIFF File Reference", learn.microsoft.com/windows/win32/directshow/
avi-riff-file-reference; OpenDML AVI File Format Extensions 1.02, §"AVI 2.0 file structure"):
``RIFF('AVI ' LIST('hdrl' … LIST('strl' strh strf …) …) LIST('movi' chunks) ['idx1'])`` followed, past 1 GiB,
by ``RIFF('AVIX' LIST('movi' chunks))`` parts. A chunk is a FOURCC, a little-endian 32-bit size of its data (not
counting the 8-byte header or the padding) and the data, padded to an even length. In 'movi' a frame is a chunk
``##dc`` (compressed) or ``##db`` (uncompressed), ``##`` the stream's number in two decimal digits, its 'strl'
order in 'hdrl'; chunks may be grouped in ``LIST('rec ' …)``; ``JUNK``, ``##pc`` (palette), ``##wb`` (audio)
and ``ix##`` (OpenDML index) chunks are no frames. A writer leaves the sizes of the RIFF and 'movi' lists it has
not closed unset (FFmpeg: 0xFFFFFFFF; OpenCV's own MJPEG writer: 0), so lists holding frames are stepped into,
never over by their size; other lists are stepped over. An empty frame chunk (a dropped frame) is not counted:
FFmpeg's demuxer hands over no packet for it (as :mod:`inspector.pipeline.avi_raw` reads such files).

The video stream counted is the first whose 'strh' says ``vids``: the one OpenCV's FFmpeg backend reads.
Standard library only.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_HEADER_BYTES = 1 << 20  # 'hdrl' and the 'movi' list's header are looked for in the first MiB (a few KiB)
_STEP_INTO = (b"AVIX", b"movi", b"rec ")  # lists whose chunks are frames (OpenDML parts, 'movi', grouped chunks)
_FRAME_KINDS = (b"dc", b"db")  # a compressed, an uncompressed video frame (the AVI RIFF reference's chunk ids)


def is_avi(path: str | Path) -> bool:
    """Whether the file ``path`` begins as an AVI (``RIFF`` … ``AVI ``); False when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"AVI "


class AviFront:
    """The frames of the first video stream of the AVI ``path`` that are whole on disk, counted incrementally:
    each :meth:`scan` reads only the chunk headers written since the last one (8 bytes a chunk; chunks whose
    bytes are not all there yet are read again next time). Never raises: a file that cannot be read, or whose
    header is not there yet, counts what it counted before."""

    def __init__(self, path: str | Path) -> None:
        self._path = path
        self._ids: tuple[bytes, ...] | None = None  # the counted stream's frame chunk ids, once its header is read
        self._pos = 0  # the offset of the next chunk header to read in 'movi' (0: the header is not read yet)
        self.whole = 0  # frames of the stream whose chunks are whole on disk, as of the last scan

    def scan(self) -> int:
        """The number of whole frames of the stream (:attr:`whole`), after reading what was written since."""
        try:
            with open(self._path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if self._ids is None and not self._read_header(fh.read(min(size, _HEADER_BYTES))):
                    return self.whole
                self._walk(fh, size)
        except OSError:
            pass
        return self.whole

    def _read_header(self, head: bytes) -> bool:
        """Find the video stream's number in 'hdrl' and the first chunk of 'movi' in ``head`` (the file's first
        bytes); False while they are not there yet, or for a file without a video stream."""
        if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
            return False
        number = None
        for cid, data, size, kind in _chunks(head, 12):
            if kind == b"hdrl" and data + size <= len(head):
                number = _video_stream(head, data + 4, data + size)
            elif kind == b"movi":
                if number is None:
                    return False
                self._ids = tuple(b"%02d" % number + k for k in _FRAME_KINDS)
                self._pos = data + 4
                return True
        return False

    def _walk(self, fh, size: int) -> None:
        """Count the frame chunks from :attr:`_pos` that end within ``size`` bytes; stop at the first not whole."""
        while self._pos + 8 <= size:
            fh.seek(self._pos)
            head = fh.read(12)
            if len(head) < 8:
                return
            cid, length = struct.unpack_from("<4sI", head)
            if cid in (b"RIFF", b"LIST"):
                if len(head) < 12:
                    return  # the list's type is not there yet: step into it or over it, it does not say
                if head[8:12] in _STEP_INTO:
                    self._pos += 12
                    continue
            end = self._pos + 8 + length
            if end > size:
                return  # cut by the end of what is written: read again once more is there
            if cid in self._ids and length:
                self.whole += 1
            self._pos = end + (length & 1)


def _chunks(buf: bytes, start: int):
    """(id, data offset, size, list type or b'') of the chunks in ``buf`` from ``start``, in order, while their
    headers are in it."""
    pos = start
    while pos + 12 <= len(buf):
        cid, size = struct.unpack_from("<4sI", buf, pos)
        yield cid, pos + 8, size, buf[pos + 8:pos + 12] if cid in (b"RIFF", b"LIST") else b""
        pos += 8 + size + (size & 1)


def _video_stream(buf: bytes, start: int, end: int) -> int | None:
    """The number of the first stream in the 'hdrl' list ``buf[start:end]`` whose 'strh' says ``vids``."""
    number = 0
    for cid, data, size, kind in _chunks(buf[:end], start):
        if kind != b"strl":
            continue
        for sub, sub_data, _, _ in _chunks(buf[:data + size], data + 4):
            if sub == b"strh":
                if buf[sub_data:sub_data + 4] == b"vids":
                    return number
                break
        number += 1
    return None
