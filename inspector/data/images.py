"""Image and mask decoding plus the resize policies, shared by training, evaluation and the daemon.

numpy + OpenCV (+ Pillow for TIFF tags; no torch). Images are uint8 (H, W, 3)
RGB everywhere in the project; masks are bool (H, W).

**One decoder.** :func:`decode_image` is the only place that turns encoded
bytes into model input pixels; :func:`standardize_pixels` is its second half,
also applied by the daemon to frames that arrive already decoded (video,
camera). Every path — dataset loading for train/evaluate/calibrate/predict and
the daemon's folder, video and camera sources — goes through them, so the same
file gives the same pixels everywhere. The rules:

* **orientation**: EXIF Orientation is applied (JPEG, TIFF, WebP, PNG eXIf), read by one reader for the pixels,
  :func:`frame_size` and a mask's alpha (:func:`_exif_orientation`: its value whatever the tag's type; a tag
  without a value in 2..8 is none);
* **colour**: grey is replicated to 3 channels (1/2/4-bit grey widened to full range), palette expanded (a TIFF's at 1, 2,
  4, 8 and 16 bits),
  CMYK (at every depth and layout, by libtiff's rule) and YCCK converted, a CIELab TIFF refused in one line,
  MinIsWhite inverted at every depth and sample type (OpenCV inverts only 8-bit pages); a TIFF's samples in separate planes and float16 samples are read (:mod:`inspector.data.tiff_retag`);
  multi-page files use their first page (a TIFF its first picture: not a reduced-resolution preview or a
  mask written before it, :mod:`inspector.data.tiff_pages`), animated PNG (APNG) and WebP files their first
  frame (one warning per folder or source says how many pages or frames were left); interlaced (Adam7) PNG
  and progressive JPEG decode as their plain copies;
* **alpha is dropped, never composited**: the stored colour values are the pixels whatever the alpha
  (PNG RGBA / grey+alpha at 8 and 16 bits, palette tRNS, BMP and TIFF alpha: an 8-bit TIFF's unassociated
  alpha too, which OpenCV's reader premultiplied). A camera's sensor values live in the colour channels;
  compositing would make one scene depend on the background colour chosen, and masks alone read alpha;
* **no colour management**: gAMA, cHRM, sRGB and iCCP chunks and embedded ICC profiles are ignored, on
  every path, so a file gives the values it stores (a Lab profile or a gamma of 1.0 changes nothing);
* **bit fields**: a 16-bit BMP (RGB555 / RGB565) or a 16/32-bit one with BI_BITFIELDS masks is unpacked by
  its masks, each channel scaled from its full scale (``2**bits - 1``) to 255 like any integer data; an OS/2
  1.x bitmap keeps its colours (OpenCV, left to choose, read every one as grey);
* **bit depth**: integer data is scaled from its full-scale value to 255 (rounded,
  values above clipped). The full scale is what the file declares (``2**sBIT - 1``
  of a PNG, its colour channels' (alpha's bits say nothing), ``2**BitsPerSample - 1`` of a TIFF narrower than 16
  or its MaxSampleValue when that is ``2**n - 1``, the ``maxval`` of a
  PGM/PPM or the ``MAXVAL`` of a PAM, 8-bit ones included), else ``2**bit_depth - 1`` of the ``bit_depth`` setting (dataset /
  camera, recorded in the model sidecar), else the container's (255 or 65535). A
  file whose samples exceed its declared full scale stores them MSB-aligned (as the
  PNG specification writes sBIT data: shifted up to fill the container) and is
  scaled by its container; so is a PNG whose sBIT samples all have the low bits a shift up leaves 0 (a dark
  picture stored so never exceeds the declared full scale: :func:`_sbit_shifted_up`). When
  a 16-bit image leaves 2 or more high bits unused and nothing says its depth,
  one warning per source suggests the narrower ``bit_depth``. **Signed** integers (int8/int16, a TIFF's
  SampleFormat 2) read 0 as black and their largest value (127 / 32767, or as declared narrower than their
  BitsPerSample / ``bit_depth``) as
  white, negative samples as black with one warning per source (:func:`_signed_as_unsigned`). 32-bit integers
  (uint32/int32 TIFFs) are read only by the ``bit_depth`` setting, else refused in one line. Float data is
  taken as 0..the white its TIFF declares (SMaxSampleValue, else MaxSampleValue, of ``2**n - 1``: 1.0,
  4095.0 …), else as 0..1 when its maximum is ≤ 1, else as 0..``2**bit_depth - 1`` where the setting gives one, else as
  0..255 (samples above clipped, one warning per source; so is a maximum just above 1); NaN/inf is rejected.
  One function owns this white (:func:`white_level`); a **MinIsWhite** TIFF page is inverted against the very
  white its stored samples are then read by (``white - x``: 4095 for 12-bit data, float or integer), chosen on
  the samples as stored, before the inversion changes their maximum;
* **size**: an image smaller than :data:`MIN_SIDE` pixels on a side is rejected
  (:class:`ImageRejected`, reason ``too_small``); one that does not fit in the memory left to decode it is
  rejected in one line (reason ``memory``), never OpenCV's or numpy's allocation error, and one whose header
  declares more pixels than the decoder reads (a decompression bomb) by its size (reason ``too_large``);
* **damage**: a file whose data fails a check its format has is refused (reason ``corrupt``), never decoded to
  wrong pixels: a JPEG's libjpeg warnings (:mod:`inspector.data.jpeg_damage`), a WebP's RIFF chunks and lossy
  data (:mod:`inspector.data.webp_damage`), a PNG's CRCs (libpng's, and here those of the sBIT and eXIf chunks it
  drops: :mod:`inspector.data.png_damage`), a TIFF's deflate checksums and JPEG strips
  (:mod:`inspector.data.tiff_damage`). A flip where the format has no check (BMP, PNM, uncompressed, LZW or
  PackBits TIFF, lossless WebP, much of a JPEG's entropy-coded data) cannot be told by any decoder;
* **own outputs**: an overlay PNG ``inspector predict`` wrote (known by its tag) is refused (reason ``overlay``),
  never scored as a part, wherever it lies;
* **files**: a folder listing (:func:`list_images`) takes files by their image extension (any case) and
  never hidden ones (name starting with "."); a file named on its own is an image by its name where it says,
  else by its content (:func:`is_still_image`), for predict and a camera on that one file alike.

**Masks** (:func:`read_mask`) use the same decoder without scaling; a pixel is
defect when its largest channel is at least half of the mask's largest value
(so 0/1, 0/255, 0/65535 masks and lossy JPEG copies of them all read right), and every non-zero pixel of a
label map of class indices (largest value at most ``MASK_MAX_LEVELS``: 1, 2, 3 …), whose lower classes the
half rule read as normal pixels, counted against the model in the pixel metrics;
an all-zero mask is empty. A mask whose alpha channel varies (a transparent overlay
exported by an annotation tool) is read from its alpha by the same rule, turned by the
file's EXIF orientation as its colour is. Whether a file named like a mask is one is told by its content
(:func:`looks_like_mask`: few levels or colours, or a varying alpha), never by its name alone.

Resize policies (recorded in the sidecar, applied identically everywhere):

``square``
    plain resize of the whole frame to (height, width); the aspect ratio may change.
``shorter_side_crop``
    scale so the frame covers (height, width) — the shorter side meets the
    target — then take the centre crop. It is implemented as the equivalent
    centre crop *in source pixels* followed by one resize, so no full-size
    intermediate is allocated.
``letterbox``
    scale the whole frame by one factor so it fits inside (height, width), centre
    it, and fill the margins by mirroring the frame (``BORDER_REFLECT_101``): the
    aspect ratio and so the texture's proportions are kept whatever the frame's
    shape, and the margins hold the product's own texture rather than a constant
    edge the student would have to learn (a mirrored defect stays a defect). The
    map of the margins is dropped when it is mapped back onto the frame.

:func:`crop_box` (the source region used) and :func:`placement` (where it lands in
the model input) are the single place that decides the geometry; images, masks and
:func:`map_to_frame` (model map → original frame) all go through them.

Downscale methods (sidecar ``input.downscale``; a sidecar without the key is
``area``, what every model exported before the key existed was trained with):

``halving`` (default for new models)
    Repeated exact halvings (a 2-tap box mean along each halved axis), then
    bilinear for the remaining factor (< 2 on both axes). While both axes are at
    least twice the target, both are halved at once with OpenCV's ``INTER_AREA``
    2×2 fast path (SIMD, ~0.7 ms for a 1080p frame on one core); an axis that is
    still ≥ 2× its target after that is halved alone (``INTER_LINEAR`` at an exact
    factor of 2 is the 2-tap mean, bit-equal to ``INTER_AREA``, whose one-axis path
    is ~10× slower). An odd row or column is dropped before a halving (the last
    one: at most one source pixel per step). ~1.1 ms per 1080p frame on one core
    against ~3-4 ms for ``box_linear`` on the same host: OpenCV vectorises only
    the factor-2 area path, not the general integer one.
``box_linear``
    OpenCV's area resize on the largest *integer* factor per axis (an exact box
    filter), then bilinear for the remaining factor (< 2). For the integer step
    the source is trimmed to a multiple of the factor, centred (at most factor − 1
    edge pixels, under one map cell). Anti-aliased like ``area`` (mean |Δ| ≈ 3/255
    on noise). What models trained before ``halving`` recorded.
``area``
    OpenCV ``INTER_AREA`` straight to the target: exact, but its non-integer
    path costs ~9-13 ms per 1080p frame (issue 17).

Enlarging always uses ``INTER_LINEAR``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import stat
import struct
import tempfile
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from inspector.contract import (BIT_DEPTHS, DEFAULT_DOWNSCALE, DOWNSCALE_METHODS, LEGACY_DOWNSCALE,  # noqa: F401
                                RESIZE_POLICIES)  # one home: the contract
from inspector.errors import DataError
from inspector.data.tiff_retag import (PALETTE, RetagError, cmyk_to_bgr, decode_palette, decode_retagged,
                                       decode_widened, needs_retag, needs_widening)
from inspector.data.jpeg_damage import jpeg_complete, jpeg_damage, jpeg_frame
from inspector.data.png_damage import png_damage
from inspector.data.tiff_damage import tiff_damage
from inspector.data.tiff_pages import picture_first, picture_pages
from inspector.data.webp_damage import webp_damage

log = logging.getLogger("inspector.images")

# .jpe and .jfif are JPEG's other names (Windows browsers save photos as .jfif): left out, a folder of them was
# skipped silently by training and the folder camera while a camera on one such file inspected it
# .pam is netpbm's general format (PAM, magic P7), which OpenCV reads like its P1..P6 siblings: predict read a .pam by
# its content while folder listings skipped it unsaid
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".pgm",
                    ".ppm", ".pbm", ".pnm", ".pam")
# image formats met in datasets that are not images by the rule (is_image_file): their files are counted in a warning,
# not dropped unseen. Some OpenCV builds decode GIF (5.x does), but which files are images must not depend on the build
UNREAD_IMAGE_EXTENSIONS = (".gif", ".jp2", ".j2k", ".jpx", ".exr", ".hdr", ".heic", ".heif", ".avif", ".jxl", ".tga",
                           ".psd", ".dng", ".raw", ".ico")
# videos by name, whatever their content: a raw MJPEG file begins like a JPEG, so its name keeps it a video
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".mjpeg",
                    ".mjpg", ".mts", ".m2ts", ".3gp", ".ogv", ".y4m", ".h264", ".264", ".h265", ".hevc", ".nut",
                    ".mxf", ".asf", ".vob")
MIN_SIDE = 8  # smaller images are rejected on every path (pixels per side)
# IMREAD_ANYDEPTH keeps 16-bit/float, IMREAD_ANYCOLOR keeps grey as 1 channel and drops alpha;
# without IMREAD_IGNORE_ORIENTATION OpenCV applies the EXIF orientation.
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_warned: set[str] = set()
_warn_lock = threading.Lock()


class ImageRejected(DataError):
    """An image that decodes but cannot be model input; ``reason`` is a short counter key."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_image_file(path: Path) -> bool:
    """True for a non-hidden file name with an image extension (any case).

    The one rule for which files are images, for a folder listing and a file named on the command line alike
    (:func:`not_an_image`): ``predict x.gif`` scored a file that listing its folder left out.
    """
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def is_still_image(path: Path) -> bool:
    """True when the file ``path``, named on its own (``predict FILE``, a camera whose source is one file), is a
    still image for the one image decoder.

    Decided by the name where it says (an image or a video extension, any case), else by the file's content: a
    still OpenCV's image codecs recognise under another name (``foo.jp2``, ``.dat``, a name without extension)
    is an image on every path that takes a named file, so predict scores the very file a camera on it
    inspects. GIF is not a still: the daemon plays an animation frame by frame. A folder listing keeps to
    names (:func:`is_image_file`): which files of a folder are images must not depend on the OpenCV build.
    """
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return True
    if suffix in VIDEO_EXTENSIONS or suffix == ".gif":
        return False
    try:
        return bool(cv2.haveImageReader(str(path)))  # reads the file's signature (magic bytes)
    except cv2.error:
        return False


