"""Camera and video frames that OpenCV's capture backends would cut to 8 bits, read as the image decoder reads them.

By default ``cv2.VideoCapture`` hands over every frame as 8-bit BGR. For samples wider than 8 bits that
conversion drops the low bits by the container's scale (65535), so 12-bit data in a 16-bit format comes out
0..16, the ``bit_depth`` setting is never applied and nothing warns, while the same frame saved as a 16-bit
PNG is scaled by :func:`inspector.data.images.to_uint8`. And a video whose frames are still pictures (Motion
JPEG, PNG or TIFF frames) is decoded by FFmpeg's own decoders: a Motion-JPEG frame came out up to 56 levels
off libjpeg's decoding of the same JPEG (chroma upsampling), which ``predict`` uses.

So these frames are taken before OpenCV converts them and go through the project's one decoder:

* **still-picture frames** (FFmpeg, any pixel format): the encoded packet (``CAP_PROP_FORMAT`` −1, OpenCV's
  raw stream mode) is a JPEG / PNG / TIFF file, decoded by :func:`inspector.data.images.decode_image`;
* **uncompressed wide samples** (FFmpeg ``rawvideo`` in a layout of :data:`FFMPEG_LAYOUTS`, keyed by the tag
  OpenCV reports as ``CAP_PROP_CODEC_PIXEL_FORMAT``, FFmpeg's libavcodec/raw.c): the packet is the frame's
  samples, unpacked here (big- or little-endian, RGB or BGR order);
* **V4L2 wide grey** (``Y16``, ``Y16_BE``, ``Y10``, ``Y12``, ``Y14``; the palette is ``CAP_PROP_FOURCC``): with
  ``CAP_PROP_CONVERT_RGB`` off OpenCV's V4L backend returns the buffer's bytes (1, bytesused), unpacked here.
  Converting, it kept only the high byte of Y16 (kernel docs: pixfmt-y16, pixfmt-y16-be).

A format that declares fewer significant bits than its container (``gray12le``, V4L2 ``Y12``) is scaled by
them, as a PNG's sBIT is; a 16-bit one by the camera's ``bit_depth``, else the container (with the decoder's
narrow-data warning). The result is what :func:`inspector.data.images.decode_image` gives: uint8 (H, W, 3) BGR.

Two more raw layouts are taken as packets because OpenCV's conversion (swscale) is not the project's rule:

* **packed 5/6-bit RGB** (``rgb565``/``bgr565``/``rgb555``/``bgr555``, either byte order: old capture cards,
  embedded cameras, VfW AVIs): each channel is scaled from its own full scale to 255, rounded, by
  :func:`inspector.data.images.unpack_bit_fields`, the rule of the same frame as a 16-bit BMP. swscale widens by
  repeating bits (up to 1 level off on 12 % of the pixels) and read ``rgb565be`` wrongly (247 levels off);
* **Bayer mosaics** (``bayer_rggb8`` … ``bayer_*16``, a machine-vision camera's raw frames recorded as they
  came): demosaiced by :func:`demosaic`, OpenCV's bilinear rule that the GenICam path
  (:mod:`inspector.integrations.pixel_formats`) applies to the same mosaic; swscale's own demosaicing was up to
  182 levels off it (edges, mean 7). A 16-bit mosaic is demosaiced at full depth, then scaled as any 16-bit frame.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from inspector.data.images import ImageRejected, decode_image, standardize_pixels, unpack_bit_fields


class Layout(NamedTuple):
    """How one frame's samples lie in memory: numpy dtype of one sample, channel order (``grey``, ``RGB``,
    ``BGR``, ``RGBA``, ``BGRA``; ``fields``: one packed word per pixel, ``mosaic``: a Bayer mosaic) and the
    significant bits the format declares (16: the container's, say nothing; 8 or less: an 8-bit format).
    ``filled``: a narrower declared depth was widened by FFmpeg to fill the container (bit replication,
    :mod:`inspector.pipeline.ffmpeg_frames`), so the container is the full scale whatever ``bit_depth`` says.
    ``masks``: a ``fields`` word's red, green and blue bits; ``block``: a ``mosaic``'s 2×2 block at (0, 0)."""

    dtype: str
    order: str
    bits: int = 16
    filled: bool = False
    masks: tuple[int, int, int] = (0, 0, 0)
    block: str = ""

    @property
    def channels(self) -> int:
        return 1 if self.order in ("grey", "fields", "mosaic") else len(self.order)


def _ff(tag: bytes) -> int:
    return int.from_bytes(tag, "little")


# FFmpeg's raw tags (libavcodec/raw.c, as avcodec_pix_fmt_to_codec_tag makes them) → layout
FFMPEG_LAYOUTS: dict[int, Layout] = {
    _ff(b"\x10\x001Y"): Layout(">u2", "grey"),            # gray16be
    _ff(b"Y1\x00\x10"): Layout("<u2", "grey"),            # gray16le
    _ff(b"Y1\x00\x0e"): Layout("<u2", "grey", 14),        # gray14le
    _ff(b"Y1\x00\x0c"): Layout("<u2", "grey", 12),        # gray12le
    _ff(b"\x0c\x001Y"): Layout(">u2", "grey", 12),        # gray12be
    _ff(b"Y1\x00\x0a"): Layout("<u2", "grey", 10),        # gray10le
    _ff(b"\x0a\x001Y"): Layout(">u2", "grey", 10),        # gray10be
    _ff(b"RGB0"): Layout("<u2", "RGB"),                   # rgb48le
    _ff(b"0RGB"): Layout(">u2", "RGB"),                   # rgb48be
    _ff(b"BGR0"): Layout("<u2", "BGR"),                   # bgr48le
    _ff(b"0BGR"): Layout(">u2", "BGR"),                   # bgr48be
    _ff(b"RBA@"): Layout("<u2", "RGBA"),                  # rgba64le
    _ff(b"@RBA"): Layout(">u2", "RGBA"),                  # rgba64be
    _ff(b"BRA@"): Layout("<u2", "BGRA"),                  # bgra64le
    _ff(b"@BRA"): Layout(">u2", "BGRA"),                  # bgra64be
}
GRAY16LE_TAG = _ff(b"Y1\x00\x10")  # the one wide format OpenCV's FFmpeg backend hands over as is (uint16)
_RGB565, _BGR565 = (0xF800, 0x07E0, 0x001F), (0x001F, 0x07E0, 0xF800)  # red, green, blue masks
_RGB555, _BGR555 = (0x7C00, 0x03E0, 0x001F), (0x001F, 0x03E0, 0x7C00)
for _name, _masks in (("RGB", _RGB565), ("BGR", _BGR565)):  # raw.c: 'RGB'/'BGR' + bits per pixel; BE reversed
    for _bits, _m in ((16, _masks), (15, _RGB555 if _name == "RGB" else _BGR555)):
        _tag = _name.encode() + bytes([_bits])
        FFMPEG_LAYOUTS[_ff(_tag)] = Layout("<u2", "fields", 8, masks=_m)
        FFMPEG_LAYOUTS[_ff(_tag[::-1])] = Layout(">u2", "fields", 8, masks=_m)
for _block in ("RGGB", "BGGR", "GBRG", "GRBG"):  # raw.c: 0xBA + the block's first row + bits (BE reversed)
    _tag = b"\xba" + _block[:2].encode()
    FFMPEG_LAYOUTS[_ff(_tag + b"\x08")] = Layout("u1", "mosaic", 8, block=_block)
    FFMPEG_LAYOUTS[_ff(_tag + b"\x10")] = Layout("<u2", "mosaic", block=_block)
    FFMPEG_LAYOUTS[_ff((_tag + b"\x10")[::-1])] = Layout(">u2", "mosaic", block=_block)

# a mosaic's 2×2 block at row 0, column 0 → OpenCV's demosaicing code named by the same block (its older names,
# COLOR_BayerBG2BGR for the same code, name the block at (1, 1)); the GenICam path's rule too
BAYER_CODES = {"RGGB": cv2.COLOR_BayerRGGB2BGR, "BGGR": cv2.COLOR_BayerBGGR2BGR, "GBRG": cv2.COLOR_BayerGBRG2BGR,
               "GRBG": cv2.COLOR_BayerGRBG2BGR}


def demosaic(mosaic: np.ndarray, block: str) -> np.ndarray:
    """A Bayer mosaic, uint8 or uint16 (H, W), whose 2×2 block at (0, 0) is ``block`` (``RGGB`` …) → (H, W, 3)
    BGR of the same dtype: OpenCV's bilinear demosaicing, the project's one rule for raw sensor frames."""
    return cv2.cvtColor(np.ascontiguousarray(mosaic), BAYER_CODES[block])


def _v4l2(code: bytes, big_endian: bool = False) -> int:
    """videodev2.h's v4l2_fourcc (v4l2_fourcc_be sets bit 31)."""
    return _ff(code) | (1 << 31 if big_endian else 0)


V4L2_LAYOUTS: dict[int, Layout] = {
    _v4l2(b"Y16 "): Layout("<u2", "grey"),
    _v4l2(b"Y16 ", big_endian=True): Layout(">u2", "grey"),
    _v4l2(b"Y14 "): Layout("<u2", "grey", 14),
    _v4l2(b"Y12 "): Layout("<u2", "grey", 12),
    _v4l2(b"Y10 "): Layout("<u2", "grey", 10),
}

# codec tags (CAP_PROP_FOURCC) of video codecs whose frames are still pictures OpenCV's image codecs read
# FFmpeg's text "video" codec (libavformat/tty.c, ANSI art): a text file FFmpeg cannot place otherwise (.txt,
# .log, .nfo, .asc …) is opened by its tty demuxer and drawn as pictures of characters (a text file as a camera
# gave 5 "frames" of its text). OpenCV's FOURCC for it is the codec's name, 'ansi' (no codec tag).
TEXT_CODECS = frozenset({_ff(b"ansi")})


def fourcc_text(code: int) -> str:
    """A FOURCC as its printable characters (``'ansi'``)."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in code.to_bytes(4, "little")).rstrip("?")


STILL_PICTURE_CODECS = frozenset(_ff(t) for t in (b"MJPG", b"mjpg", b"jpeg", b"AVRn", b"AVDJ", b"dmb1", b"MPNG",
                                                  b"png ", b"tiff", b"TIFF"))

# the first bytes of picture files OpenCV's image codecs read (their formats' specifications; imgcodecs'
# checkSignature): a packet so begun is tried as a picture however its container named the codec
PICTURE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+",
                 b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51", b"#?RADIANCE", b"#?RGBE", b"qoif")


def is_picture(packet: np.ndarray) -> bool:
    """Whether an encoded packet begins like a picture file (:data:`PICTURE_MAGIC`, or RIFF…WEBP)."""
    head = np.ascontiguousarray(packet).reshape(-1)[:16].view(np.uint8).tobytes()
    return head.startswith(PICTURE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def wide_bits(tag: int) -> int | None:
    """Bits per sample of an FFmpeg pixel-format tag wider than 8 bits (None: 8 bits or unknown).

    Beyond :data:`FFMPEG_LAYOUTS`, raw.c's planar high-depth tags: ``Y1``/``G3``/``G4``/``Y3``/``Y4`` + two
    bytes whose last is the depth (little-endian), or the same reversed (big-endian).
    """
    if tag in FFMPEG_LAYOUTS:
        return FFMPEG_LAYOUTS[tag].bits if FFMPEG_LAYOUTS[tag].bits > 8 else None
    raw = (tag & 0xFFFFFFFF).to_bytes(4, "little")
    for head, bits in ((raw[:2], raw[3]), (raw[2:][::-1], raw[0])):
        if head in (b"Y1", b"G3", b"G4", b"Y3", b"Y4") and 9 <= bits <= 16:
            return bits
    return None


def unpack_samples(data: np.ndarray, layout: Layout, width: int, height: int) -> np.ndarray | None:
    """A frame's raw bytes → uint16 (uint8 for 1-byte samples) (H, W) grey, words or mosaic, or (H, W, 3|4)
    BGR(A), native byte order; None when the byte count is not the frame's (rows may be padded, as V4L2's
    bytesperline allows)."""
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    size = np.dtype(layout.dtype).itemsize
    row = width * layout.channels * size
    if height <= 0 or width <= 0 or flat.size % height or flat.size // height < row or (flat.size // height) % size:
        return None
    stride = flat.size // height
    rows = flat.reshape(height, stride)[:, :row]
    samples = np.ascontiguousarray(rows).view(layout.dtype).astype(np.uint16 if size == 2 else np.uint8)
    samples = samples.reshape(height, width, layout.channels)
    if layout.order == "grey":
        return samples[:, :, 0]
    if layout.order.startswith("RGB"):  # to OpenCV's BGR(A), what the decoder's second half expects
        samples = samples[:, :, [2, 1, 0, 3][:layout.channels]]
    return np.ascontiguousarray(samples)


def decode_samples(data: np.ndarray, layout: Layout, width: int, height: int, where: str,
                   bit_depth: int | None, warn_key: str | None) -> np.ndarray:
    """Raw frame bytes → uint8 (H, W, 3) BGR by the decoder's rules (declared bits as a PNG's sBIT; packed
    words and mosaics as the module docstring says).

    Raises :class:`ImageRejected` (reason ``corrupt``) when the bytes are not one frame of ``layout``.
    """
    samples = unpack_samples(data, layout, width, height)
    if samples is None:
        raise ImageRejected(f"{where}: frame of {np.asarray(data).size} bytes is not {width}x{height} "
                            f"{layout.channels}x{8 * np.dtype(layout.dtype).itemsize}-bit samples", "corrupt")
    if layout.order == "fields":  # each channel by its own full scale: already 8-bit, as a 16-bit BMP's
        samples = unpack_bit_fields(samples, layout.masks)
    elif layout.order == "mosaic":
        samples = demosaic(samples, layout.block)
    full_scale = 65535 if layout.filled else (1 << layout.bits) - 1 if layout.bits < 16 else None
    return standardize_pixels(samples, where, bit_depth, "BGR", warn_key, full_scale)


def decode_picture(data: np.ndarray, where: str, bit_depth: int | None, warn_key: str | None) -> np.ndarray:
    """One still-picture packet (a JPEG, PNG, TIFF … file) → uint8 (H, W, 3) BGR, exactly as ``predict``
    decodes the same file; raises :class:`ImageRejected`."""
    return decode_image(np.ascontiguousarray(data).reshape(-1), where, bit_depth, "BGR", warn_key)
