"""Rarer image layouts give the model the same pixels on every path, and the pixels a reference decoding gives.

Each case writes one file (bytes built here where no library writes the layout: interlaced and low-depth PNGs,
tRNS, bit-field BMPs, signed and float TIFFs) with its expected RGB pixels, and checks them through the dataset
loader (train / evaluate), ``predict``'s loader, calibration's loader and the daemon's folder camera, with a model
input of the picture's own size (no resize: the pixels themselves are compared). The rules are those of
:mod:`inspector.data.images` (alpha dropped, no colour management, integer data scaled from its full scale,
signed data 0 = black, MinIsWhite inverted at every sample type).
"""

from __future__ import annotations

import io
import logging
import os
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from inspector.backends.base import InputSpec
from inspector.commands.predict import _batches
from inspector.data.datasets import Sample, load_batch
from inspector.data.images import decode_image, read_image
from inspector.errors import DataError
from inspector.evaluation.calibrate import score_samples
from inspector.pipeline.config import CameraSection
from inspector.pipeline.preprocess import Preprocessor
from inspector.pipeline.sources import FolderSource
from picture_support import RecordingBackend

H, W = 24, 32
SPEC = InputSpec(height=H, width=W, resize="square")  # the picture's own size: no resize on any path


def _picture() -> np.ndarray:
    """RGB uint8 (H, W, 3): colour ramps and an asymmetric red mark (a flip, swap or inversion would show)."""
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 255 // (W - 1), yy * 255 // (H - 1), (xx + yy) * 255 // (H + W - 2)], axis=2)
    rgb[2:7, 3:15] = (230, 40, 40)
    return rgb.astype(np.uint8)