def not_an_image(path: str | Path) -> str | None:
    """Why the named file ``path`` is not read as an image (one phrase, naming it), None when it is one
    (:func:`is_still_image`) or is missing (reading it then says so). A hidden file named on its own is read
    like any other, as a camera on it is: only listings skip hidden files (tools' leftovers, as globs do)."""
    path = Path(path)
    if is_still_image(path) or not (path.exists() or _is_broken_link(path)):
        return None
    return (f"{path}: '{path.suffix or '(no extension)'}' is not an image format read "
            f"(read: {', '.join(IMAGE_EXTENSIONS)}, or another name whose content OpenCV decodes as a still)")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files ignored); [] if it is gone.

    A broken symbolic link with an image name is listed too, and so is a FIFO, a device or a socket (or a link to
    one): reading it then fails with a message naming it, so it is skipped and counted like a corrupt file, never
    silently. ``predict`` on a folder holding ``b.png``, a FIFO, scored the other images and said nothing of it.
    """
    try:
        entries = list(Path(folder).iterdir())
    except OSError:  # missing, deleted meanwhile, not a folder, no permission
        return []
    return sorted((p for p in entries
                   if is_image_file(p) and (p.is_file() or _is_broken_link(p) or special_file_kind(p))),
                  key=lambda p: p.name)


def unread_image_names(folder: Path) -> list[str]:
    """Names of the files directly inside ``folder`` of image formats that are not read
    (:data:`UNREAD_IMAGE_EXTENSIONS`: GIF, JPEG 2000, HEIC …), sorted; [] if it cannot be listed. For the
    listings to tell what they leave out: none is left out silently."""
    try:
        return sorted(p.name for p in Path(folder).iterdir()
                      if p.suffix.lower() in UNREAD_IMAGE_EXTENSIONS and not p.name.startswith("."))
    except OSError:
        return []


# what file managers write beside pictures, not dot-named on Linux (Windows marks them hidden): no file of the data
SYSTEM_FILES = ("thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "icon\r")


def other_file_names(folder: Path) -> list[str]:
    """Names of the files directly inside ``folder`` that a listing leaves out and :func:`unread_image_names` does
    not name (``notes.txt``, ``frame_0001`` with no extension, ``part.png.bak``, ``scan.dcm``), sorted; hidden files
    and :data:`SYSTEM_FILES` are none of them; [] if it cannot be listed. Such files were dropped without a word:
    an image saved without an extension is scored by ``predict FILE`` (read by content) but never trained on."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(e.name for e in entries if _is_other_file(e))


def _is_other_file(entry: os.DirEntry) -> bool:
    name = entry.name
    if name.startswith(".") or name.lower() in SYSTEM_FILES or is_image_file(Path(name)):
        return False
    if Path(name).suffix.lower() in UNREAD_IMAGE_EXTENSIONS:
        return False
    try:
        return entry.is_file()
    except OSError:
        return False


_SUBFOLDER_LOOK = 20000  # directory entries looked at, at most, to find images in a folder's sub-folders
ARTEFACT_FOLDERS = ("__MACOSX",)  # what macOS's zip writes beside the data (AppleDouble ._ files)


def image_subfolders(folder: Path) -> list[str]:
    """Names of the sub-folders directly inside ``folder`` that hold image files (:func:`is_image_file`) at any
    depth, sorted; hidden ones and ``__MACOSX`` are no such folders; [] if it cannot be listed. A listing reads
    only the images directly in a folder (it never recurses), so a folder of dated sub-folders (a camera's
    ``2026-12-01/``, an export per shift) gave predict, calibrate --good-dir, training, evaluation and the folder
    camera its top level alone, silently: a threshold calibrated on 1 image of 4, a camera that idles. Looks at
    no more than :data:`_SUBFOLDER_LOOK` entries in all (a huge tree is judged by its first ones)."""
    budget = [_SUBFOLDER_LOOK]
    try:
        subs = sorted(e.name for e in os.scandir(folder) if _walkable(e))
    except OSError:
        return []
    return [name for name in subs if budget[0] > 0 and _holds_images(Path(folder) / name, budget)]


def _walkable(entry: os.DirEntry) -> bool:
    """A sub-folder a listing's note looks into: a folder (a link to one too), not hidden, no zip artefact."""
    try:
        return entry.is_dir() and not entry.name.startswith(".") and entry.name not in ARTEFACT_FOLDERS
    except OSError:
        return False


def _holds_images(folder: Path, budget: list[int]) -> bool:
    """Whether ``folder`` or a sub-folder of it holds an image file, spending ``budget[0]`` entries."""
    pending = [folder]
    while pending and budget[0] > 0:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        budget[0] -= len(entries) + 1
        if any(is_image_file(Path(e.name)) for e in entries if not _walkable(e)):
            return True
        pending.extend(Path(e.path) for e in entries if _walkable(e) and not e.is_symlink())
    return False


def subfolders_note(folder: Path, names: list[str] | None = None) -> str:
    """``'2 sub-folder(s) holding images are not read (only the images directly in it are), e.g. day1'`` for
    ``folder`` (its :func:`image_subfolders`, or ``names``), '' when it has none."""
    names = image_subfolders(folder) if names is None else names
    if not names:
        return ""
    return (f"{len(names)} sub-folder(s) holding images are not read (only the images directly in it are), "
            f"e.g. {', '.join(names[:3])}")


_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_IEND = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: every PNG file ends with them


def ends_cut_short(data: bytes | np.ndarray) -> bool:
    """Whether ``data`` (a whole image file's bytes) stops before its format's end: a JPEG without its EOI marker
    (FF D9) after its scans (:func:`inspector.data.jpeg_damage.jpeg_complete`), a PNG not ending in its IEND
    chunk, a BMP or WebP shorter than the file size its header
    declares, a TIFF or BigTIFF whose first IFD or the strips/tiles it names lie past the end, a binary PNM
    (P4/P5/P6) or a PAM (P7) shorter than its header's width × height × samples. Such a file is still being
    written, or its writer died. False where the format cannot tell (a plain-text PNM, an empty or unknown file).
    A complete file may still be corrupt.

    TIFF and PNM were 'cannot tell': a 16-bit TIFF or PGM copied in by a writer that paused past SETTLE_S (2 s)
    mid-file was counted corrupt (a warning, a count) as JPEG and PNG no longer were; so were a BigTIFF (a
    microscope's or a line-scan camera's large pages), a binary PBM (P4) and a PAM until they were judged too."""
    head, n = bytes(data[:12]), len(data)
    if head[:4] in _TIFF_MAGICS:
        return _tiff_cut_short(bytes(data))
    if head[:2] in _PNM_SAMPLES:
        return _pnm_cut_short(bytes(data[:_PNM_HEAD_MAX]), n)
    if head[:2] == _PAM_MAGIC:
        return _pam_cut_short(bytes(data[:4096]), n)
    if head.startswith(_JPEG_SOI):  # its EOI after its scans: bytes after it (a camera's padding) are no cut
        return not jpeg_complete(bytes(data))
    if head.startswith(_PNG_SIGNATURE):
        return bytes(data[-len(_PNG_IEND):]) != _PNG_IEND
    if head.startswith(b"BM") and n >= 6:
        return n < int.from_bytes(head[2:6], "little")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return n < int.from_bytes(head[4:8], "little") + 8
    return False


_TIFF_DATA_TAGS = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), (TileOffsets, TileByteCounts)
# bytes per value of each TIFF 6.0 field type (§2: BYTE ASCII SHORT LONG RATIONAL SBYTE UNDEFINED SSHORT SLONG
# SRATIONAL FLOAT DOUBLE) and BigTIFF's (LONG8 SLONG8 IFD8)
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
# SHORT, LONG (TIFF 6.0 §2) and BigTIFF's LONG8: the types offsets and byte counts may have
_TIFF_OFFSET_TYPES = {3: "H", 4: "I", 16: "Q"}
# the IFD layout of a classic TIFF and of a BigTIFF (header magic 43): offset, entry count, IFD entry
# (tag, type, count, value or offset) and the bytes a value must fit in to be kept in the entry itself
_TIFF_FORMS = {False: ("I", "H", "HHI4s", 4), True: ("Q", "Q", "HHQ8s", 8)}
_PNM_SAMPLES = {b"P4": 0, b"P5": 1, b"P6": 3}  # binary bitmap (8 pixels a byte), grey, colour (netpbm's pbm(5) …)
_PNM_HEAD_MAX = 1024  # a header with its comments longer than this is not judged (cannot tell)
_PNM_FIELD = re.compile(rb"(?:\s|#[^\n]*\n)*(\d+)")


def _tiff_cut_short(buf: bytes) -> bool:
    """Whether a TIFF's (or BigTIFF's) first IFD, or a strip or tile it names, lies past the end of ``buf``
    (TIFF 6.0 §2: the header points to the IFD; StripOffsets/StripByteCounts or TileOffsets/TileByteCounts place
    the data; BigTIFF: the same with 8-byte offsets and counts). A writer may put the IFD first (Pillow) or last
    (libtiff): either way a copy cut short misses one of them."""
    n, big = len(buf), buf[2:4] in (b"+\x00", b"\x00+")
    offset, number, entry, inline = _TIFF_FORMS[big]
    order = "<" if buf[:2] == b"II" else ">"
    if n < (16 if big else 8):
        return True
    at = struct.unpack_from(order + offset, buf, 8 if big else 4)[0]
    step = struct.calcsize(order + entry)
    if at + struct.calcsize(number) > n:
        return True
    (count,) = struct.unpack_from(order + number, buf, at)
    first = at + struct.calcsize(number)
    if first + step * count + inline > n:  # the entries, then the next IFD's offset
        return True
    entries = {}
    for i in range(count):
        tag, kind, values, value = struct.unpack_from(order + entry, buf, first + step * i)
        entries[tag] = (kind, values, value)
        size = _TIFF_TYPE_SIZES.get(kind, 0) * values
        if size > inline and struct.unpack_from(order + offset, value)[0] + size > n:  # values kept out of the entry
            return True
    for offsets_tag, counts_tag in _TIFF_DATA_TAGS:
        if offsets_tag in entries and counts_tag in entries:
            offsets = _tiff_ints(buf, order, *entries[offsets_tag])
            counts = _tiff_ints(buf, order, *entries[counts_tag])
            if offsets is None or counts is None or any(o + c > n for o, c in zip(offsets, counts)):
                return True
    return False


def _tiff_ints(buf: bytes, order: str, kind: int, number: int, value: bytes) -> tuple[int, ...] | None:
    """An IFD entry's SHORT/LONG/LONG8 values (inline when they fit in the entry's 4 bytes, 8 in a BigTIFF, else
    at the offset given); None when they lie past the end of ``buf``; () for another type or an implausible count
    (the decoder then judges)."""
    code = _TIFF_OFFSET_TYPES.get(kind)
    if code is None or number > 1 << 20:
        return ()
    size = struct.calcsize(code) * number
    if size <= len(value):
        return struct.unpack_from(f"{order}{number}{code}", value)
    where = struct.unpack_from(order + ("I" if len(value) == 4 else "Q"), value)[0]
    if where + size > len(buf):
        return None
    return struct.unpack_from(f"{order}{number}{code}", buf, where)


def _pnm_cut_short(head: bytes, n: int) -> bool:
    """Whether a binary PNM of ``n`` bytes (``head``: its first bytes) holds fewer than its header's width ×
    height × samples (2 bytes each above maxval 255; a PBM's rows 8 pixels a byte, no maxval), after the one
    whitespace byte that ends the header."""
    samples = _PNM_SAMPLES[head[:2]]
    fields, pos = [], 2
    for _ in range(3 if samples else 2):  # width, height, maxval (a bitmap has none)
        match = _PNM_FIELD.match(head, pos)
        if match is None:
            return pos >= len(head) == n  # the header itself not all there yet; else not a PNM we can judge
        fields.append(int(match.group(1)))
        pos = match.end()
    width, height, maxval = (fields + [1])[:3]
    row = (width + 7) // 8 if not samples else width * samples * (2 if maxval > 255 else 1)
    return n < pos + 1 + row * height


def _pam_cut_short(head: bytes, n: int) -> bool:
    """Whether a PAM of ``n`` bytes (``head``: its first bytes) holds fewer than its header's WIDTH × HEIGHT × DEPTH
    samples (2 bytes each above MAXVAL 255, pam(5)); a header not all there yet (no ENDHDR) is cut short too."""
    header, maxval = _pam_header(head), _pam_maxval(head)
    if header is None:
        return n == len(head) and b"ENDHDR" not in head  # a longer header is not judged (cannot tell)
    try:
        width, height, depth = (int(header[0][k]) for k in (b"WIDTH", b"HEIGHT", b"DEPTH"))
    except (KeyError, ValueError):
        return False  # malformed: corrupt, not being written
    return n < header[1] + width * height * depth * (2 if (maxval or 0) > 255 else 1)


def _is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


# ------------------------------------------------------------------------------------------ bit depth
# PNG colour type (IHDR) → how many of its sBIT bytes are colour: grey, RGB, palette, grey + alpha, RGBA. The
# alpha's byte comes last and says nothing of the pixels (alpha is dropped): a 16-bit RGBA file of 12-bit colour
# with a 16-bit alpha (sBIT 12,12,12,16) was read as 16-bit data, 1/16 of the range, by the alpha's bits
_PNG_COLOUR_SAMPLES = {0: 1, 2: 3, 3: 3, 4: 1, 6: 3}


