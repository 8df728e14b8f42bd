"""Uncompressed bottom-up DIB frames in an AVI file, read here instead of by OpenCV.

A Video for Windows AVI stores raw RGB frames as DIBs (BITMAPINFOHEADER, ``biCompression`` BI_RGB or
BI_BITFIELDS). A positive ``biHeight`` means the rows are stored bottom-up — the DIB default, what VfW capture
tools, old industrial frame grabbers and ``ffmpeg -c:v rawvideo -flipped_raw_rgb 1`` write. FFmpeg's AVI
demuxer marks such a stream and its raw decoder hands out the frame with a negative line size, and OpenCV 5.0's
conversion of that frame corrupts the heap: a 24-bit bottom-up AVI killed the whole daemon process on its first
read ("malloc_consolidate(): invalid chunk size", SIGABRT), with no chance to say which camera or file. A
16-bit (RGB555) one, taken as packets (:mod:`inspector.pipeline.pixel_formats`), came out upside down.

So such a stream (:func:`avi_bottom_up` tells it from the header alone) never reaches OpenCV: :class:`AviFrames`
walks the 'movi' chunks (and OpenDML 'AVIX' continuations) with plain file reads, and :func:`dib_decoder`
unpacks each frame with numpy, rows flipped, by the project's rules: 24/32-bit BGR as stored (alpha or the
unused byte dropped), 16-bit bit fields (RGB555 for BI_RGB) each channel scaled from its own full scale
(:func:`inspector.data.images.unpack_bit_fields`, the rule of the same frame as a 16-bit BMP), 8-bit through
its palette. The result is what ``ffmpeg -i x.avi frame.png`` gives (BMP for the bit fields). Top-down DIBs
(negative height) are left to OpenCV, which reads them exactly.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import Callable, NamedTuple

import cv2
import numpy as np

from inspector.data.images import ImageRejected, standardize_pixels, unpack_bit_fields

_HEADER_BYTES = 1 << 20  # the header lists ('hdrl') are read from at most the first MiB (they are a few KiB)
_RGB555 = (0x7C00, 0x03E0, 0x001F)  # the masks of a 16-bit BI_RGB DIB (Microsoft's BITMAPINFOHEADER docs)
_BI_RGB, _BI_BITFIELDS = 0, 3
_DESCEND = (b"AVIX", b"movi", b"rec ")  # lists whose chunks are frames (OpenDML continuations, grouped chunks)


class AviDib(NamedTuple):
    """The first video stream of an AVI whose frames are bottom-up uncompressed DIBs: its number (the
    chunk ids' two digits), size in pixels, bits per pixel (8, 16, 24, 32), the bit-field masks (16 bits),
    the palette (8 bits: uint8 (256, 3) BGR), frame rate (frames/s, 0 when unknown), frame count (the
    stream header's, 0 when unknown) and the file offset of the first 'movi' chunk's data."""

    stream: int
    width: int
    height: int
    bits: int
    masks: tuple[int, int, int]
    palette: np.ndarray | None
    fps: float
    frames: int
    movi: int

    @property
    def stride(self) -> int:
        """Bytes per stored row: DIB rows are padded to 4 bytes."""
        return (self.width * self.bits + 31) // 32 * 4


def _chunks(buf: bytes, start: int, end: int):
    """(id, data offset, size, list type or b'') of the chunks in ``buf[start:end]``, in order."""
    pos = start
    while pos + 8 <= min(end, len(buf)):
        cid, size = struct.unpack_from("<4sI", buf, pos)
        kind = buf[pos + 8:pos + 12] if cid in (b"RIFF", b"LIST") else b""
        yield cid, pos + 8, size, kind
        pos += 8 + size + (size & 1)


def avi_bottom_up(path: str | os.PathLike) -> AviDib | None:
    """:class:`AviDib` of a regular file that is an AVI whose first video stream is bottom-up BI_RGB (8, 16, 24
    or 32 bits) or BI_BITFIELDS (16, 32 bits); None for anything else (another container, a compressed or
    top-down stream, a header this reader cannot follow: OpenCV then opens it as any video). Never raises."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block the read
            return None
        with open(path, "rb") as f:
            buf = f.read(_HEADER_BYTES)
    except OSError:
        return None
    if len(buf) < 12 or buf[:4] != b"RIFF" or buf[8:12] != b"AVI ":
        return None
    try:
        return _parse(buf)
    except (struct.error, ValueError, IndexError):  # a damaged header: not ours to read
        return None


def _parse(buf: bytes) -> AviDib | None:
    movi, stream = None, None
    for cid, data, size, kind in _chunks(buf, 12, len(buf)):
        if cid == b"LIST" and kind == b"hdrl":
            stream = _video_stream(buf, data + 4, data + size)
        elif cid == b"LIST" and kind == b"movi":
            movi = data + 4
            break
    if stream is None or movi is None:
        return None
    return stream._replace(movi=movi)


def _video_stream(buf: bytes, start: int, end: int) -> AviDib | None:
    """The first video stream's :class:`AviDib` (``movi`` 0) when it is a bottom-up DIB, else None."""
    number = 0
    for cid, data, size, kind in _chunks(buf, start, end):
        if cid != b"LIST" or kind != b"strl":
            continue
        parts = {c: (d, s) for c, d, s, _ in _chunks(buf, data + 4, data + size)}
        if b"strh" in parts and buf[parts[b"strh"][0]:parts[b"strh"][0] + 4] == b"vids" and b"strf" in parts:
            return _dib(buf, number, parts[b"strh"], parts[b"strf"])
        number += 1
    return None


def _dib(buf: bytes, number: int, strh: tuple[int, int], strf: tuple[int, int]) -> AviDib | None:
    """The stream's DIB layout from its 'strh' (rate, scale, length) and 'strf' (BITMAPINFOHEADER, then masks
    or palette), when it is one this reader unpacks."""
    (at, _), (fat, fsize) = strh, strf
    scale, rate, _start, length = struct.unpack_from("<4I", buf, at + 20)
    head, width, height, _planes, bits, compression = struct.unpack_from("<IiiHHI", buf, fat)
    if height <= 0 or width <= 0 or head < 40 or head > fsize:  # top-down (negative) rows: OpenCV reads them
        return None
    masks, palette = (0, 0, 0), None
    if compression == _BI_RGB and bits == 16:
        masks = _RGB555
    elif compression == _BI_BITFIELDS and bits in (16, 32) and fsize >= 52:
        masks = struct.unpack_from("<3I", buf, fat + 40)
    elif compression == _BI_RGB and bits == 8:
        used = struct.unpack_from("<I", buf, fat + 32)[0] or 256
        table = np.frombuffer(buf[fat + head:fat + min(fsize, head + 4 * min(used, 256))], np.uint8)
        palette = np.zeros((256, 3), np.uint8)
        palette[:table.size // 4] = table[:table.size // 4 * 4].reshape(-1, 4)[:, :3]
    elif not (compression == _BI_RGB and bits in (24, 32)):
        return None
    fps = rate / scale if rate and scale else 0.0
    return AviDib(number, width, height, bits, masks, palette, fps, length, 0)


def dib_decoder(dib: AviDib, where: str, bit_depth: int | None,
                warn_key: str | None) -> Callable[[np.ndarray], np.ndarray]:
    """The function making one frame's bytes (uint8, any shape) model input, uint8 (H, W, 3) BGR; it raises
    :class:`ImageRejected` (``corrupt``) for fewer bytes than one frame (a chunk cut short)."""
    def decode(raw: np.ndarray) -> np.ndarray:
        flat = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
        need = dib.stride * dib.height
        if flat.size < need:
            raise ImageRejected(f"{where}: frame of {flat.size} bytes is shorter than one {dib.width}x{dib.height} "
                                f"{dib.bits}-bit DIB ({need} bytes)", "corrupt")
        rows = flat[:need].reshape(dib.height, dib.stride)[::-1]  # bottom-up: the first stored row is the last
        return standardize_pixels(_unpack(rows, dib), where, bit_depth, "BGR", warn_key)
    return decode


def _unpack(rows: np.ndarray, dib: AviDib) -> np.ndarray:
    """Top-down rows (H, stride) bytes → uint8 (H, W, 3) BGR."""
    width = dib.width
    if dib.bits == 8:
        return dib.palette[rows[:, :width]]
    if dib.bits == 24:
        return np.ascontiguousarray(rows[:, :width * 3]).reshape(-1, width, 3)
    words = np.ascontiguousarray(rows[:, :width * dib.bits // 8]).view("<u2" if dib.bits == 16 else "<u4")
    if dib.bits == 32 and dib.masks == (0, 0, 0):  # BI_RGB 32: B, G, R and an unused (or alpha) byte
        return np.ascontiguousarray(words.view(np.uint8).reshape(-1, width, 4)[:, :, :3])
    return unpack_bit_fields(words, dib.masks)


class AviFrames:
    """The frames of a bottom-up DIB stream (a cv2.VideoCapture stand-in, as :class:`inspector.pipeline.
    ffmpeg_frames.FfmpegFrames`): ``grab`` finds the stream's next '##db' / '##dc' chunk from the file's
    current end, so a recording still being written reads on; a chunk cut by the end of the file is handed
    out as it is (the decoder calls it corrupt, as FFmpeg's AVI demuxer does). ``set(CAP_PROP_POS_FRAMES, n)``
    walks the chunk headers again from the start. Raises OSError when the file cannot be opened."""

    def __init__(self, path: str | os.PathLike, dib: AviDib) -> None:
        self.dib = dib
        self._file = open(path, "rb")  # noqa: SIM115 - held until release(), as a capture holds its file
        self._ids = (b"%02ddb" % (dib.stream % 100), b"%02ddc" % (dib.stream % 100))
        self._pos, self._index, self._frame = dib.movi, 0, None

    def _read(self, at: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``at``: no more than the file holds (a damaged size field says up to 4 GiB,
        and a read allocates what it is asked for)."""
        self._file.seek(at)
        return self._file.read(max(0, min(size, os.fstat(self._file.fileno()).st_size - at)))

    def _next_chunk(self) -> tuple[int, int] | None:
        """(data offset, size) of the stream's next non-empty frame chunk, None when none is there (yet)."""
        while True:
            head = self._read(self._pos, 12)
            if len(head) < 8:
                return None
            cid, size = struct.unpack_from("<4sI", head)
            if cid in (b"RIFF", b"LIST") and head[8:12] in _DESCEND:
                self._pos += 12
                continue
            data, self._pos = self._pos + 8, self._pos + 8 + size + (size & 1)
            if cid in self._ids and size:  # an empty chunk is a dropped frame: nothing to show
                return data, size

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's names
        return not self._file.closed

    def getBackendName(self) -> str:  # noqa: N802
        return "AVI-DIB"

    def grab(self) -> bool:
        chunk = None if self._file.closed else self._next_chunk()
        self._frame = self._read(*chunk) if chunk else None
        self._index += chunk is not None
        return chunk is not None

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        if self._frame is None:
            return False, None
        return True, np.frombuffer(self._frame, np.uint8).reshape(1, -1)

    def get(self, prop: int) -> float:
        dib = self.dib
        values = {cv2.CAP_PROP_FRAME_WIDTH: dib.width, cv2.CAP_PROP_FRAME_HEIGHT: dib.height,
                  cv2.CAP_PROP_FPS: dib.fps, cv2.CAP_PROP_FRAME_COUNT: dib.frames,
                  cv2.CAP_PROP_POS_FRAMES: self._index,
                  cv2.CAP_PROP_POS_MSEC: max(0, self._index - 1) * 1000.0 / dib.fps if dib.fps > 0 else 0.0}
        return float(values.get(prop, 0.0))

    def set(self, prop: int, value: float) -> bool:
        if prop != cv2.CAP_PROP_POS_FRAMES or self._file.closed:
            return False
        self._pos, self._index, self._frame = self.dib.movi, 0, None
        while self._index < int(value) and self._next_chunk() is not None:  # headers only: no frame is read
            self._index += 1
        return True

    def release(self) -> None:
        self._file.close()