RGB = _picture()
GREY = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)
GREY3 = np.dstack([GREY] * 3)
RAMP = (np.arange(H * W).reshape(H, W) * 255 // (H * W)).astype(np.uint8)  # a varying alpha


def _scaled(values: np.ndarray, top: int) -> np.ndarray:
    """``values`` (0..top) → uint8 by the decoder's rounding rule (images.to_uint8)."""
    return ((values.astype(np.int64) * 255 + top // 2) // top).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- PNG
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _packed_rows(samples: np.ndarray, depth: int, dtype: str = ">u1") -> list[bytes]:
    """Rows of (h, w[, c]) samples as PNG stores them: 1/2/4-bit ones packed MSB first, wider ones big-endian."""
    if depth >= 8:
        return [row.astype(dtype).tobytes() for row in samples]
    per = 8 // depth
    packed = np.zeros((samples.shape[0], (samples.shape[1] * depth + 7) // 8), np.uint8)
    for x in range(samples.shape[1]):
        packed[:, x // per] |= (samples[:, x].astype(np.uint8) << (8 - depth * (x % per + 1))).astype(np.uint8)
    return [row.tobytes() for row in packed]


# the seven Adam7 passes: first column, first row, column step, row step (PNG spec §8.2)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png(samples: np.ndarray, depth: int, colour_type: int, extra: bytes = b"", interlace: bool = False) -> bytes:
    """A PNG of ``samples`` (H, W[, C]), filter 0 on every row; Adam7 passes when ``interlace`` (PNG spec §8.2)."""
    dtype = ">u2" if depth == 16 else ">u1"
    passes = [samples[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7] if interlace else [samples]
    raw = b"".join(b"\x00" + row for sub in passes if sub.size for row in _packed_rows(sub, depth, dtype))
    ihdr = struct.pack(">IIBBBBB", W, H, depth, colour_type, 0, 0, int(interlace))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _low_depth_grey(depth: int, interlace: bool = False) -> tuple[bytes, np.ndarray]:
    top = (1 << depth) - 1
    levels = (GREY.astype(int) * top + 127) // 255
    return _png(levels, depth, 0, interlace=interlace), np.dstack([_scaled(levels, top)] * 3)


def _palette_trns(depth: int) -> tuple[bytes, np.ndarray]:
    """A palette PNG whose tRNS makes some entries transparent, some half: the entries' colours are the pixels."""
    count = 1 << min(depth, 5)
    palette = np.array([((i * 97) % 256, (255 - i * 13) % 256, (i * 53) % 256) for i in range(count)], np.uint8)
    index = (GREY.astype(int) * count // 256).astype(np.uint8)
    extra = _chunk(b"PLTE", palette.tobytes()) + _chunk(b"tRNS", bytes([0, 128, 255, 60]))
    return _png(index, depth, 3, extra), palette[index]


def _sbit10(msb_aligned: bool) -> tuple[bytes, np.ndarray]:
    """10-bit colour in a 16-bit PNG with sBIT 10: low-justified (cameras) or shifted up (PNG spec §12.4)."""
    ten = (RGB.astype(np.int64) * 1023 + 127) // 255
    if msb_aligned:
        stored = (ten << 6) | (ten >> 4)
        return _png(stored, 16, 2, _chunk(b"sBIT", b"\x0a\x0a\x0a")), _scaled(stored, 65535)
    return _png(ten, 16, 2, _chunk(b"sBIT", b"\x0a\x0a\x0a")), _scaled(ten, 1023)


def _colour_managed_png() -> tuple[bytes, np.ndarray]:
    """gAMA 0.45 and a Lab iCCP profile: ignored, the stored values are the pixels."""
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, format="PNG", icc_profile=lab)
    png = buf.getvalue()
    end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    return png[:end] + _chunk(b"gAMA", struct.pack(">I", 45455)) + png[end:], RGB


# ----------------------------------------------------------------------------------------------- JPEG
def _jpeg(**kw) -> tuple[bytes, np.ndarray]:
    buf = io.BytesIO()
    Image.fromarray(RGB).convert(kw.pop("mode", "RGB")).save(buf, format="JPEG", quality=100, subsampling=0, **kw)
    return buf.getvalue(), RGB


def _ycck_jpeg() -> tuple[bytes, np.ndarray]:
    """An Adobe YCCK JPEG (APP14 transform 2, Photoshop's CMYK): C, M, Y stored as YCbCr, all four inverted.
    Written as Pillow's (inverted) CMYK JPEG of those components, its transform flag then set to 2."""
    ink = 60  # a flat layer of black ink: R = (255 - C) * (255 - K) / 255 with C = 255 - R0
    cmy_as_ycc = cv2.cvtColor(255 - RGB, cv2.COLOR_RGB2YCrCb)[..., [0, 2, 1]]
    stored = np.dstack([cmy_as_ycc, np.full((H, W), 255 - ink, np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(255 - stored, "CMYK").save(buf, format="JPEG", quality=100, subsampling=0)
    data = bytearray(buf.getvalue())
    adobe = data.index(b"Adobe")
    data[adobe + 11] = 2
    return bytes(data), (RGB.astype(int) * (255 - ink) // 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- BMP
def _bmp(pixels: np.ndarray, bits: int, masks: tuple[int, ...] | None, header: int = 40,
         top_down: bool = False) -> bytes:
    """An uncompressed 16/32-bit BMP of ``pixels`` (H, W) packed words: BI_RGB without ``masks``, else
    BI_BITFIELDS with the masks after a 40-byte header or inside a V4 (108) / V5 (124) one."""
    stride = (W * bits + 31) // 32 * 4
    rows = [row.astype("<u2" if bits == 16 else "<u4").tobytes().ljust(stride, b"\x00") for row in pixels]
    data = b"".join(rows if top_down else rows[::-1])
    info = struct.pack("<IiiHHIIiiII", header, W, -H if top_down else H, 1, bits, 3 if masks else 0, len(data),
                       2835, 2835, 0, 0)
    if masks and header == 40:
        info += struct.pack("<3I", *masks[:3])
    elif header > 40:
        info += struct.pack("<4I", *(masks or (0, 0, 0, 0))) + b"\x00" * (header - 56)
    offset = 14 + len(info)
    return struct.pack("<2sIHHI", b"BM", offset + len(data), 0, 0, offset) + info + data


def _bmp_fields(widths: tuple[int, int, int], header: int = 40, top_down: bool = False,
                mask_order: str = "RGB") -> tuple[bytes, np.ndarray]:
    """RGB in bit fields of ``widths`` bits (5-6-5, 5-5-5, 8-8-8 …), red highest unless ``mask_order``
    says otherwise; the expected pixels are each field scaled from its full scale."""
    levels = [(RGB[..., c].astype(np.int64) * ((1 << n) - 1) + 127) // 255 for c, n in enumerate(widths)]
    shifts, at = {}, 0
    for c in reversed(range(3)):  # the last channel of mask_order lowest
        shifts["RGB".index(mask_order[c])] = at
        at += widths["RGB".index(mask_order[c])]
    packed = sum(levels[c] << shifts[c] for c in range(3))
    bits = 16 if at <= 16 else 32
    masks = tuple(((1 << widths[c]) - 1) << shifts[c] for c in range(3)) + ((0xFF << at) if at == 24 else 0,)
    default555 = bits == 16 and widths == (5, 5, 5) and mask_order == "RGB" and header == 40
    body = _bmp(packed, bits, None if default555 else masks, header, top_down)
    return body, np.dstack([_scaled(level, (1 << n) - 1) for level, n in zip(levels, widths)])


# ----------------------------------------------------------------------------------------------- TIFF
def _tiff(samples: np.ndarray, photometric: int, sample_format: int) -> bytes:
    """An uncompressed little-endian one-strip grey TIFF of ``samples`` (H, W) with PhotometricInterpretation
    ``photometric`` (0 MinIsWhite, 1 MinIsBlack) and SampleFormat ``sample_format`` (1 uint, 2 int, 3 float)."""
    data = samples.astype(samples.dtype.newbyteorder("<")).tobytes()
    tags = [(256, 3, W), (257, 3, H), (258, 3, samples.dtype.itemsize * 8), (259, 3, 1), (262, 3, photometric),
            (273, 4, 0), (277, 3, 1), (278, 3, H), (279, 4, len(data)), (339, 3, sample_format)]
    ifd_size = 2 + 12 * len(tags) + 4
    tags[5] = (273, 4, 8 + ifd_size)
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in tags) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd + data


def _strip(block: np.ndarray, compression: int, predictor: int) -> bytes:
    """One strip's bytes: ``block`` (rows, W, samples) little-endian, horizontally differenced (Predictor 2,
    each sample against the one before it in its row, modulo its word) and Deflate-compressed (8) if asked."""
    if predictor == 2:
        block = block.copy()
        block[:, 1:] = block[:, 1:] - block[:, :-1]  # unsigned wrap-around, as TIFF 6.0 Section 14 says
    if predictor == 3:  # floating point (Adobe TIFF Technical Note 3): byte planes, most significant first, differenced
        rows, width, samples = block.shape
        size = block.dtype.itemsize
        words = block.astype(block.dtype.newbyteorder(">")).view(np.uint8).reshape(rows, width * samples, size)
        planes = np.ascontiguousarray(words.transpose(0, 2, 1)).reshape(rows, -1)
        planes[:, samples:] = planes[:, samples:] - planes[:, :-samples]  # from the original bytes, modulo 256
        return zlib.compress(planes.tobytes()) if compression == 8 else planes.tobytes()
    data = block.astype(block.dtype.newbyteorder("<")).tobytes()
    return zlib.compress(data) if compression == 8 else data


def _tiff_page(samples: np.ndarray, photometric: int, sample_format: int, planar: bool, compression: int = 1,
               predictor: int = 1, rows: int = 8, extra: tuple[int, ...] | None = None) -> bytes:
    """A little-endian TIFF of ``samples`` (H, W, C) with strips of ``rows`` rows, interleaved or one plane per
    sample (PlanarConfiguration 2), uncompressed or Deflate, with or without Predictor 2; written here
    because neither OpenCV nor Pillow writes planar or float16 pages. ``extra``: its ExtraSamples values (default:
    one unassociated alpha for 4 samples, none else)."""
    h, w, c = samples.shape
    planes = [samples[:, :, [k]] for k in range(c)] if planar else [samples]
    strips = [_strip(p[y:y + rows], compression, predictor) for p in planes for y in range(0, h, rows)]
    values = {256: (4, [w]), 257: (4, [h]), 258: (3, [samples.dtype.itemsize * 8] * c), 259: (3, [compression]),
              262: (3, [photometric]), 273: (4, [0] * len(strips)), 277: (3, [c]), 278: (4, [rows]),
              279: (4, [len(b) for b in strips]), 284: (3, [2 if planar else 1]), 317: (3, [predictor]),
              339: (3, [sample_format] * c)}
    extra = ((2,) if c == 4 else ()) if extra is None else extra
    if extra:
        values[338] = (3, list(extra))  # 2: unassociated alpha
    extra_at = 8 + 2 + 12 * len(values) + 4
    out_of_line = {tag: v for tag, v in values.items() if len(v[1]) * (2 if v[0] == 3 else 4) > 4}
    data_at = extra_at + sum(len(v[1]) * (2 if v[0] == 3 else 4) for v in out_of_line.values())
    values[273] = (4, list(np.cumsum([data_at] + [len(b) for b in strips[:-1]])))
    ifd, extra = struct.pack("<H", len(values)), b""
    for tag, (kind, vals) in sorted(values.items()):
        packed = struct.pack(f"<{len(vals)}{'H' if kind == 3 else 'I'}", *map(int, vals))
        if len(packed) <= 4:
            ifd += struct.pack("<HHI", tag, kind, len(vals)) + packed.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHII", tag, kind, len(vals), extra_at + len(extra))
            extra += packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + extra + b"".join(strips)


RGB16 = RGB.astype(np.uint16) * 256 + np.arange(W, dtype=np.uint16)[:, None]  # low bits that vary along rows
RGB_FLOAT = RGB.astype(np.float32) / 255
GREY_OF_RED = np.dstack([RGB[:, :, 0]] * 3)


def _planar_cases() -> dict:
    """Separate planes (16-bit, float32, 8-bit, with alpha, compressed and differenced) and float16 pages: OpenCV
    interleaved the 16-bit and float32 planes wrongly, refused 8-bit ones and every float16 page."""
    rgba16 = np.dstack([RGB16, RAMP.astype(np.uint16) * 257])
    return {
        "planar_rgb16.tif": lambda: (_tiff_page(RGB16, 2, 1, True), _scaled(RGB16, 65535), True),
        "planar_rgb16_deflate_pred.tif": lambda: (_tiff_page(RGB16, 2, 1, True, 8, 2), _scaled(RGB16, 65535), True),
        "planar_rgba16.tif": lambda: (_tiff_page(rgba16, 2, 1, True), _scaled(RGB16, 65535), True),
        "planar_rgb8.tif": lambda: (_tiff_page(RGB, 2, 1, True), RGB, True),
        "planar_float32.tif": lambda: (_tiff_page(RGB_FLOAT, 2, 3, True), RGB, True),
        "planar_float16.tif": lambda: (_tiff_page(RGB_FLOAT.astype(np.float16), 2, 3, True), RGB, True),
        "float16_rgb.tif": lambda: (_tiff_page(RGB_FLOAT.astype(np.float16), 2, 3, False, 8), RGB, True),
        "float16_grey.tif": lambda: (_tiff_page(GREY[:, :, None].astype(np.float16) / 255, 1, 3, False), GREY3,
                                     True),
    }


TWELVE = (GREY.astype(np.int64) * 4095 + 127) // 255  # 12-bit camera data
SIGNED = GREY.astype(np.int16) * 128  # 0..32640 of int16's 0..32767
SIGNED_PIXELS = np.dstack([_scaled(SIGNED, 32767)] * 3)

# name → (encoded file, expected RGB pixels, lossless)
CASES = {
    "adam7_rgb8.png": lambda: (_png(RGB, 8, 2, interlace=True), RGB, True),
    "adam7_grey16.png": lambda: (_png(GREY.astype(np.uint16) * 257, 16, 0, interlace=True), GREY3, True),
    "grey_1bit.png": lambda: (*_low_depth_grey(1), True),
    "grey_2bit.png": lambda: (*_low_depth_grey(2), True),
    "grey_4bit.png": lambda: (*_low_depth_grey(4), True),
    "grey_4bit_adam7.png": lambda: (*_low_depth_grey(4, interlace=True), True),
    "grey16_alpha.png": lambda: (_png(np.dstack([GREY, RAMP]).astype(np.uint16) * 257, 16, 4), GREY3, True),
    "rgba16_alpha.png": lambda: (_png(np.dstack([RGB, RAMP]).astype(np.uint16) * 257, 16, 6), RGB, True),
    "palette8_trns.png": lambda: (*_palette_trns(8), True),
    "palette4_trns.png": lambda: (*_palette_trns(4), True),
    "rgb16_sbit10_low.png": lambda: (*_sbit10(msb_aligned=False), True),
    "rgb16_sbit10_msb.png": lambda: (*_sbit10(msb_aligned=True), True),
    "gama_iccp.png": lambda: (*_colour_managed_png(), True),
    "progressive.jpg": lambda: (*_jpeg(progressive=True), False),
    "cmyk_adobe.jpg": lambda: (*_jpeg(mode="CMYK"), False),
    "ycck_adobe.jpg": lambda: (*_ycck_jpeg(), False),
    "rgb565.bmp": lambda: (*_bmp_fields((5, 6, 5)), True),
    "rgb565_v5header.bmp": lambda: (*_bmp_fields((5, 6, 5), header=124), True),
    "rgb565_topdown.bmp": lambda: (*_bmp_fields((5, 6, 5), top_down=True), True),
    "rgb555_default.bmp": lambda: (*_bmp_fields((5, 5, 5)), True),
    "bgra32_v4header.bmp": lambda: (*_bmp_fields((8, 8, 8), header=108), True),
    "rgba32_bitfields.bmp": lambda: (*_bmp_fields((8, 8, 8), mask_order="BGR"), True),
    "rgb101010_bitfields.bmp": lambda: (*_bmp_fields((10, 10, 10)), True),
    "int16_positive.tif": lambda: (_tiff(SIGNED, 1, 2), SIGNED_PIXELS, True),
    "float_miniswhite.tif": lambda: (_tiff(1 - GREY.astype(np.float32) / 255, 0, 3), GREY3, True),
    "float255_miniswhite.tif": lambda: (_tiff(255 - GREY.astype(np.float32), 0, 3), GREY3, True),
    "int16_miniswhite.tif": lambda: (_tiff(32767 - SIGNED, 0, 2), SIGNED_PIXELS, True),
}
CASES.update(_planar_cases())
# the floating-point Predictor (3): what tifffile writes for float data with predictor=True. float16 pages with it
# were refused as "corrupt or unsupported format" (their uint16 words take no floating-point predictor in libtiff),
# and so were float32 pages with alpha ("Predictor 3 with 4 samples a pixel is not read")
_RGB16F, _RGBA32F = RGB_FLOAT.astype(np.float16), np.dstack([RGB_FLOAT, RAMP / 255]).astype(np.float32)
# RGB + near infrared + alpha (a multispectral camera's): OpenCV refused every depth, "corrupt or unsupported format"
_RGB_NIR_ALPHA = np.dstack([RGB, 255 - RAMP, RAMP])
CASES.update({
    "rgb_nir_alpha8.tif": lambda: (_tiff_page(_RGB_NIR_ALPHA, 2, 1, False, extra=(0, 2)), RGB, True),
    "rgb_nir_alpha16_deflate_pred.tif": lambda: (_tiff_page(_RGB_NIR_ALPHA.astype(np.uint16) * 257, 2, 1, False, 8, 2,
                                                            extra=(0, 2)), RGB, True),
})
CASES.update({
    "float16_rgb_fpredictor.tif": lambda: (_tiff_page(_RGB16F, 2, 3, False, 8, 3, extra=()), RGB, True),
    "float16_grey_fpredictor.tif": lambda: (_tiff_page(_RGB16F[:, :, :1], 1, 3, False, 8, 3), GREY_OF_RED, True),
    "planar_float16_fpredictor.tif": lambda: (_tiff_page(_RGB16F, 2, 3, True, 8, 3, extra=()), RGB, True),
    "float32_rgba_fpredictor.tif": lambda: (_tiff_page(_RGBA32F, 2, 3, False, 8, 3), RGB, True),
    "float16_grey_alpha_fpredictor.tif": lambda: (_tiff_page(_RGBA32F[:, :, ::3].astype(np.float16), 1, 3, False, 8, 3,
                                                             extra=(2,)), GREY_OF_RED, True),
})


def _recording_backend():
    return RecordingBackend(SPEC)


def _every_path(path: Path, bit_depth: int | None = None) -> dict[str, np.ndarray]:
    """The model input (H, W, 3) RGB the dataset loader, predict, calibration and the daemon's folder camera
    give for the one image file ``path`` (alone in its folder)."""
    sample = Sample(path, 0, "good")
    batch, kept, skipped = load_batch([sample], H, W, "square", bit_depth=bit_depth)
    assert not skipped, skipped
    errors: list[str] = []
    spec = InputSpec(height=H, width=W, resize="square", bit_depth=bit_depth)
    predicted = [img for _, images in _batches([path], spec, 4, errors) for img in images]
    assert not errors, errors
    backend = _recording_backend()
    backend.input_spec = spec
    score_samples(backend, [sample], batch_size=4)
    source = FolderSource(CameraSection(name="layouts", source=str(path.parent), bit_depth=bit_depth))
    source.open()
    grabbed = source.read()
    source.close()
    assert grabbed is not None and grabbed.image is not None, grabbed and grabbed.error
    daemon = np.empty((H, W, 3), np.uint8)
    Preprocessor(spec, "square").into(grabbed.image, daemon, "layouts")
    return {"dataset": batch[0], "predict": predicted[0], "calibration": backend.seen[0], "daemon": daemon}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_rare_layout_gives_its_pixels_on_every_path(tmp_path, name):
    """Before: a 16-bit BMP came out up to 7 levels dark (white 248/252/248) and one with a V5 header was
    refused; a 32-bit BMP's masks after a 40-byte header were ignored (red and blue swapped); a float
    MinIsWhite TIFF came out as its negative; signed 16-bit TIFFs were refused on every path."""
    encoded, want, lossless = CASES[name]()
    (tmp_path / name).write_bytes(encoded)
    seen = _every_path(tmp_path / name)
    for path_name, got in seen.items():
        assert np.array_equal(got, seen["dataset"]), f"{name}: {path_name} differs from the dataset loader"
    diff = np.abs(seen["dataset"].astype(int) - want.astype(int))
    if lossless:
        assert diff.max() == 0, f"{name}: max {diff.max()} mean {diff.mean():.2f} levels off its pixels"
    else:  # JPEG error only, never a swap, inversion or rescaling
        assert diff.mean() <= 2 and diff.max() <= 12, f"{name}: max {diff.max()} mean {diff.mean():.2f}"
    if not lossless:
        reference = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))  # libjpeg via Pillow
        assert np.abs(seen["dataset"].astype(int) - reference).max() <= 3, f"{name}: off Pillow's decoding"


def test_signed_twelve_bit_data_reads_as_its_unsigned_copy(tmp_path):
    """12-bit camera data stored as int16 (LabVIEW's I16, a numpy int16 array) gives what the same data
    stored unsigned gives, with the same ``bit_depth`` setting, on every path."""
    (tmp_path / "signed").mkdir()
    (tmp_path / "unsigned").mkdir()
    (tmp_path / "signed" / "i16.tif").write_bytes(_tiff(TWELVE.astype(np.int16), 1, 2))
    (tmp_path / "unsigned" / "u16.tif").write_bytes(_tiff(TWELVE.astype(np.uint16), 1, 1))
    signed = _every_path(tmp_path / "signed" / "i16.tif", bit_depth=12)
    unsigned = _every_path(tmp_path / "unsigned" / "u16.tif", bit_depth=12)
    for path_name in signed:
        assert np.array_equal(signed[path_name], unsigned[path_name]), path_name
        assert np.array_equal(signed[path_name], np.dstack([_scaled(TWELVE, 4095)] * 3)), path_name


def test_negative_signed_samples_read_as_black_with_a_warning(tmp_path, caplog):
    """Samples below 0 are below black: 0 on every path, told once per source."""
    values = GREY.astype(np.int16) * 128 - 8192  # the darkest third negative
    (tmp_path / "negative.tif").write_bytes(_tiff(values, 1, 2))
    with caplog.at_level(logging.WARNING):
        seen = _every_path(tmp_path / "negative.tif")
    want = np.dstack([_scaled(np.maximum(values, 0), 32767)] * 3)
    for path_name, got in seen.items():
        assert np.array_equal(got, want), path_name
    assert any("below 0" in r.getMessage() and "negative.tif" in r.getMessage() for r in caplog.records)
    assert np.array_equal(read_image(tmp_path / "negative.tif"), want)


@pytest.mark.parametrize("damage", ["cut_short", "split_mask"])
def test_a_damaged_bit_field_bmp_is_one_line_on_every_path(tmp_path, damage):
    """A bit-field BMP whose pixel array is cut short, or whose mask is not one run of bits, is refused in one
    line naming the file, by the offline decoder and the daemon's folder camera alike (never garbage)."""
    encoded, _ = _bmp_fields((5, 6, 5))
    if damage == "cut_short":
        encoded = encoded[:-100]
    else:  # the green mask 0x07E0 → 0x0760: a hole in it
        at = encoded.index(struct.pack("<I", 0x07E0))
        encoded = encoded[:at] + struct.pack("<I", 0x0760) + encoded[at + 4:]
    path = tmp_path / f"{damage}.bmp"
    path.write_bytes(encoded)
    os.utime(path, (time.time() - 600, time.time() - 600))  # settled: not a file still being written
    with pytest.raises(DataError, match=rf"^{path}: cannot decode image \(corrupt or unsupported bit-field BMP\)$"):
        read_image(path)
    source = FolderSource(CameraSection(name="layouts", source=str(tmp_path)))
    source.open()
    grabbed = source.read()
    source.close()
    assert grabbed.image is None and grabbed.reason == "corrupt" and "bit-field BMP" in grabbed.error


@pytest.mark.parametrize("name", sorted(_planar_cases()))
def test_a_planar_or_float16_tiff_gives_what_tifffile_reads(tmp_path, name):
    """The same files read by an independent TIFF reader (tifffile, where installed: not a dependency), scaled by
    the decoder's rule: the writer here makes what it says, and the decoder reads what the file holds."""
    tifffile = pytest.importorskip("tifffile")
    encoded, want, _ = _planar_cases()[name]()
    (tmp_path / name).write_bytes(encoded)
    stored = tifffile.imread(tmp_path / name)
    stored = np.moveaxis(stored, 0, -1) if stored.ndim == 3 and stored.shape[0] < 5 else stored
    stored = np.dstack([stored] * 3) if stored.ndim == 2 else stored[:, :, :3]
    scaled = (np.clip(stored.astype(np.float64) * 255 + 0.5, 0, 255).astype(np.uint8) if stored.dtype.kind == "f"
              else _scaled(stored, np.iinfo(stored.dtype).max))
    assert np.array_equal(scaled, want)
    assert np.array_equal(read_image(tmp_path / name), want)


@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
def test_32_bit_integer_samples_are_read_by_the_bit_depth_setting_else_refused_in_one_line(tmp_path, dtype):
    """12-bit camera data stored as 32-bit integers (LabVIEW U32/I32, numpy arrays saved as they are): with
    ``bit_depth: 12`` exactly what its uint16 copy gives on every path; without it one line naming the file and
    the setting to give, on the offline decoder and the daemon's folder camera (it was "unsupported pixel type
    uint32", naming no cure)."""
    (tmp_path / "wide").mkdir()
    (tmp_path / "wide" / "u32.tif").write_bytes(_tiff(TWELVE.astype(dtype), 1, 2 if dtype == np.int32 else 1))
    got = _every_path(tmp_path / "wide" / "u32.tif", bit_depth=12)
    for path_name, pixels in got.items():
        assert np.array_equal(pixels, np.dstack([_scaled(TWELVE, 4095)] * 3)), path_name
    path = tmp_path / "wide" / "u32.tif"
    with pytest.raises(DataError, match=rf"^{path}: {np.dtype(dtype).name} samples \(32-bit integers\) say nothing "
                                        r"of their depth; set bit_depth to the camera's significant bits .* to read "
                                        r"them: data.bit_depth when training .*, a camera's bit_depth in the daemon"):
        read_image(path)
    os.utime(path, (time.time() - 600, time.time() - 600))  # settled: not a file still being written
    source = FolderSource(CameraSection(name="layouts", source=str(path.parent)))
    source.open()
    grabbed = source.read()
    source.close()
    assert grabbed.image is None and grabbed.reason == "rejected.dtype" and "set bit_depth" in grabbed.error
    assert "\n" not in grabbed.error


@pytest.mark.parametrize("name", ["planar_rgb16_deflate_pred.tif", "planar_float16.tif", "float16_rgb.tif"])
def test_a_damaged_planar_or_float16_tiff_is_pixels_or_one_line(name):
    """A bounded fuzz: 1-3 bytes of the header, IFD and tag values set at random, a third of the files also cut
    short. Each is pixels or one line (DataError); a damaged tag type (bytes where numbers were) raised a bare
    ValueError from the tag reader before."""
    good = _planar_cases()[name]()[0]
    rng = np.random.default_rng(3)
    for trial in range(150):
        bad = bytearray(good)
        for at in rng.integers(0, 300, rng.integers(1, 4)):
            bad[at] = int(rng.integers(0, 256))
        if trial % 3 == 0:
            bad = bad[:int(rng.integers(8, len(bad)))]
        _pixels_or_one_line(bytes(bad), name)
    for entry in range(struct.unpack_from("<H", good, 8)[0]):  # each tag's type made UNDEFINED (bytes)
        bad = bytearray(good)
        struct.pack_into("<H", bad, 8 + 2 + 12 * entry + 2, 7)
        _pixels_or_one_line(bytes(bad), name)


def _pixels_or_one_line(encoded: bytes, name: str) -> None:
    """The decoder gives uint8 (H, W, 3) pixels for ``encoded``, or raises one line naming it."""
    try:
        pixels = decode_image(encoded, name)
    except DataError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(name), str(exc)
        return
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