def _png_sbit(buf: bytes) -> int | None:
    """Significant bits from a PNG's sBIT chunk (largest over the colour channels, alpha left out), None
    without one.

    PNG spec §11.3.3.4: sBIT precedes PLTE and IDAT; one byte per channel, alpha's last.
    """
    colour = _PNG_COLOUR_SAMPLES.get(buf[25], 4) if len(buf) > 25 else 4  # IHDR's colour type; unknown: all
    pos = 8
    while pos + 8 <= len(buf):
        length, ctype = struct.unpack(">I4s", buf[pos:pos + 8])
        if ctype == b"sBIT":
            data = buf[pos + 8:pos + 8 + length][:colour]
            return max(data) if data else None
        if ctype in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, either byte order


class TiffLayout(NamedTuple):
    """The first page's tags that decide how its samples become pixels (TIFF 6.0, Section 8 / 18 / 21):
    BitsPerSample (258, largest), PhotometricInterpretation (262; 0 = MinIsWhite), SamplesPerPixel (277),
    PlanarConfiguration (284; 2 = one plane per sample), ExtraSamples (338; 1 associated, 2 unassociated
    alpha) and SampleFormat (339; 1 uint, 2 int, 3 float). None for a tag the file leaves out."""

    bits: int | None
    photometric: int | None
    samples: int
    planar: int
    extra: tuple[int, ...]
    sample_format: int = 1
    max_sample: int | None = None  # MaxSampleValue (281), largest over samples
    tiled: bool = False  # TileWidth (322) present: the page is stored in tiles, not strips (TIFF 6.0 §15)
    max_float: float | None = None  # SMaxSampleValue (341), largest over samples, as stored (float samples' white)
    orientation: int = 1  # Orientation (274): 1..8, how the stored rows and columns are displayed


def _tiff_layout(buf: bytes) -> TiffLayout | None:
    """:class:`TiffLayout` of a TIFF's first page via Pillow's tag reader (no pixel decoding); None when it
    is no TIFF or its tags cannot be read (the pixel decoder then decides)."""
    if bytes(buf[:4]) not in _TIFF_MAGICS:
        return None
    tags = _tiff_tags(buf)
    if tags is None:
        return None

    def ints(code: int) -> tuple[int, ...]:
        value = tags.get(code)
        values = value if isinstance(value, (tuple, list)) else (value,)
        # a damaged tag of another type (bytes, text) says nothing: the pixel decoder then decides
        return tuple(int(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))

    bits, top = ints(258), ints(281)
    value = tags.get(341)
    floats = [float(v) for v in (value if isinstance(value, (tuple, list)) else (value,))
              if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return TiffLayout(max(bits) if bits else None, (ints(262) or (None,))[0], (ints(277) or (1,))[0],
                      (ints(284) or (1,))[0], ints(338), (ints(339) or (1,))[0], max(top) if top else None,
                      322 in tags, max(floats) if floats else None, (ints(274) or (1,))[0])


def _tiff_float_white(layout: TiffLayout) -> int | None:
    """The white a page of float samples declares: its SMaxSampleValue (tag 341, the maximum of samples that are
    not unsigned integers, TIFF 6.0 Section 19), else its MaxSampleValue (281), when that is ``2**n - 1`` (n 1..32:
    1.0 for 0..1 data, 4095.0 for a 12-bit camera's); None otherwise. Another value is one image's own largest
    sample, which says nothing of the scale (:func:`_tiff_bits`' rule for integers)."""
    top = layout.max_float if layout.max_float is not None else layout.max_sample
    if top is None or not np.isfinite(top) or top < 1 or not float(top).is_integer():
        return None
    top = int(top)
    return top if top & (top + 1) == 0 and top.bit_length() <= 32 else None


def _refuse_own_overlay(buf: np.ndarray, where: str) -> None:
    """Raise :class:`ImageRejected` (reason ``overlay``) for an overlay ``inspector predict`` wrote (its PNG tag,
    :data:`inspector.visual.PREDICT_OVERLAY_TAG`): a heat map painted over a picture, never a part's picture. One
    written into a data set's folder (``predict --out data/x/test/good``) was scored as one more good part."""
    from inspector.visual import PREDICT_OVERLAY_TAG, png_tagged

    if png_tagged(bytes(buf[:96]), PREDICT_OVERLAY_TAG):
        raise ImageRejected(f"{where}: an overlay written by 'inspector predict' (a heat map over a picture), not a "
                            f"part's picture", "overlay")


def _tiff_pages(buf: bytes) -> int:
    """How many pages of a TIFF are pictures (:func:`inspector.data.tiff_pages.picture_pages`: not its
    reduced-resolution previews nor masks), by its IFD chain (no pixel decoding); 1 when it cannot tell."""
    return picture_pages(buf)


_PAGE = {"a TIFF": "page", "an animated PNG": "frame", "an animated WebP": "frame"}


def _pages(buf: np.ndarray) -> tuple[str, int]:
    """(what the file is, how many pages or frames it holds) of a multi-page TIFF (:func:`_tiff_pages`), an
    animated PNG (APNG: its acTL chunk's num_frames) or an animated WebP (its ANMF chunks); ("", 1) for any
    other file. The decoder reads the first page or frame of each: a camera's burst saved as an APNG or an
    animated WebP had its other frames dropped without a word, where a TIFF's other pages were told."""
    head = bytes(buf[:16])
    if head[:4] in _TIFF_MAGICS:
        return "a TIFF", _tiff_pages(buf.tobytes())
    if head[:8] == _PNG_SIGNATURE:
        return "an animated PNG", _apng_frames(buf)
    if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X":
        return "an animated WebP", _webp_frames(buf)
    return "", 1


def _apng_frames(buf: np.ndarray) -> int:
    """num_frames of a PNG's acTL chunk (APNG: it precedes the first IDAT), 1 without one."""
    data, pos = bytes(buf[:1 << 16]), 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"acTL" and pos + 12 <= len(data):
            return max(1, struct.unpack_from(">I", data, pos + 8)[0])
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return 1


def _webp_frames(buf: np.ndarray) -> int:
    """How many ANMF (animation frame) chunks an extended WebP holds (RIFF chunks, each padded to an even size),
    at least 1."""
    data, pos, frames = buf.tobytes(), 12, 0
    while pos + 8 <= len(data):
        kind, length = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        frames += kind == b"ANMF"
        pos += 8 + length + (length & 1)
    return max(1, frames)


def _tiff_tags(buf: bytes) -> dict | None:
    """The first page's tags {code: value}, None when they cannot be read. Pillow opens the page when it knows
    its pixel mode; one it does not (a signed 16-bit MinIsWhite page, which OpenCV reads) has its first IFD
    read by Pillow's tag reader alone, so the layout is known whatever the samples."""
    from PIL import Image, TiffImagePlugin

    with warnings.catch_warnings():  # "Corrupt EXIF data" of a cut-short file: the pixel decoder tells
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(buf)) as im:
                return dict(im.tag_v2)
        except Exception:  # noqa: BLE001 - an unknown mode, or damage: the tag reader alone, below
            pass
        try:
            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=bytes(buf[:16] if buf[2:3] == b"+" else buf[:8]))
            fp = io.BytesIO(buf)
            fp.seek(ifd.next)
            ifd.load(fp)
            return dict(ifd)
        except Exception:  # noqa: BLE001 - a tag we cannot read just says nothing
            return None


def _tiff_bits(buf: bytes) -> int | None:
    """The significant bits a TIFF's first page declares, None when it declares none narrower than its container:
    BitsPerSample (tag 258, largest over samples), else a MaxSampleValue (tag 281) of ``2**n - 1`` below the
    container's full scale. Cameras that store 12-bit data in 16-bit samples declare it so (the one bit-depth
    tag a TIFF has besides BitsPerSample); another value is one image's own largest sample, which says nothing
    of the depth (scaling by it would give two images of one scene different pixels)."""
    layout = _tiff_layout(buf)
    if layout is None or layout.bits is None:
        return None
    top = layout.max_sample
    if top is not None and 0 < top < (1 << layout.bits) - 1 and top & (top + 1) == 0:
        return top.bit_length()
    return layout.bits


_PNM_MAGICS = (b"P2", b"P3", b"P5", b"P6")  # grey / colour, ASCII / binary: the ones with a maxval
_PAM_MAGIC = b"P7"  # netpbm PAM: a header of KEY value lines (WIDTH, HEIGHT, DEPTH, MAXVAL, TUPLTYPE) up to ENDHDR


def _pnm_maxval(buf: bytes) -> int | None:
    """The ``maxval`` of a PGM/PPM header (netpbm: magic, width, height, maxval, '#' comments), or the ``MAXVAL``
    of a PAM header (netpbm's pam(5): one ``KEY value`` per line up to ``ENDHDR``), or None. PAM is the same
    samples against the same declared white: read without it, 12-bit data in a PAM came out as 16-bit data
    (1/16 of the range) and 8-bit data of MAXVAL 100 unscaled, where its PGM copy read right."""
    head = bytes(buf[:2])
    if head == _PAM_MAGIC:
        return _pam_maxval(bytes(buf[:4096]))
    if head not in _PNM_MAGICS:
        return None
    tokens: list[bytes] = []
    for line in bytes(buf[2:4096]).split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 3:
            break
    try:
        maxval = int(tokens[2])
    except (IndexError, ValueError):
        return None
    return maxval if 0 < maxval < 65536 else None


def _pam_header(buf: bytes) -> tuple[dict[bytes, bytes], int] | None:
    """A PAM's header ``{KEY: value}`` (netpbm's pam(5): after the magic, one ``KEY value`` per line, '#'
    comments, up to ``ENDHDR``) and the offset of its samples; None when it is no PAM or has no ENDHDR."""
    if bytes(buf[:3]) not in (b"P7\n", b"P7\r", b"P7 "):
        return None
    fields: dict[bytes, bytes] = {}
    head, pos = bytes(buf[:4096]), 3  # a header longer than this is no camera's
    while (end := head.find(b"\n", pos)) >= 0:
        words = head[pos:end].split(b"#", 1)[0].split()
        pos = end + 1
        if words[:1] == [b"ENDHDR"]:
            return fields, pos
        if len(words) >= 2:
            fields[words[0]] = words[1]
    return None


def _pam_maxval(buf: bytes) -> int | None:
    """``MAXVAL`` of a PAM (1..65535), None when it has none."""
    header = _pam_header(buf)
    try:
        maxval = int(header[0][b"MAXVAL"]) if header else 0
    except (KeyError, ValueError):
        return None
    return maxval if 0 < maxval < 65536 else None


def _decode_pam(buf: np.ndarray, where: str) -> np.ndarray:
    """A PAM's samples as OpenCV gives an image's: (H, W) grey, BGR or BGRA, uint8 for a MAXVAL below 256 (one
    byte a sample, pam(5)) else uint16 (two, big-endian); grey + alpha is grey (alpha is dropped everywhere).
    OpenCV 5 read a MAXVAL 1 page (BLACKANDWHITE, one byte a sample) as packed bits: every pixel came out black.
    Raises :class:`ImageRejected` when the header or the samples are incomplete."""
    data = buf.tobytes()
    header, maxval = _pam_header(data), _pam_maxval(data)
    try:
        width, height, depth = (int(header[0][k]) for k in (b"WIDTH", b"HEIGHT", b"DEPTH")) if header else (0, 0, 0)
    except (KeyError, ValueError):
        width = height = depth = 0
    dtype = np.dtype(np.uint8 if maxval and maxval < 256 else ">u2")
    count = width * height * depth
    if not (maxval and width > 0 and height > 0 and 1 <= depth <= 4) or len(data) - header[1] < count * dtype.itemsize:
        raise ImageRejected(f"{where}: cannot decode image (corrupt or cut-short PAM)", "corrupt")
    img = np.frombuffer(data, dtype, count, header[1]).reshape(height, width, depth).astype(dtype.newbyteorder("="))
    if depth <= 2:
        return np.ascontiguousarray(img[:, :, 0])
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR if depth == 3 else cv2.COLOR_RGBA2BGRA)


def declared_full_scale(buf: bytes) -> int | None:
    """The sample value the encoded file declares as full scale (white), or None when it says nothing useful.

    ``2**bits - 1`` for a PNG sBIT (colour channels) or a TIFF BitsPerSample or MaxSampleValue (:func:`_tiff_bits`;
    1..15 bits: 16 is the container's own depth),
    ``maxval`` for a PGM/PPM or ``MAXVAL`` for a PAM (the formats that also store 8-bit samples unscaled against a
    declared maximum); for a TIFF of float samples the white it declares (:func:`_tiff_float_white`, 1 included).
    """
    head = bytes(buf[:8])
    if head == _PNG_SIGNATURE:
        bits = _png_sbit(bytes(buf))
    elif head[:4] in _TIFF_MAGICS:
        layout = _tiff_layout(bytes(buf))
        if layout is not None and layout.sample_format == 3:  # float: its white is a value, not a depth
            return _tiff_float_white(layout)
        bits = _tiff_bits(bytes(buf))
        if layout is not None and layout.sample_format == 2 and bits == layout.bits:
            # a signed page's BitsPerSample is its container's width, whose white is 2**(bits - 1) - 1 (127 for
            # int8): read as 2**bits - 1, an int8 page came out at half brightness (127 → 127)
            return None
    else:
        return _pnm_maxval(buf)
    return (1 << bits) - 1 if bits and 1 <= bits < 16 else None


def warn_once(key: str, msg: str, *args, logger: logging.Logger | None = None, level: int = logging.WARNING) -> None:
    """Log ``msg % args`` as a warning (or at ``level``) the first time ``key`` is seen in this process
    (thread-safe).

    A command lists and decodes the same files more than once (input size, split, evaluation; ``calibrate
    --use-defects`` reads its dataset for the good images and again for the defects), so a per-source or
    per-folder line would otherwise repeat: INFO lines as well (calibrate told "N defect image(s) without a
    ground-truth mask" twice). ``logger``: the caller's (default: this module's)."""
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    (logger or log).log(level, msg, *args)


def white_level(samples: np.ndarray, bit_depth: int | None = None, full_scale: int | None = None) -> float:
    """THE sample value read as white (255), for scaling (:func:`to_uint8`) and for inverting a MinIsWhite page
    (:func:`_invert`) alike, by the rule of the module docstring; ``samples``: the stored samples, any dtype.

    Float: the declared ``full_scale`` (a TIFF's SMaxSampleValue / MaxSampleValue of ``2**n - 1``:
    :func:`_tiff_float_white`), else 1.0 when their maximum is ≤ 1, else ``2**bit_depth - 1`` where the setting
    gives one, else 255.0. Integer (the container's
    largest value, 32767 for int16): the declared ``full_scale`` unless a sample exceeds it (MSB-aligned data:
    the container's), else ``2**bit_depth - 1`` (at most the container's), else the container's. Returns an int
    for integer samples, a float for float ones. Inverting and scaling by two rules made a 12-bit float
    MinIsWhite page 255 - x (negative, black) and a 16-bit one holding 12-bit data 65535 - x (clipped white)."""
    if samples.dtype.kind == "f":
        if full_scale is not None:  # declared by the file: a MinIsWhite page's white too (it was ignored: 1 - x)
            return float(full_scale)
        top = float(samples.max(initial=0.0))
        return 1.0 if top <= 1.0 else float((1 << bit_depth) - 1) if bit_depth else 255.0
    container = int(np.iinfo(samples.dtype).max)
    if full_scale is not None:
        return full_scale if int(samples.max(initial=0)) <= full_scale else container
    return min((1 << bit_depth) - 1, container) if bit_depth else container


def to_uint8(img: np.ndarray, where: str, bit_depth: int | None = None, warn_key: str | None = None,
             full_scale: int | None = None, white: float | None = None) -> np.ndarray:
    """Scale pixel data to uint8 by the rule in the module docstring.

    ``bit_depth``: significant bits of integer data (None: the container's). ``full_scale``: the value the
    file declares as white (:func:`declared_full_scale`); it wins over ``bit_depth``, except for samples
    above it (MSB-aligned data, scaled by the container). ``white``: the white already chosen by
    :func:`white_level` on the samples as stored, for samples inverted against it (a MinIsWhite page: their
    maximum changed, and chosen again it could differ); None: chosen here. Signed integers (int8/int16) are read
    as :func:`_signed_as_unsigned` says. Raises :class:`ImageRejected` (``non_finite``, ``dtype``).
    """
    if img.dtype == np.uint8 and full_scale is None and white is None and (bit_depth is None or bit_depth >= 8):
        return img
    if img.dtype in (np.float32, np.float64):
        if not np.isfinite(img).all():
            raise ImageRejected(f"{where}: float image with NaN/inf", "non_finite")
        full = _float_white(img, where, bit_depth, warn_key, full_scale) if white is None else float(white)
        return np.clip(img * (255.0 / full) + 0.5, 0, 255).astype(np.uint8)
    if img.dtype in (np.uint32, np.int32) and bit_depth is None and full_scale is None:
        # no 32-bit camera exists: such files hold narrower data whose depth only the user knows (scaling by
        # 2**32 - 1 made 16-bit data black, by the image's own maximum made two images of one scene differ)
        raise ImageRejected(f"{where}: {img.dtype} samples (32-bit integers) say nothing of their depth; set "
                            f"bit_depth to the camera's significant bits ({', '.join(map(str, BIT_DEPTHS))}) "
                            f"to read them: data.bit_depth when training (the model keeps it for evaluate, "
                            f"calibrate and predict), a camera's bit_depth in the daemon's config", "dtype")
    if img.dtype not in (np.uint8, np.uint16, np.int8, np.int16, np.uint32, np.int32):
        raise ImageRejected(f"{where}: unsupported pixel type {img.dtype}", "dtype")
    top = int(white) if white is not None else white_level(img, bit_depth, full_scale)
    img, container = _signed_as_unsigned(img, where, warn_key)
    if full_scale is None and bit_depth is None and container >= 32767:
        _warn_narrow(img, where, warn_key, container.bit_length())  # 32-bit: bit_depth given above
    if top >= 255 and img.dtype == np.uint8:  # full-range 8-bit; an int8 page's white is 127 (its container's)
        return img
    wide = np.minimum(img.astype(np.uint64), top)
    return ((wide * 255 + top // 2) // top).astype(np.uint8)


def _float_white(img: np.ndarray, where: str, bit_depth: int | None, warn_key: str | None,
                 full_scale: int | None = None) -> float:
    """The white of finite float samples as stored (:func:`white_level`: the declared ``full_scale``, else 0..1
    when their maximum is ≤ 1, else
    0..``2**bit_depth - 1`` where a ``bit_depth`` is given (the setting, as for integer data: a 12-bit camera's
    float TIFF holds 0..4095), else 0..255), warned once per source: samples above that range (clipped: a 12-bit
    camera's float data came out 94% white without a word, and ``bit_depth: 12`` changed nothing), and a maximum
    just above 1 without a ``bit_depth`` (0..1 data whose brightest pixel overshoots, as a flat-field correction
    leaves it, reads as 0..255: near black)."""
    top = float(img.max(initial=0.0))
    full = white_level(img, bit_depth, full_scale)
    key = f"{warn_key or where}:float"
    if top > full:
        warn_once(key, "%s: warning: float samples up to %.6g exceed %g, the top of the range float data above 1 is "
                  "read in: %.1f%% of them clipped to white; set bit_depth to the camera's significant bits (e.g. "
                  "12: 0..4095)", where, top, full, 100.0 * float(np.mean(img > full)), logger=log)
    elif full == 255.0 and not bit_depth and full_scale is None and top < 2.0:
        warn_once(key, "%s: warning: float samples up to %.6g, just above 1, are read as 0..255 data (near black); "
                  "0..1 data must stay at or below 1.0", where, top, logger=log)
    return full


def _signed_as_unsigned(img: np.ndarray, where: str, warn_key: str | None) -> tuple[np.ndarray, int]:
    """Integer samples as unsigned ones of the same width, and the container's full scale (white).

    Unsigned: unchanged, full scale ``2**bits - 1``. **Signed** (a TIFF's SampleFormat 2, LabVIEW/NI Vision
    ``I16`` images, numpy ``int16`` arrays saved as they are): 0 is black and the largest positive value
    (32767, 127) white, so a camera's 12-bit data stored signed reads as the same data stored unsigned (with
    ``bit_depth: 12``); negative samples are below black and read as 0 (one warning per source). Offsetting
    by 32768 instead would put such data at mid-grey with 1/16 of the levels, and scaling by each image's
    own range would give two images of one scene different pixels.
    """
    if img.dtype.kind == "u":
        return img, (1 << (8 * img.dtype.itemsize)) - 1
    if int(img.min(initial=0)) < 0:
        warn_once(f"{warn_key or where}:negative", "%s: warning: signed samples below 0 (min %d) are read as "
                  "black: 0 is black and %d white for signed data", where, int(img.min()),
                  np.iinfo(img.dtype).max, logger=log)
    unsigned = np.maximum(img, 0).astype(img.dtype.str.replace("i", "u"))
    return unsigned, int(np.iinfo(img.dtype).max)


def _warn_narrow(img: np.ndarray, where: str, warn_key: str | None, container_bits: int = 16) -> None:
    """Once per source: a 16-bit image (15 bits of a signed one) that leaves 2 or more high bits unused while
    nothing gave its depth."""
    used = int(img.max(initial=0)).bit_length()
    if 0 < used <= container_bits - 2:
        warn_once(warn_key or where, "%s: warning: %d-bit image uses only %d significant bits (max value %d), "
                   "so it is scaled as %d-bit data with a fraction of the grey levels; if the camera writes "
                   "%d-bit data set bit_depth: %d (or save a PNG sBIT chunk)", where, container_bits, used,
                   int(img.max()), container_bits, _suggest(used), _suggest(used))


def _suggest(used: int) -> int:
    return next(b for b in BIT_DEPTHS if b >= used) if used > 8 else 8


# ------------------------------------------------------------------------------------------ decoding
def standardize_pixels(img: np.ndarray, where: str, bit_depth: int | None = None, order: str = "RGB",
                       warn_key: str | None = None, full_scale: int | None = None,
                       white: float | None = None) -> np.ndarray:
    """Decoded pixels (OpenCV's BGR / BGRA / grey, any depth) → uint8 (H, W, 3) in ``order`` (RGB or BGR).

    The second half of :func:`decode_image`; ``full_scale`` and ``white`` as in :func:`to_uint8`. Raises
    :class:`ImageRejected` (reasons ``shape``, ``channels``, ``too_small``, ``non_finite``, ``dtype``).
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3):
        raise ImageRejected(f"{where}: unsupported image shape {img.shape}", "shape")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels not in (1, 3, 4):
        raise ImageRejected(f"{where}: unsupported channel count {channels}", "channels")
    h, w = img.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageRejected(f"{where}: image is {w}x{h}, smaller than the minimum {MIN_SIDE}x{MIN_SIDE}",
                            "too_small")
    with _memory_for(where, (h, w)):
        img = to_uint8(img, where, bit_depth, warn_key, full_scale, white)
        if channels == 1:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)  # same for BGR
        if channels == 4:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if order == "RGB" else cv2.COLOR_BGRA2BGR)
        if order == "RGB":
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(img)


_ALLOCATION = re.compile(r"Failed to allocate (\d+) bytes")


@contextlib.contextmanager
def _memory_for(where: str, size: tuple[int, int] | None = None):
    """Turn a failed allocation while decoding ``where`` into :class:`ImageRejected` (reason ``memory``), one line
    naming the image, its size (H, W) when known, and the bytes asked for: OpenCV's "Insufficient memory"
    cv2.error and numpy's MemoryError came out of every path as tracebacks (a 30000x30000 grey PNG of 0.9 MB
    asks 2.7 GB for its RGB copy). Other OpenCV errors are not the image's and pass."""
    try:
        yield
    except (MemoryError, cv2.error) as exc:
        if isinstance(exc, cv2.error) and getattr(exc, "code", None) != cv2.Error.StsNoMem:
            raise
        asked = _ALLOCATION.search(str(exc))
        dims = f" of {size[1]}x{size[0]} pixels" if size else ""
        need = f" (asked for {int(asked.group(1)) / 1e9:.2g} GB more)" if asked else ""
        raise ImageRejected(f"{where}: image{dims} does not fit in the memory available to decode it{need}",
                            "memory") from None


_NATIVE_SINK_LOCK = threading.Lock()


def cv2_imdecode(buf: np.ndarray, flags: int) -> np.ndarray | None:
    """``cv2.imdecode`` with what the native codecs print to stderr turned into DEBUG log lines (shown by ``-v``).

    libpng ("libpng error: IDAT: CRC error"), libjpeg ("Corrupt JPEG data: … extraneous bytes") and OpenCV's
    own log ("[ERROR…] TIFF_Error …", "imdecode_(''): can't read data") write straight to file descriptor 2,
    past Python's logging: a corrupt image gave 2-4 stderr lines where the rule is exactly one (``error: …``
    naming the file, raised by the caller). File descriptor 2 is pointed at a temporary file for the call, so
    only when no other thread runs (a daemon's threads would lose their own stderr lines meanwhile) and
    when descriptor 2 exists; otherwise the codecs print as before. Returns None when OpenCV cannot decode.
    """
    if threading.active_count() > 1 or not _NATIVE_SINK_LOCK.acquire(blocking=False):
        return _imdecode_raw(buf, flags)
    try:
        try:
            saved, sink = os.dup(2), tempfile.TemporaryFile()
        except OSError:  # no descriptor 2 (closed by a supervisor): nothing to keep clean
            return _imdecode_raw(buf, flags)
        with sink:
            os.dup2(sink.fileno(), 2)
            try:
                return _imdecode_raw(buf, flags)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                for line in sink.read(1 << 16).decode("utf-8", "replace").splitlines():
                    if line.strip():
                        log.debug("native codec: %s", line.strip())
    finally:
        _NATIVE_SINK_LOCK.release()


def _imdecode_raw(buf: np.ndarray, flags: int) -> np.ndarray | None:
    """``cv2.imdecode``; None when the codec cannot read ``buf``. A failed allocation (cv2.error StsNoMem,
    "Insufficient memory … Failed to allocate N bytes", OpenCV 5.1's imdecode raises it for the decoded page
    itself) is raised, for :func:`_memory_for` to say: swallowed, an image too large for the memory left read
    "corrupt or unsupported format" and sent users looking for a codec."""
    try:
        return cv2.imdecode(buf, flags)
    except cv2.error as exc:
        if getattr(exc, "code", None) == cv2.Error.StsNoMem:
            raise
        return None


def _imdecode(buf: np.ndarray, where: str, flags: int) -> np.ndarray:
    """``buf`` decoded by OpenCV. Raises :class:`ImageRejected` ("corrupt") when it cannot be, and when it is a
    complete JPEG (one with its end marker, bytes after it or not) whose compressed data is damaged
    (:func:`inspector.data.jpeg_damage.jpeg_damage`) or a WebP whose container or lossy data is
    (:func:`inspector.data.webp_damage.webp_damage`), or a PNG whose sBIT or eXIf chunk is
    (:func:`inspector.data.png_damage.png_damage`): OpenCV decodes those to garbage (or unscaled, unturned
    pixels) without a word, and garbage scored as a part is a wrong decision."""
    if bytes(buf[:3]) == _JPEG_SOI + b"\xff" and jpeg_complete(data := buf.tobytes()):
        damage = jpeg_damage(data)  # a complete file, bytes after its end marker or not
        if damage is not None:
            raise ImageRejected(f"{where}: damaged JPEG data ({damage})", "corrupt")
    if bytes(buf[:4]) == b"RIFF" and bytes(buf[8:12]) == b"WEBP" and (damage := webp_damage(buf.tobytes())):
        raise ImageRejected(f"{where}: damaged WebP data ({damage})", "corrupt")
    if bytes(buf[:8]) == _PNG_SIGNATURE and (damage := png_damage(buf.tobytes())):
        raise ImageRejected(f"{where}: damaged PNG ({damage})", "corrupt")
    img = cv2_imdecode(buf, flags) if buf.size else None
    if img is None and (size := _beyond_decoder_limits(buf)):
        raise ImageRejected(f"{where}: image of {size} pixels is larger than the decoder reads (at most "
                            f"{_DECODER_MAX_PIXELS} pixels, {_DECODER_MAX_SIDE} a side): not decoded", "too_large")
    if img is None and bytes(buf[:2]) == _JPEG_SOI and (frame := jpeg_frame(buf.tobytes())) and frame[1] != 8:
        # OpenCV's libjpeg decodes 8-bit samples only: a 12-bit JPEG is no damage, and "corrupt" sent users looking
        raise ImageRejected(f"{where}: a JPEG of {frame[1]}-bit samples, which the decoder does not read (8-bit JPEG "
                            f"only); save such pictures as 16-bit PNG or TIFF", "unsupported")
    if img is None:
        raise ImageRejected(f"{where}: cannot decode image (corrupt or unsupported format)", "corrupt")
    return img


# OpenCV's limits on the size a header may declare (imgcodecs' validateInputImageSize; OPENCV_IO_MAX_IMAGE_PIXELS and
# OPENCV_IO_MAX_IMAGE_WIDTH / _HEIGHT override them), beyond which it refuses the file before reading its data
_DECODER_MAX_PIXELS = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))
_DECODER_MAX_SIDE = min(int(os.environ.get("OPENCV_IO_MAX_IMAGE_WIDTH", 1 << 20)),
                        int(os.environ.get("OPENCV_IO_MAX_IMAGE_HEIGHT", 1 << 20)))
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _beyond_decoder_limits(buf: np.ndarray) -> str | None:
    """The size ("60000x60000", or a pixel count) an encoded image's header declares when it is beyond what OpenCV
    decodes, else None; read by Pillow's header reader (no pixel decoding). Such a file (a decompression bomb, a
    scan of a whole web) was "corrupt or unsupported format": a user went looking for damage or a codec."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # before the open: its "Corrupt EXIF data" of a cut file is no line
            with Image.open(io.BytesIO(buf.tobytes())) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:  # above twice Pillow's own limit: its message counts the pixels
        found = _BOMB_PIXELS.search(str(exc))
        return f"{int(found.group(1))}" if found and int(found.group(1)) > _DECODER_MAX_PIXELS else None
    except Exception:  # noqa: BLE001 - a header Pillow cannot read says nothing of the size
        return None
    if width * height > _DECODER_MAX_PIXELS or max(width, height) > _DECODER_MAX_SIDE:
        return f"{width}x{height}"
    return None


class FrameLayout(NamedTuple):
    """How a frame's samples came out of its decoder, before :func:`standardize_pixels` makes every frame uint8
    (H, W, 3): size in pixels, channels (1 grey, 3 colour, 4 colour + alpha), sample dtype (numpy name), the
    significant bits the frame declares (None: its container's) and the source's own name of the format (a
    GenICam PixelFormat), when it has one. Two frames of one camera with different layouts were made
    differently (binning, ROI, pixel format changed): the daemon says so (:mod:`inspector.pipeline.capture`)."""

    height: int
    width: int
    channels: int
    dtype: str
    bits: int | None = None
    pixel_format: str | None = None

    @classmethod
    def of(cls, samples: np.ndarray, full_scale: int | None = None, pixel_format: str | None = None) -> "FrameLayout":
        """The layout of decoded ``samples`` ((H, W) or (H, W, C), any dtype); ``full_scale``: the white the frame
        declares (``2**n - 1`` gives n bits)."""
        channels = 1 if samples.ndim == 2 else int(samples.shape[2])
        bits = full_scale.bit_length() if full_scale is not None and full_scale & (full_scale + 1) == 0 else None
        bits = None if bits == samples.dtype.itemsize * 8 else bits  # the container's own depth says nothing more
        return cls(int(samples.shape[0]), int(samples.shape[1]), channels, str(samples.dtype), bits, pixel_format)

    def describe(self) -> str:
        """'1920x1080 colour uint8', '960x540 grey uint16 (12-bit)', '… (Mono8)': for log lines and events."""
        kind = {1: "grey", 3: "colour", 4: "colour+alpha"}.get(self.channels, f"{self.channels}-channel")
        bits = f" ({self.bits}-bit)" if self.bits else ""
        fmt = f" ({self.pixel_format})" if self.pixel_format else ""
        return f"{self.width}x{self.height} {kind} {self.dtype}{bits}{fmt}"


def decode_image(data: bytes | np.ndarray, where: str, bit_depth: int | None = None, order: str = "RGB",
                 warn_key: str | None = None) -> np.ndarray:
    """THE decoder: encoded image bytes → uint8 (H, W, 3) in ``order``, by the rules of the module docstring.

    ``where`` names the image in messages; ``bit_depth`` is the setting used when
    the file does not declare its depth. Raises :class:`ImageRejected` (a
    :class:`DataError`) with one line naming ``where``.
    """
    return decode_image_layout(data, where, bit_depth, order, warn_key)[0]


def decode_image_layout(data: bytes | np.ndarray, where: str, bit_depth: int | None = None, order: str = "RGB",
                        warn_key: str | None = None) -> tuple[np.ndarray, FrameLayout]:
    """:func:`decode_image` and the :class:`FrameLayout` of the samples the file stored (its size as displayed,
    grey or colour, its depth): what a camera writing pictures delivered, which the uint8 RGB result no longer
    tells (a switch from colour to grey pictures gives the same (H, W, 3) arrays). Raises as decode_image."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    _refuse_own_overlay(buf, where)
    img, full_scale, white = _decode_samples(buf, where, bit_depth, warn_key, warn=True)
    what, pages = _pages(buf)
    if pages > 1:
        # the first page is the image (the rule above); the others were never inspected nor said to be left out
        warn_once(f"pages:{warn_key or os.path.dirname(where)}", "%s: %s of %d %ss; only its first %s "
                  "is read, the other %d are not inspected (told once per %s)", where, what, pages, _PAGE[what],
                  _PAGE[what], pages - 1, "source" if warn_key else "folder")
    layout = FrameLayout.of(img, full_scale)
    return standardize_pixels(img, where, bit_depth, order, warn_key, full_scale, white), layout


def _decode_samples(buf: np.ndarray, where: str, bit_depth: int | None = None, warn_key: str | None = None,
                    warn: bool = False) -> tuple[np.ndarray, int | None, float | None]:
    """Encoded bytes → (samples as displayed: grey, BGR or BGRA at the file's depth, orientation applied and a
    MinIsWhite page inverted at every depth; the full scale the file declares, or None; the white a page wider
    than 8 bits was inverted against (:func:`white_level` of its stored samples and ``bit_depth``), or the
    container's for a PNG's shifted-up sBIT samples (:func:`_sbit_shifted_up`), or None).
    The part images and masks share: a mask read without the inversion marked every pixel but the defect of a
    16-bit or float MinIsWhite TIFF. ``warn``: say float samples out of the range they are read in (an image's
    decode; a mask's two levels are read relative to its largest). Raises :class:`ImageRejected`."""
    if not buf.size:  # said as it is: "corrupt or unsupported format" sent users looking for a codec
        raise ImageRejected(f"{where}: empty file (0 bytes), nothing to decode", "corrupt")
    tiff = None
    if bytes(buf[:4]) in _TIFF_MAGICS:
        data = buf.tobytes()
        picture = picture_first(data)  # a preview written before its picture is not the picture
        buf = buf if picture is data else np.frombuffer(picture, np.uint8)
        tiff = _tiff_layout(picture)
    with _memory_for(where):
        img = _decode_pixels(buf, where, tiff)
    # 8-bit samples are full range in every format but PGM/PPM (a PNG's sBIT then only says how they were made)
    full_scale = declared_full_scale(buf.tobytes()) if img.dtype != np.uint8 else _pnm_maxval(buf[:4096])
    white = None
    if full_scale is not None and bytes(buf[:8]) == _PNG_SIGNATURE and _sbit_shifted_up(img, full_scale):
        white = float(np.iinfo(img.dtype).max)  # MSB-aligned: the container's white, the declared depth kept
    if tiff is not None and tiff.photometric == 0 and img.dtype != np.uint8:  # OpenCV inverts 8-bit pages only
        finite = img.dtype.kind != "f" or bool(np.isfinite(img).all())
        # NaN/inf: an image is refused by to_uint8 in one line (NaN stays NaN), a mask reads them as 0
        stored = img if finite else np.where(np.isfinite(img), img, 0)
        white = (_float_white(img, where, bit_depth, warn_key, full_scale) if warn and finite and img.dtype.kind == "f"
                 else white_level(stored, bit_depth, full_scale))
        img = _invert(img, white)
    return img, full_scale, white


def _sbit_shifted_up(img: np.ndarray, full_scale: int) -> bool:
    """Whether a PNG's samples (wider than 8 bits) declared ``full_scale`` (``2**sBIT - 1``) by its sBIT chunk are
    stored shifted up to fill their container, as the PNG specification writes them (§12.4: ``v << s``, or with
    the top bits replicated below, ``v << s | v >> (sBIT - s)``): every sample's low ``s`` bits are those of a
    shift of a value that fits the declared depth. Samples above the full scale say so already
    (:func:`white_level`); a dark picture stored so (a 12-bit one below 1/16 of white, a 14-bit one below 1/4)
    never exceeds it and was read 16× (4×) too bright. Data low-justified (as cameras write it) has all its
    low bits 0 only by chance no noisy picture meets; an all-black picture reads black either way."""
    shift = 8 * img.dtype.itemsize - full_scale.bit_length()
    if img.dtype.kind != "u" or shift <= 0 or int(img.max(initial=0)) > full_scale:
        return False
    return bool(img.any()) and not (img & np.asarray((1 << shift) - 1, img.dtype)).any()


def _decode_pixels(buf: np.ndarray, where: str, tiff: TiffLayout | None) -> np.ndarray:
    """Encoded bytes → the stored samples as OpenCV's decoder gives them (grey, BGR or BGRA, any depth,
    orientation applied), by OpenCV except for the layouts it misreads (:func:`_decode_tiff`,
    :func:`_decode_masked_bmp`, :func:`_decode_pam`). Raises :class:`ImageRejected`."""
    if tiff is not None:
        return _decode_tiff(buf, where, tiff)
    if bytes(buf[:2]) == _PAM_MAGIC:
        return _decode_pam(buf, where)
    if bytes(buf[:2]) in _PLAIN_PNM_MAGICS and not bytes(buf[-1:]).isspace():
        buf = _ended_plain_pnm(buf)
    bmp = _bmp_masked_layout(bytes(buf[:70]))
    if bmp is not None:
        return _decode_masked_bmp(buf, where, bmp)
    if bytes(buf[:2]) == b"BM" and buf.size >= 18 and bytes(buf[14:18]) == b"\x0c\0\0\0":
        # an OS/2 1.x bitmap (12-byte BITMAPCOREHEADER): OpenCV 5.1 takes every one for grey when left to choose
        # (IMREAD_ANYCOLOR), so a colour one, palette or 24-bit, came out grey; its samples are 8-bit anyway
        return _imdecode(buf, where, cv2.IMREAD_COLOR)
    if _carries_exif_orientation(buf):
        return _decode_upright(buf, where)
    return _imdecode(buf, where, _DECODE_FLAGS)


_PLAIN_PNM_MAGICS = (b"P1", b"P2", b"P3")  # netpbm's plain (ASCII) PBM, PGM, PPM


def _ended_plain_pnm(buf: np.ndarray) -> np.ndarray:
    """A plain PBM/PGM/PPM whose last sample runs to the end of the file, with the newline it lacks. Netpbm
    (pgm(5): samples separated by whitespace, none required after the last) and Pillow read such a file;
    OpenCV 5.1 wants a byte after the last number ("Unexpected end of input stream" in readBlock), so every
    path refused a file a script wrote with ``" ".join(...)`` and no final newline."""
    return np.concatenate((buf, np.frombuffer(b"\n", np.uint8)))


class BmpLayout(NamedTuple):
    """A BMP whose pixels are bit fields (BITMAPINFOHEADER and later, Microsoft's "Bitmap Header Types"):
    width, height (negative: rows stored top-down), bits per pixel (16 or 32), offset of the pixel array, and
    the red, green and blue masks."""

    width: int
    height: int
    bits: int
    offset: int
    masks: tuple[int, int, int]


_BMP_BITFIELDS = (3, 6)  # biCompression BI_BITFIELDS, BI_ALPHABITFIELDS: masks right after the 40-byte header
_BMP_RGB555 = (0x7C00, 0x03E0, 0x001F)  # the masks of a 16-bit BI_RGB bitmap (Microsoft's BITMAPINFOHEADER docs)


def _bmp_masked_layout(head: bytes) -> BmpLayout | None:
    """:class:`BmpLayout` of a 16-bit BMP or a 16/32-bit one with BI_(ALPHA)BITFIELDS masks from its first 70
    bytes; None for any other file (OpenCV reads those exactly)."""
    if len(head) < 54 or head[:2] != b"BM" or struct.unpack_from("<I", head, 14)[0] < 40:  # OS/2 core: no masks
        return None
    offset = struct.unpack_from("<I", head, 10)[0]
    width, height, _planes, bits, compression = struct.unpack_from("<iiHHI", head, 18)
    if bits == 16 and compression == 0:
        return BmpLayout(width, height, bits, offset, _BMP_RGB555)
    if bits in (16, 32) and compression in _BMP_BITFIELDS and len(head) >= 66:
        return BmpLayout(width, height, bits, offset, struct.unpack_from("<3I", head, 54))
    return None


def _decode_masked_bmp(buf: np.ndarray, where: str, bmp: BmpLayout) -> np.ndarray:
    """A bit-field BMP's pixels → uint8 (H, W, 3) BGR, each channel scaled from its mask's full scale
    (``2**width - 1``) to 255, rounded: :func:`to_uint8`'s rule. Alpha is ignored, as everywhere.

    OpenCV 5.0 misreads these: it widens 5- and 6-bit channels by a shift (white 31/63/31 came out
    248/252/248), refuses a 16-bit one with a BITMAPV4/V5 header (as GIMP writes RGB565) and ignores the
    masks after a 40-byte header (a 32-bit R-G-B-A file came out with red and blue swapped). Raises
    :class:`ImageRejected` when the pixel array is cut short or a mask is not one run of bits.
    """
    rows, stride = abs(bmp.height), (bmp.width * bmp.bits + 31) // 32 * 4  # rows padded to 4 bytes
    end = bmp.offset + stride * rows
    runs = [m >> ((m & -m).bit_length() - 1) if m else 0 for m in bmp.masks]
    if bmp.width <= 0 or rows == 0 or bmp.offset < 54 or end > buf.size or any(r & (r + 1) for r in runs):
        raise ImageRejected(f"{where}: cannot decode image (corrupt or unsupported bit-field BMP)", "corrupt")
    data = np.ascontiguousarray(buf[bmp.offset:end].reshape(rows, stride)[:, :bmp.width * bmp.bits // 8])
    pixels = data.view("<u2" if bmp.bits == 16 else "<u4").astype(np.uint64)
    if bmp.height > 0:  # bottom-up, the usual order
        pixels = pixels[::-1]
    return unpack_bit_fields(pixels, bmp.masks)


def unpack_bit_fields(pixels: np.ndarray, masks: tuple[int, int, int]) -> np.ndarray:
    """Bit-field pixels (unsigned integers, one per pixel, any shape) → uint8 (…, 3) BGR: each of the red,
    green and blue ``masks`` (one run of bits each, or 0) scaled from its full scale ``2**width - 1`` to 255,
    rounded (:func:`to_uint8`'s rule). The rule of a 16-bit BMP (RGB555 / RGB565) and of the same layouts in
    a video (:mod:`inspector.pipeline.pixel_formats`); FFmpeg and OpenCV widen 5/6-bit values by repeating
    their bits, which is up to 1 level off this."""
    pixels = pixels.astype(np.uint64)
    runs = [m >> ((m & -m).bit_length() - 1) if m else 0 for m in masks]
    return np.dstack([_mask_channel(pixels, m, top) for m, top in zip(masks[::-1], runs[::-1])])  # B, G, R


def _mask_channel(pixels: np.ndarray, mask: int, top: int) -> np.ndarray:
    """One channel of bit-field pixels as uint8: the bits of ``mask`` (``top``: their full scale, 0 for an
    empty mask, which gives 0) scaled to 255, rounded."""
    if not top:
        return np.zeros(pixels.shape, np.uint8)
    value = (pixels & np.uint64(mask)) >> np.uint64((mask & -mask).bit_length() - 1)
    return ((value * 255 + top // 2) // top).astype(np.uint8)


def _decode_tiff(buf: np.ndarray, where: str, tiff: TiffLayout) -> np.ndarray:
    """A TIFF's first page as OpenCV's decoder gives it, except for the layouts its libtiff path misreads
    (measured with OpenCV 5.0, tests/data/test_format_corpus.py::test_a_tiff_gives_its_stored_samples_whatever_its_layout):

    * **planar** (PlanarConfiguration 2) samples: OpenCV interleaves 16-bit and float32 planes wrongly (a
      16-bit RGB pixel 11822/13878/10280 came out 33153/32125/31097) and refuses 8-bit ones; **float16**
      samples it refuses: both read through a rewritten IFD (:mod:`inspector.data.tiff_retag`);
    * **alpha with 32- or 64-bit samples** (float32 / float64 / 32-bit integer grey + alpha or RGBA), which
      OpenCV refuses though it reads the same samples without alpha, and **16-bit grey + alpha**, which it cut
      to 8 bits (float16: garbage): read as one wider grey page and split into pixels, alpha dropped
      (:func:`tiff_retag.decode_widened`; tests/data/test_tiff_alpha_samples.py);
    * **8-bit unassociated alpha** (ExtraSamples 2): OpenCV's RGBA reader premultiplies the colour by alpha
      (colour 40 at alpha 100 came out 16) while the rule is "alpha ignored, stored colour values used" (a PNG
      or a 16-bit TIFF with the same alpha keeps them): decoded by Pillow instead, which keeps them. Not a grey
      page's: OpenCV drops its alpha and keeps the stored values, and Pillow refuses a MinIsWhite grey page with
      alpha and a grey page with two extra samples, which were refused as undecodable.
    * **2- and 4-bit grey** pages: OpenCV refuses them ("should be palette", "Invalid bitsperpixel"), while a
      PNG or PGM of that depth decodes: Pillow reads them, widened to full range (white 3 or 15 → 255) and
      MinIsWhite inverted, as OpenCV reads a 1-bit page.

    * **8-bit tiles**: OpenCV 5.1's imdecode refuses every layout of uncompressed ones (what
      ``tifffile.imwrite(path, a, tile=(16, 16))`` writes: "Invalid tile byte count for tile 0. Expected 768, got
      1024" from its RGBA tile reader) though its imread of the same file reads them, scrambles compressed ones
      whose Orientation mirrors the page (2, 3, 6, 7) and misreads grey ones with alpha: read by Pillow, which
      reads 8-bit tiles exactly (L, RGB, RGBA, MinIsWhite; 16-bit and float tiles OpenCV reads):
      :func:`_decode_8_bit_tiles`.

    * **CMYK** wider than 8 bits, with alpha or in planes, which OpenCV refused: read by
      :mod:`inspector.data.tiff_retag` and converted by the rule OpenCV's 8-bit CMYK is read by.
    * **CIELab** (PhotometricInterpretation 8, ICCLab 9, ITULab 10): refused in one line (:func:`_refuse_lab`).
    * **damaged deflate strips**, which OpenCV decodes to wrong pixels without a word: refused in one line
      (:mod:`inspector.data.tiff_damage`).
    * **palette** pages of 1, 2 or 16 bits, which OpenCV read without their colours (1-bit) or refused: read by
      :func:`_decode_palette`.

    A MinIsWhite page wider than 8 bits is inverted by :func:`decode_image` (OpenCV inverts only 8-bit ones).
    """
    _refuse_lab(tiff, where)
    damage = tiff_damage(buf.tobytes())
    if damage is not None:
        raise ImageRejected(f"{where}: damaged TIFF data ({damage})", "corrupt")
    if tiff.tiled and (tiff.bits or 8) <= 8:
        return _decode_8_bit_tiles(buf, where, tiff)
    return _decode_tiff_layout(buf, where, tiff)


_LAB = (8, 9, 10)  # PhotometricInterpretation CIELab (TIFF 6.0 Section 23), ICCLab and ITULab (Technical Note 3)


def _refuse_lab(tiff: TiffLayout, where: str) -> None:
    """Raise :class:`ImageRejected` (reason ``unsupported``) for a page of L*a*b* samples. OpenCV read 8-bit CIELab
    as if it were RGB (a neutral grey L* 50 came out (133, 123, 107)) and refused the others as "corrupt".
    Converting them is not done: L*a*b* to a camera's RGB needs a white point and a colour transform the camera
    never applied (the rule is no colour management), and a guessed conversion is pixels no camera produced."""
    if tiff.photometric in _LAB:
        raise ImageRejected(f"{where}: a CIELab TIFF (PhotometricInterpretation {tiff.photometric}: L*a*b* colour, "
                            f"not a camera's RGB or grey samples) is not read; save it as RGB or grey",
                            "unsupported")


def _decode_8_bit_tiles(buf: np.ndarray, where: str, tiff: TiffLayout) -> np.ndarray:
    """A page of 8-bit (or narrower) tiles by Pillow, which reads them exactly, else by OpenCV where OpenCV reads
    them right. OpenCV's tile reader (libtiff's RGBA interface) refuses uncompressed tiles, scrambles the tiles of a
    page whose Orientation mirrors it left to right (2, 3, 6, 7: each tile turned in its place, measured with
    OpenCV 5.1) and misreads grey tiles with extra samples (alpha); Pillow unpremultiplies colour stored with
    associated alpha (ExtraSamples 1), which OpenCV keeps. A page neither reads right is refused in one line
    rather than read wrong. Separate planes are read one grey plane at a time (:func:`_decode_tiff_layout`): alpha
    is then no plane OpenCV reads, a mirroring Orientation still is. Raises :class:`ImageRejected`."""
    opencv_right = not (tiff.orientation in (2, 3, 6, 7)
                        or (tiff.extra and tiff.photometric in (0, 1) and tiff.planar != 2))
    if 1 in tiff.extra and tiff.photometric not in (0, 1):
        if not opencv_right:
            raise ImageRejected(f"{where}: cannot read TIFF with 8-bit tiles, associated alpha and orientation "
                                f"{tiff.orientation} (save it in strips)", "unsupported")
        return _decode_tiff_layout(buf, where, tiff)
    try:
        return _pillow_stored_colour(buf, where, "8-bit tiles")
    except ImageRejected:
        if not opencv_right:
            raise
    return _decode_tiff_layout(buf, where, tiff)


def _decode_tiff_layout(buf: np.ndarray, where: str, tiff: TiffLayout) -> np.ndarray:
    """:func:`_decode_tiff` but for its Pillow fallback. Raises :class:`ImageRejected`."""
    if tiff.photometric == PALETTE and tiff.bits not in (4, 8):  # the two depths OpenCV reads right
        return _decode_palette(buf, where, tiff)
    if needs_widening(tiff.planar, tiff.samples, tiff.bits, tiff.photometric):
        try:
            samples, orientation = decode_widened(buf.tobytes(), lambda b: _imdecode(b, where, _DECODE_FLAGS))
        except RetagError as exc:
            raise ImageRejected(f"{where}: cannot read TIFF with {tiff.bits}-bit samples and alpha: {exc}",
                                "unsupported") from None
        return _ORIENT[orientation](samples) if orientation in _ORIENT else samples
    if needs_retag(tiff.planar, tiff.samples, tiff.bits, tiff.sample_format):
        try:
            return decode_retagged(buf.tobytes(), where, lambda b: _imdecode(b, where, _DECODE_FLAGS))
        except RetagError as exc:
            what = f"{tiff.bits}-bit samples in separate planes" if tiff.planar == 2 else "float16 samples"
            raise ImageRejected(f"{where}: cannot read TIFF with {what}: {exc}", "unsupported") from None
    if 2 in tiff.extra and (tiff.bits or 8) == 8 and tiff.photometric not in (0, 1):
        return _pillow_stored_colour(buf, where, "unassociated alpha")
    if tiff.bits in (2, 4) and tiff.samples == 1 and tiff.photometric in (0, 1):
        return _pillow_stored_colour(buf, where, f"{tiff.bits}-bit grey samples")
    try:
        return _imdecode(buf, where, _DECODE_FLAGS)
    except ImageRejected as exc:
        name = _UNREAD_PHOTOMETRIC.get(tiff.photometric)
        if exc.reason != "corrupt" or name is None:
            raise
    # a whole picture of a kind no reader here takes: "corrupt" sent the user looking for damage
    raise ImageRejected(f"{where}: a TIFF of PhotometricInterpretation {tiff.photometric} ({name}), which the "
                        f"decoder does not read; save it as RGB or grey", "unsupported") from None


def _decode_palette(buf: np.ndarray, where: str, tiff: TiffLayout) -> np.ndarray:
    """A palette page of other than 4- or 8-bit indices (TIFF 6.0 Section 5: Baseline palettes are 4 or 8 bits;
    the ColorMap is defined for any): OpenCV read 1-bit ones as black and white, their ColorMap ignored, and
    refused 2- and 16-bit ones as "corrupt". 1- and 2-bit pages are read by Pillow, which reads them exactly,
    16-bit ones by :func:`tiff_retag.decode_palette`; any other depth is refused in one line naming it, as no
    reader here takes it. Raises :class:`ImageRejected`."""
    if tiff.bits in (1, 2):
        return _pillow_stored_colour(buf, where, f"{tiff.bits}-bit palette indices")
    if tiff.bits == 16 and tiff.samples == 1:
        try:
            return decode_palette(buf.tobytes(), lambda b: _imdecode(b, where, _DECODE_FLAGS))
        except RetagError as exc:
            raise ImageRejected(f"{where}: cannot read palette TIFF of 16-bit indices: {exc}", "corrupt") from None
    what = f"{tiff.bits}-bit indices" + (f" in {tiff.samples} samples a pixel" if tiff.samples != 1 else "")
    raise ImageRejected(f"{where}: a palette TIFF of {what}, which the decoder does not read (palettes of 1, 2, 4, "
                        f"8 and 16 bits are read); save it as RGB", "unsupported")


# PhotometricInterpretation values OpenCV's libtiff path refuses (TIFF 6.0 Section 8; TIFF/EP; Adobe DNG 1.4)
_UNREAD_PHOTOMETRIC = {4: "transparency mask", 32803: "CFA: a Bayer mosaic not demosaiced",
                       32844: "LogL: SGI log-encoded luminance", 32845: "LogLuv: SGI log-encoded colour",
                       34892: "LinearRaw: camera raw samples"}


def _pillow_stored_colour(buf: np.ndarray, where: str, what: str) -> np.ndarray:
    """An 8-bit image with alpha (or one of fewer bits) decoded by Pillow, alpha dropped, as OpenCV gives it:
    grey (H, W) or BGR uint8, EXIF/TIFF orientation applied (as OpenCV's decoder applies it). ``what`` names
    the layout in the error. Raises :class:`ImageRejected`."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(buf.tobytes())) as im:
            warnings.simplefilter("ignore")  # Pillow's warnings on a damaged file: the error below names it
            im = ImageOps.exif_transpose(im)
            if im.mode == "CMYK":  # by the rule OpenCV reads 8-bit CMYK strips by: Pillow's own rounds, one level off
                return cmyk_to_bgr(np.asarray(im))
            if im.mode in ("RGBA", "RGBa", "LA", "La"):  # the stored colour: converting would unpremultiply RGBa
                pixels = np.asarray(im)[..., :-1]
                pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
            else:
                pixels = np.asarray(im.convert("L" if im.mode == "L" else "RGB"))
    except MemoryError:
        raise  # _memory_for says it: an image too large is not corrupt
    except Exception as exc:  # noqa: BLE001 - Pillow's many errors: one line naming the file
        # "cannot identify image file <_io.BytesIO object at 0x…>" names an object of ours, not the file
        detail = "a layout Pillow does not read" if "cannot identify image file" in str(exc) else exc
        raise ImageRejected(f"{where}: cannot decode image with {what} ({detail})", "corrupt") from None
    return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def _invert(img: np.ndarray, white: float) -> np.ndarray:
    """MinIsWhite samples (0 = white) as MinIsBlack ones: ``white - x``, ``white`` being what :func:`to_uint8`
    then reads them by (:func:`white_level` of the samples as stored). Integer samples beyond white (clipped
    by the scaling) and negative signed ones (whiter than white) become 0 and ``white``."""
    if img.dtype.kind == "f":
        return (white - img).astype(img.dtype)
    top = int(white)
    return (top - np.minimum(np.maximum(img, 0), top)).astype(img.dtype)


_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class SpecialFileError(OSError):
    """A device or a socket where an image file was to be read: never read (``strerror`` says what it is)."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not an image file", str(path))


def read_file_bytes(path: str | Path) -> np.ndarray:
    """The bytes of the file ``path`` as a uint8 array, without ever waiting for a writer.

    Opening a FIFO for reading blocks until something opens it for writing (open(2), fifo(7)): a FIFO with an
    image name made ``predict`` and any reader of image files hang for ever. It is opened non-blocking, and a
    FIFO with no writer then reads as empty (POSIX read(2): end of file); a pipe that has one (``/dev/stdin``,
    ``<(…)``) is read to its end as before. A device (``/dev/zero``, ``/dev/sda``, a terminal) is not read: its
    data never ends, and ``predict`` on a link to ``/dev/zero`` filled the memory. Raises IsADirectoryError for a
    folder, :class:`SpecialFileError` for a device or socket, OSError when unreadable.
    """
    return read_file_and_stat(path)[0]


def read_file_and_stat(path: str | Path) -> tuple[np.ndarray, os.stat_result]:
    """:func:`read_file_bytes` and the status of the very file read, taken once it was read (fstat(2) of the open
    descriptor): what describes the bytes read. A status taken by name before the read described a copy still
    being written whose rest arrived meanwhile (or a file renamed over the name), so the folder camera took the
    finished picture it had inspected for another version and inspected it again."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        if (kind := special_file_kind(path)) == "a socket":  # open(2) of a socket fails with ENXIO
            raise SpecialFileError(path, kind) from None
        raise
    with open(fd, "rb") as fh:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):  # Linux opens a folder read-only without complaint
            raise IsADirectoryError(21, "Is a directory", str(path))
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            raise SpecialFileError(path, "a character device" if stat.S_ISCHR(st.st_mode) else "a block device")
        if stat.S_ISREG(st.st_mode):
            data = np.fromfile(fh, dtype=np.uint8)
            return data, os.fstat(fd)
        os.set_blocking(fd, True)  # a pipe with a writer: wait for its data as a plain open would
        return np.frombuffer(fh.read(), dtype=np.uint8), st


def special_file_kind(path: str | Path) -> str | None:
    """"a FIFO (named pipe)", "a character device" … when ``path`` is one of those, else None."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((what for test, what in _SPECIAL_FILES if test(mode)), None)


def _read_bytes(path: Path) -> np.ndarray:
    try:
        data = read_file_bytes(path)
    except FileNotFoundError:
        if _is_broken_link(path):
            raise DataError(f"{path}: broken symbolic link (its target {path.readlink()} does not exist)") from None
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an image") from None
    except SpecialFileError as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not data.size and (kind := special_file_kind(path)):
        raise DataError(f"{path}: is {kind} with nothing written to it, not an image file")
    return data


def read_image(path: str | Path, bit_depth: int | None = None, warn_key: str | None = None) -> np.ndarray:
    """Read and :func:`decode_image` a file to uint8 (H, W, 3) RGB.

    Raises :class:`DataError` naming the file when it is missing, cannot be decoded or is rejected.
    """
    path = Path(path)
    return decode_image(_read_bytes(path), str(path), bit_depth, "RGB", warn_key)


def frame_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of the frame :func:`read_image` returns for ``path``, EXIF orientation applied.

    Read from the file's header with Pillow when the file carries no rotation (no pixel
    decoding, so it stays cheap for 6000×4000 images); a rotated file, or one Pillow cannot
    open, is decoded instead, because Pillow reports a rotated TIFF's size already turned but
    a JPEG's as stored. Raises :class:`DataError` naming the file when it cannot be read.
    """
    if special_file_kind(path):  # Pillow's open of a FIFO waits for a writer for ever; read_image says what it is
        return read_image(path).shape[:2]
    try:
        from PIL import Image

        # Pillow's bomb warning for > 89 Mpixel (only the size is read here), its "Corrupt EXIF data" of a tag it
        # misreads (a big-endian BigTIFF's): the decoder tells what is wrong with the file, in one line
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                width, height = im.size
                orientation = _pillow_orientation(im)
                if im.format == "TIFF" and int(im.tag_v2.get(254, 0) or 0) & 5:
                    orientation = None  # a preview or mask first: the picture is a later page (tiff_pages)
    except Exception:  # noqa: BLE001 - Pillow lacks a format or a limit: the real decoder decides
        orientation = None
    if orientation != 1:
        return read_image(path).shape[:2]
    return height, width


# EXIF Orientation (TIFF tag 274) → the contiguous copy that displays a stored (H, W) plane or (H, W, C) image
# upright (Pillow's ImageOps.exif_transpose table: 2 mirror, 3 half turn, 4 flip, 5 transpose, 6/8 quarter turns,
# 7 transverse). OpenCV's flip/rotate/transpose, not a numpy view made contiguous: on the hot path (a rotated
# JPEG from a folder camera) the strided copy of a turned 1080p frame cost 7 ms, half as much as the decode
# (benchmarks/bench_decode.py)
_ORIENT = {2: lambda a: cv2.flip(a, 1), 3: lambda a: cv2.rotate(a, cv2.ROTATE_180), 4: lambda a: cv2.flip(a, 0),
           5: cv2.transpose, 6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
           7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),
           8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE)}
# Formats whose EXIF orientation the decoder applies itself (:func:`_decode_upright`), read by one reader
# (:func:`_exif_orientation`) for the pixels, :func:`frame_size` and a mask's alpha alike. A TIFF's Orientation
# is its own tag, which OpenCV's libtiff path applies whatever the flags.
_EXIF_SIGNATURES = (_JPEG_SOI, _PNG_SIGNATURE)


def _carries_exif_orientation(buf: np.ndarray) -> bool:
    head = bytes(buf[:12])
    return head.startswith(_EXIF_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _orientation_value(value) -> int:
    """An EXIF Orientation as Pillow reads it → 1..8. Read by its value whatever the tag's type: cameras write a
    BYTE (Pillow gives bytes) or a LONG, or repeat it (a tuple: the first). Anything else (0, 9, text, a tag
    without a value) is no orientation: 1. OpenCV's own reader disagreed with Pillow on such tags (it turned a
    JPEG whose tag had a count of 0, and not one whose big-endian LONG said 6), so the pixels, the frame size
    and a mask's alpha were turned by different rules."""
    if isinstance(value, (bytes, tuple, list)) and len(value) > 0:
        value = value[0]
    return value if isinstance(value, int) and value in _ORIENT else 1


def _pillow_orientation(im) -> int:
    """The orientation of the open Pillow image ``im`` by :func:`_orientation_value`. A PNG's eXIf chunk counts
    only before the pixel data (what open read: OpenCV reads none after it, and getexif would decode the whole
    image to look)."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    return _orientation_value(im.getexif().get(0x0112) or getattr(im, "tag_v2", {}).get(0x0112) or 1)


def _exif_orientation(data: np.ndarray) -> int:
    """The EXIF Orientation (1..8) of an encoded image (JPEG, TIFF, WebP, a PNG eXIf chunk before the pixel
    data) by :func:`_pillow_orientation`; 1 when it has none or Pillow cannot read it."""
    from PIL import Image

    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data.tobytes())) as im:
            warnings.simplefilter("ignore")  # a damaged file's warnings: the pixel decoder tells
            return _pillow_orientation(im)
    except Exception:  # noqa: BLE001 - Pillow lacks the format or the file is damaged: no orientation read
        return 1


def _decode_upright(buf: np.ndarray, where: str) -> np.ndarray:
    """A JPEG, PNG or WebP decoded as stored, then turned by :func:`_exif_orientation`: the one reading of the
    orientation that :func:`frame_size` and a mask's alpha use too (OpenCV's own reading of a malformed tag
    differed from it). Raises :class:`ImageRejected`."""
    img = _imdecode(buf, where, _DECODE_FLAGS | cv2.IMREAD_IGNORE_ORIENTATION)
    orient = _ORIENT.get(_exif_orientation(buf))
    return orient(img) if orient else img


def _varying_alpha(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """The alpha channel of an encoded mask, upright, when it has one that is not constant, else None.

    Annotation tools export masks as overlays: defect pixels opaque, the rest transparent,
    with colour values that say nothing (black everywhere, or white everywhere). The
    decoder drops alpha (and applies the orientation), so the alpha is read apart and turned by the
    file's EXIF orientation as the decoder turned the colour: unturned, a mirrored or half-turned
    overlay (one of any orientation when square) marked the wrong pixels. An alpha plane that still
    differs in shape from ``shape`` is not trusted.
    """
    alpha = _upright_alpha(data)
    if alpha is None or alpha.shape != tuple(shape):
        return None
    return alpha if alpha.min() != alpha.max() else None


def _upright_alpha(data: np.ndarray) -> np.ndarray | None:
    """The alpha plane (H, W) of an encoded image with the EXIF orientation applied; None without alpha.

    OpenCV's as-stored read (IMREAD_UNCHANGED) gives it, except for a TIFF: there it applies the orientation
    itself, fails on a quarter-turned page and drops a grey image's alpha, so Pillow reads TIFF alpha (OpenCV
    still, as it turns it, where Pillow cannot read the file).
    """
    if bytes(data[:4]) in _TIFF_MAGICS:
        read, alpha = _pillow_alpha(data)
        if read:
            return alpha
        orient = None
    else:
        orient = _ORIENT.get(_exif_orientation(data))
    raw = cv2_imdecode(data, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.shape[2] not in (2, 4):
        return None
    return orient(np.ascontiguousarray(raw[:, :, -1])) if orient else raw[:, :, -1]


def _pillow_alpha(data: np.ndarray) -> tuple[bool, np.ndarray | None]:
    """(whether Pillow read the image, its alpha plane with the EXIF orientation applied or None without
    alpha)."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data.tobytes())) as im:
            warnings.simplefilter("ignore")  # a damaged file's warnings: the pixel decoder tells
            if "A" not in im.getbands():
                return True, None
            return True, np.asarray(ImageOps.exif_transpose(im).getchannel("A"))
    except Exception:  # noqa: BLE001 - a layout Pillow does not read: OpenCV's reader decides
        return False, None


def read_mask(path: str | Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decode a ground-truth mask to bool (H, W) by the two-level rule of the module docstring.

    Same decoder (orientation, MinIsWhite inverted, first page) as images. With ``shape`` ((H, W) or
    (H, W, C)) a mask of another size is resized (nearest).
    """
    path = Path(path)
    data = _read_bytes(path)
    img = _decode_samples(data, str(path))[0]
    with _memory_for(str(path), img.shape[:2]):  # the alpha plane is a second decode
        alpha = _varying_alpha(data, img.shape[:2])
    if alpha is not None:  # a transparent overlay: coverage is the mask, whatever colour the pixels hold
        img = alpha
    elif img.ndim == 3:
        img = img.max(axis=2)
    if img.dtype in (np.float32, np.float64):
        img = np.nan_to_num(img)
    top = img.max(initial=0)
    if 0 < top <= MASK_MAX_LEVELS and img.dtype.kind in "ui":  # a label map's class indices (1, 2, 3 …): all defect
        mask = img > 0
    else:
        mask = img.astype(np.float64) * 2 >= float(top) if top > 0 else np.zeros(img.shape, bool)
    if shape is not None and tuple(shape[:2]) != mask.shape:
        mask = _resize_nearest(mask, int(shape[0]), int(shape[1]))
    return mask


# A label map holds a value (or a colour) per class, a few of them; a two-level mask saved lossily (JPEG) holds
# many values, but nearly all of them near its two levels. A photo holds neither: its levels fill the range.
MASK_MAX_LEVELS = 16
_MASK_MID_FRACTION = 0.05  # of pixels allowed in the middle of the range (a lossy or anti-aliased mask's edges)
_MASK_COLOUR_FRACTION = 0.01  # of pixels whose channels may differ by over 1/8 of the range (JPEG chroma error)
_MASK_SAMPLE_PIXELS = 1 << 20  # enough pixels to judge by: a large file is judged on an even grid of them


def looks_like_mask(path: str | Path) -> bool:
    """Whether the file ``path`` holds mask data, judged by its content, not its name (:func:`mask_like_samples`).

    A transparent overlay is judged by its varying alpha, which :func:`read_mask` reads. A file that cannot be
    decoded says nothing here (True): reading it as a mask then names the fault.
    """
    path = Path(path)
    try:
        data = _read_bytes(path)
        img = _decode_samples(data, str(path))[0]
        with _memory_for(str(path), img.shape[:2]):  # the alpha plane is a second decode
            alpha = _varying_alpha(data, img.shape[:2])
    except DataError:
        return True
    return mask_like_samples(img if alpha is None else alpha)


def mask_like_samples(img: np.ndarray) -> bool:
    """Whether decoded samples ((H, W) or (H, W, C), any integer or float dtype) are mask-like: at most
    :data:`MASK_MAX_LEVELS` distinct colours (a binary mask, a label map, an annotation tool's colour classes),
    or one grey channel (channels equal up to lossy error) with nearly every pixel near its darkest or its
    brightest value (a two-level mask saved as JPEG). A colour photo, or a grey one whose levels fill the
    range, is not."""
    step = max(1, int(np.sqrt(img.shape[0] * img.shape[1] / _MASK_SAMPLE_PIXELS)))
    img = np.nan_to_num(img[::step, ::step]).astype(np.float64)
    grey = img.max(axis=2) if img.ndim == 3 else img  # read_mask's rule: the largest channel
    # as many colours as the largest channel has levels at least: count colours only when those are few
    if np.unique(grey).size <= MASK_MAX_LEVELS and (
            img.ndim == 2 or np.unique(img.reshape(-1, img.shape[2]), axis=0).shape[0] <= MASK_MAX_LEVELS):
        return True
    low, top = float(grey.min()), float(grey.max())
    band = (top - low) / 8
    if img.ndim == 3 and np.mean(grey - img.min(axis=2) > band) > _MASK_COLOUR_FRACTION:
        return False  # many colours
    return float(np.mean((grey > low + band) & (grey < top - band))) <= _MASK_MID_FRACTION


class CropBox(NamedTuple):
    """The region of the source frame that is resized to the model input: rows top..top+height."""

    top: int
    left: int
    height: int
    width: int


def crop_box(src_h: int, src_w: int, height: int, width: int, policy: str) -> CropBox:
    """The source region that ``policy`` maps onto a (height, width) model input."""
    if policy in ("square", "letterbox"):
        return CropBox(0, 0, src_h, src_w)
    if policy != "shorter_side_crop":
        raise ValueError(f"unknown resize policy {policy!r}; expected one of {RESIZE_POLICIES}")
    if src_h * width > src_w * height:  # source is taller than the target: crop rows
        crop_w = src_w
        crop_h = min(src_h, max(1, round(src_w * height / width)))
    else:  # source is wider (or same aspect): crop columns
        crop_h = src_h
        crop_w = min(src_w, max(1, round(src_h * width / height)))
    return CropBox((src_h - crop_h) // 2, (src_w - crop_w) // 2, crop_h, crop_w)


def placement(src_h: int, src_w: int, height: int, width: int, policy: str) -> CropBox:
    """The region of the (height, width) model input that :func:`crop_box`'s source region fills:
    all of it, except with ``letterbox``, where the frame keeps its aspect and the rest is margin."""
    if policy != "letterbox":
        if policy not in RESIZE_POLICIES:
            raise ValueError(f"unknown resize policy {policy!r}; expected one of {RESIZE_POLICIES}")
        return CropBox(0, 0, height, width)
    scale = min(height / src_h, width / src_w)
    h = min(height, max(1, round(src_h * scale)))
    w = min(width, max(1, round(src_w * scale)))
    return CropBox((height - h) // 2, (width - w) // 2, h, w)


def _mirror_margins(inner: np.ndarray, place: CropBox, height: int, width: int,
                    out: np.ndarray | None) -> np.ndarray:
    """``inner`` (placed at ``place``) padded to (height, width) by reflection, into ``out`` if given."""
    margins = (place.top, height - place.top - place.height, place.left, width - place.left - place.width)
    padded = cv2.copyMakeBorder(inner, *margins, cv2.BORDER_REFLECT_101)
    if padded.ndim < inner.ndim:  # OpenCV drops a trailing channel axis of 1
        padded = padded[..., None]
    if out is None:
        return padded
    out[...] = padded
    return out


def _box_linear(src: np.ndarray, height: int, width: int, out: np.ndarray | None) -> np.ndarray:
    """Integer-factor box filter (OpenCV's exact INTER_AREA fast path), then bilinear for the rest."""
    h, w = src.shape[:2]
    ky, kx = max(1, h // height), max(1, w // width)
    if ky > 1 or kx > 1:
        th, tw = h - h % ky, w - w % kx  # the fast path needs exact multiples: trim centred
        y0, x0 = (h - th) // 2, (w - tw) // 2
        src = cv2.resize(src[y0:y0 + th, x0:x0 + tw], (tw // kx, th // ky), interpolation=cv2.INTER_AREA)
    return _finish_linear(src, height, width, out)


def _halve(src: np.ndarray, halve_y: bool, halve_x: bool) -> np.ndarray:
    """One exact halving of the chosen axes (2-tap box mean each); drops a trailing odd row/column."""
    h, w = src.shape[:2]
    h, w = (h - h % 2 if halve_y else h), (w - w % 2 if halve_x else w)
    size = (w // 2 if halve_x else w, h // 2 if halve_y else h)
    src = src[:h, :w]
    # INTER_AREA's factor-2 path is vectorised for 2x2 only; INTER_LINEAR at an exact 2x is the same mean
    interp = cv2.INTER_AREA if (halve_x and halve_y) else cv2.INTER_LINEAR
    return cv2.resize(src, size, interpolation=interp)


def _halving(src: np.ndarray, height: int, width: int, out: np.ndarray | None) -> np.ndarray:
    """Exact halvings while an axis is ≥ 2× its target (both axes together first), then bilinear."""
    while src.shape[0] >= 2 * height or src.shape[1] >= 2 * width:
        src = _halve(src, src.shape[0] >= 2 * height, src.shape[1] >= 2 * width)
    return _finish_linear(src, height, width, out)


def _finish_linear(src: np.ndarray, height: int, width: int, out: np.ndarray | None) -> np.ndarray:
    """Bilinear from ``src`` to (height, width) (a copy when the size already matches), into ``out`` if given."""
    if src.shape[:2] == (height, width):
        if out is None:
            return src
        out[...] = src
        return out
    if out is None:
        return cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)
    cv2.resize(src, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
    return out


def resize_image(img: np.ndarray, height: int, width: int, policy: str = "square",
                 out: np.ndarray | None = None, downscale: str = DEFAULT_DOWNSCALE) -> np.ndarray:
    """Resize uint8 (H, W, C) to (height, width, C) with ``policy``; writes into ``out`` when given.

    ``downscale`` (module docstring): ``halving``, ``box_linear`` or ``area`` when shrinking both
    axes; INTER_LINEAR otherwise. Raises ValueError for a bad ``out``, policy or method.
    """
    box = crop_box(img.shape[0], img.shape[1], height, width, policy)
    src = img[box.top:box.top + box.height, box.left:box.left + box.width]
    if out is not None and (out.shape != (height, width) + img.shape[2:] or out.dtype != img.dtype
                            or not out.flags.c_contiguous):
        raise ValueError(f"out must be a contiguous {img.dtype} array of shape {(height, width) + img.shape[2:]}, "
                         f"got {out.dtype} {out.shape}")
    if downscale not in DOWNSCALE_METHODS:
        raise ValueError(f"unknown downscale method {downscale!r}; expected one of {DOWNSCALE_METHODS}")
    place = placement(img.shape[0], img.shape[1], height, width, policy)
    if (place.height, place.width) != (height, width):
        inner = resize_image(src, place.height, place.width, "square", downscale=downscale)
        return _mirror_margins(inner, place, height, width, out)
    if src.shape[:2] == (height, width):
        if out is None:
            return np.ascontiguousarray(src)
        out[...] = src
        return out
    shrinking = box.height >= height and box.width >= width
    if shrinking and downscale == "halving":
        return _halving(src, height, width, out)
    if shrinking and downscale == "box_linear":
        return _box_linear(src, height, width, out)
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    if out is None:
        return cv2.resize(src, (width, height), interpolation=interp)
    cv2.resize(src, (width, height), dst=out, interpolation=interp)
    return out


def _resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask.copy()
    resized = cv2.resize(mask.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized.astype(bool)


def resize_mask(mask: np.ndarray, height: int, width: int, policy: str = "square") -> np.ndarray:
    """Resize a bool (H, W) mask with the same geometry as :func:`resize_image` (nearest)."""
    box = crop_box(mask.shape[0], mask.shape[1], height, width, policy)
    src = np.ascontiguousarray(mask[box.top:box.top + box.height, box.left:box.left + box.width], dtype=bool)
    place = placement(mask.shape[0], mask.shape[1], height, width, policy)
    if (place.height, place.width) != (height, width):  # the margins mirror the image, defects included
        inner = _resize_nearest(src, place.height, place.width).view(np.uint8)
        return _mirror_margins(inner, place, height, width, None).astype(bool)
    return _resize_nearest(src, height, width)


def map_to_frame(map_hw: np.ndarray, frame_h: int, frame_w: int, policy: str = "square") -> np.ndarray:
    """Map a (h, w) map in model coordinates back onto the original (frame_h, frame_w) frame.

    The inverse of :func:`resize_image`'s geometry: bilinear resize of the map onto
    the crop box; outside the crop (``shorter_side_crop``) the result is 0, and a
    letterbox's margins are dropped.
    """
    h, w = map_hw.shape[:2]
    box = crop_box(frame_h, frame_w, h, w, policy)
    place = placement(frame_h, frame_w, h, w, policy)
    src = np.asarray(map_hw, dtype=np.float32)[place.top:place.top + place.height, place.left:place.left + place.width]
    h, w = place.height, place.width
    if (box.height, box.width) == (h, w):
        inner = src.copy()
    else:
        inner = cv2.resize(src, (box.width, box.height), interpolation=cv2.INTER_LINEAR)
    if (box.height, box.width) == (frame_h, frame_w):
        return inner
    frame = np.zeros((frame_h, frame_w), dtype=np.float32)
    frame[box.top:box.top + box.height, box.left:box.left + box.width] = inner
    return frame
