"""Format corpus: one picture saved in many formats gives identical model input on every path.

Paths: the dataset loader (train / evaluate: ``load_batch``), ``predict``'s loader, calibration's
loader (``score_samples``), and the daemon's folder source, still-file camera and snapshot-URL camera (a real
HTTP server), each followed by its preprocessor.

"Identical" means:

* all four paths give **byte-identical** model input for a given file (always, lossy or not);
* a **lossless** file gives byte-identical model input to the reference PNG of the same picture;
* a **lossy** file (JPEG, CMYK JPEG, EXIF-rotated JPEG) is within a mean absolute difference of
  3 grey levels (max 60) of the reference: JPEG error only, never a rotation, a channel swap,
  an inversion or a rescaling.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inspector.backends.base import InputSpec
from inspector.evaluation.calibrate import score_samples
from inspector.commands.predict import _batches
from inspector.data.datasets import Sample, load_batch
from inspector.data.images import list_images, read_image, read_mask, resize_image
from inspector.errors import DataError
from inspector.pipeline.config import CameraSection
from inspector.pipeline.preprocess import FrameRejected, Preprocessor
from inspector.pipeline.sources import FolderSource, make_source
from picture_support import RecordingBackend, twelve_bit_picture

H, W = 48, 64  # stored picture (a multiple of the JPEG block size)
SPEC = InputSpec(height=40, width=56, resize="square")  # model input: every path resizes
POLICY = "square"


def _picture() -> np.ndarray:
    """RGB uint8 (H, W, 3): smooth colour ramps + an asymmetric mark (a rotation or flip would show)."""
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 255 // (W - 1), yy * 255 // (H - 1), (xx + yy) * 255 // (H + W - 2)], axis=2)
    rgb[4:14, 6:30] = (230, 40, 40)
    return rgb.astype(np.uint8)


def _with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """``png`` with a chunk ``kind`` holding ``data`` inserted right after IHDR (where sBIT and gAMA belong)."""
    end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    body = kind + data
    return png[:end] + struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body)) + png[end:]


def _with_sbit(png: bytes, bits: bytes) -> bytes:
    return _with_chunk(png, b"sBIT", bits)


def _bmp(indices: np.ndarray, palette: np.ndarray, bits: int) -> bytes:
    """A palette BMP (BITMAPINFOHEADER, 1 or 4 bits a pixel, uncompressed) of ``indices`` (H, W) into
    ``palette`` (N, 3) RGB, written here because Pillow writes neither depth with a palette of its own."""
    h, w = indices.shape
    per_byte = 8 // bits
    stride = (w * bits + 31) // 32 * 4  # rows padded to 4 bytes, stored bottom-up
    rows = np.zeros((h, stride), np.uint8)
    for x in range(w):
        rows[:, x // per_byte] |= (indices[:, x].astype(np.uint8) << (8 - bits * (x % per_byte + 1))).astype(np.uint8)
    pixels = rows[::-1].tobytes()
    table = b"".join(bytes((b, g, r, 0)) for r, g, b in palette.tolist())
    offset = 14 + 40 + len(table)
    head = struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bits, 0, len(pixels), 2835, 2835, len(palette), 0)
    return head + info + table + pixels


# 16 colours of a 4-bit BMP and 2 of a 1-bit one, none of them grey: a decoder that took the index as a grey
# level, or a 1-bit file as black and white, would show
PALETTE4 = np.array([(i * 17, 255 - i * 13, (i * 53) % 256) for i in range(16)], np.uint8)
PALETTE1 = np.array([(10, 20, 200), (250, 240, 5)], np.uint8)


def _save_pil(img: Image.Image, path: Path, **kw) -> None:
    img.save(path, **kw)


def _corpus(folder: Path) -> dict[str, tuple[str, bool]]:
    """Write the corpus; name → (reference key, lossless). References: rgb, grey, palette, binary."""
    rgb = _picture()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    pil = Image.fromarray(rgb)
    files: dict[str, tuple[str, bool]] = {}

    def add(name, ref, lossless=True):
        files[name] = (ref, lossless)

    cv2.imwrite(str(folder / "rgb.png"), bgr); add("rgb.png", "rgb")
    cv2.imwrite(str(folder / "UPPER.PNG"), bgr); add("UPPER.PNG", "rgb")
    cv2.imwrite(str(folder / "grey.png"), grey); add("grey.png", "grey")
    Image.fromarray(np.dstack([grey, np.full_like(grey, 90)]), "LA").save(folder / "grey_alpha.png")
    add("grey_alpha.png", "grey")
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([bgr, np.linspace(0, 255, H * W).reshape(H, W).astype(np.uint8)]))
    add("rgba.png", "rgb")
    pal = pil.quantize(64)
    pal.info["transparency"] = 0
    pal.save(folder / "palette_trns.png", transparency=0); add("palette_trns.png", "palette")
    cv2.imwrite(str(folder / "rgb16.png"), bgr.astype(np.uint16) * 257); add("rgb16.png", "rgb")
    cv2.imwrite(str(folder / "rgba16.png"), np.dstack([bgr, np.full_like(grey, 7)]).astype(np.uint16) * 257)
    add("rgba16.png", "rgb")
    ok, buf = cv2.imencode(".png", (grey.astype(np.uint32) * 4095 // 255).astype(np.uint16))
    (folder / "grey12_sbit.png").write_bytes(_with_sbit(buf.tobytes(), b"\x0c"))
    files["grey12_sbit.png"] = ("grey12", True)
    cv2.imwrite(str(folder / "rgb.bmp"), bgr); add("rgb.bmp", "rgb")
    cv2.imwrite(str(folder / "RGB.BMP"), bgr); add("RGB.BMP", "rgb")
    Image.fromarray(grey > 127).convert("1").save(folder / "binary.bmp"); add("binary.bmp", "binary")
    pil.save(folder / "lzw.tif", compression="tiff_lzw"); add("lzw.tif", "rgb")
    cv2.imwrite(str(folder / "rgb16.tiff"), bgr.astype(np.uint16) * 257); add("rgb16.tiff", "rgb")
    cv2.imwrite(str(folder / "float.tif"), bgr.astype(np.float32) / 255.0); add("float.tif", "rgb")
    pil.save(folder / "multipage.tif", save_all=True, append_images=[Image.fromarray(255 - rgb)])
    add("multipage.tif", "rgb")
    cv2.imwrite(str(folder / "plain.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]); add("plain.jpg", "rgb", False)
    cv2.imwrite(str(folder / "UPPER.JPG"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]); add("UPPER.JPG", "rgb", False)
    pil.convert("CMYK").save(folder / "cmyk.jpg", quality=95); add("cmyk.jpg", "rgb", False)
    # stored rotated a quarter turn; EXIF Orientation 6 says "rotate 90° clockwise to display"
    exif = Image.Exif()
    exif[0x0112] = 6
    pil.transpose(Image.Transpose.ROTATE_90).save(folder / "exif6.jpg", quality=95, exif=exif)
    add("exif6.jpg", "rgb", False)
    _still_formats(folder, pil, grey, add)
    return files


def _still_formats(folder: Path, pil: Image.Image, grey: np.ndarray, add) -> None:
    """Orientation outside JPEG, colour metadata the decoder ignores, palette BMPs, a 16-bit PGM."""
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x0112] = 6  # stored a quarter turn left: "rotate 90° clockwise to display"
    stored = pil.transpose(Image.Transpose.ROTATE_90)
    stored.save(folder / "exif6.tif", tiffinfo={0x0112: 6}); add("exif6.tif", "rgb")
    stored.save(folder / "exif6.webp", lossless=True, exif=exif); add("exif6.webp", "rgb")
    stored.save(folder / "exif6_exif_chunk.png", exif=exif); add("exif6_exif_chunk.png", "rgb")  # PNG eXIf
    # 4:4:4 so the mark's edges are not the chroma subsampling's error
    pil.save(folder / "progressive.jpg", quality=95, progressive=True, subsampling=0)
    add("progressive.jpg", "rgb", False)
    # stored values are used as they are (images.py "colour"): a Lab ICC profile or a gamma of 1.0 changes nothing
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    pil.save(folder / "icc.jpg", quality=95, subsampling=0, icc_profile=lab); add("icc.jpg", "rgb", False)
    pil.save(folder / "icc.png", icc_profile=lab); add("icc.png", "rgb")
    png = io.BytesIO()
    pil.save(png, format="PNG")
    (folder / "gamma1.png").write_bytes(_with_chunk(png.getvalue(), b"gAMA", struct.pack(">I", 100000)))
    add("gamma1.png", "rgb")
    (folder / "pal4.bmp").write_bytes(_bmp(grey // 16, PALETTE4, 4)); add("pal4.bmp", "pal4")
    (folder / "pal1.bmp").write_bytes(_bmp(grey > 127, PALETTE1, 1)); add("pal1.bmp", "pal1")
    (folder / "grey16.pgm").write_bytes(f"P5\n{W} {H}\n65535\n".encode() + (grey.astype(">u2") * 257).tobytes())
    add("grey16.pgm", "grey")
    # TIFF layouts OpenCV's libtiff path misreads (images._decode_tiff): alpha kept apart, white at 0
    Image.fromarray(np.dstack([np.asarray(pil), np.full_like(grey, 100)]), "RGBA").save(folder / "rgba_unassoc.tif")
    add("rgba_unassoc.tif", "rgb")
    Image.fromarray(65535 - grey.astype(np.uint16) * 257).save(folder / "grey16_miniswhite.tif", tiffinfo={262: 0})
    add("grey16_miniswhite.tif", "grey")
    # a 12-bit camera's float MinIsWhite page declaring its white (SMaxSampleValue 4095): read 4095 - x against it
    # on every path (it was 255 - x: black), 12-bit data as the PNG with sBIT 12 holds it
    import tifffile

    twelve = (grey.astype(np.uint32) * 4095 // 255).astype(np.float32)
    tifffile.imwrite(folder / "float12_miniswhite.tif", 4095.0 - twelve, photometric="miniswhite",
                     extratags=[(341, "f", 1, 4095.0, True)])
    add("float12_miniswhite.tif", "grey12")


def _references(folder: Path) -> dict[str, np.ndarray]:
    rgb = _picture()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey12 = ((grey.astype(np.uint32) * 4095 // 255) * 255 * 2 + 4095) // (2 * 4095)
    pal = np.asarray(Image.fromarray(rgb).quantize(64).convert("RGB"))
    binary = np.where(grey > 127, 255, 0).astype(np.uint8)
    full = {"rgb": rgb, "grey": np.dstack([grey] * 3), "grey12": np.dstack([grey12.astype(np.uint8)] * 3),
            "palette": pal, "binary": np.dstack([binary] * 3), "pal4": PALETTE4[grey // 16],
            "pal1": PALETTE1[(grey > 127).astype(int)]}
    # the default downscale (box_linear) of every path: this test is about decoding, not the resize method
    return {k: resize_image(np.ascontiguousarray(v), SPEC.height, SPEC.width) for k, v in full.items()}


def _recording_backend():
    return RecordingBackend(SPEC, POLICY)


def _daemon_inputs(folder: Path) -> dict[str, np.ndarray]:
    source = FolderSource(CameraSection(name="corpus", source=str(folder)))
    source.open()
    pre = Preprocessor(SPEC, POLICY)
    out = {}
    while (grabbed := source.read()) is not None:
        assert grabbed.image is not None, grabbed.error
        slot = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
        pre.into(grabbed.image, slot, "corpus")
        out[grabbed.meta["file"]] = slot
    return out


@contextlib.contextmanager
def _http_folder(folder: Path):
    """A real HTTP server giving the files of ``folder``; yields its base URL."""
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _snapshot_inputs(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The model input a snapshot-URL camera (``http://cam/<name>``) gives for each file of ``folder``."""
    pre = Preprocessor(SPEC, POLICY)
    out = {}
    with _http_folder(folder) as base:
        for name in names:
            source = make_source(CameraSection(name="snap", source=f"{base}/{name}", open_timeout_s=5,
                                               read_timeout_s=5))
            source.open()
            grabbed = source.read()
            source.close()
            assert grabbed.image is not None, grabbed.error
            out[name] = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
            pre.into(grabbed.image, out[name], "snap")
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, _corpus(folder)


def test_every_path_gives_the_same_model_input(corpus):
    folder, files = corpus
    paths = list_images(folder)
    assert sorted(p.name for p in paths) == sorted(files), "listing must see every corpus file (any case)"
    samples = [Sample(p, 0, "good") for p in paths]

    dataset, kept, skipped = load_batch(samples, SPEC.height, SPEC.width, POLICY)
    assert not skipped
    by_dataset = {s.path.name: img for s, img in zip(kept, dataset)}
    errors: list[str] = []
    by_predict = {}
    for chunk, batch in _batches(paths, SPEC, 4, errors):
        by_predict.update({p.name: img for p, img in zip(chunk, batch)})
    assert not errors
    backend = _recording_backend()
    scored = score_samples(backend, samples, batch_size=4)
    by_calibration = {s.path.name: img for s, img in zip(scored.samples, backend.seen)}
    by_daemon = _daemon_inputs(folder)
    by_snapshot = _snapshot_inputs(folder, sorted(files))

    refs = _references(folder)
    for name, (ref, lossless) in files.items():
        x = by_dataset[name]
        for path_name, other in (("predict", by_predict), ("calibration", by_calibration), ("daemon", by_daemon),
                                 ("snapshot URL", by_snapshot)):
            assert np.array_equal(other[name], x), f"{name}: {path_name} differs from the dataset loader"
        diff = np.abs(x.astype(int) - refs[ref].astype(int))
        if lossless:
            assert diff.max() == 0, f"{name}: lossless file differs from its reference (max {diff.max()})"
        else:
            assert diff.mean() <= 3 and diff.max() <= 60, f"{name}: mean {diff.mean():.2f} max {diff.max()}"


def test_a_still_image_file_camera_decodes_like_every_other_path(corpus):
    """A camera whose source is one image file (not a folder) gives the model the same input as the
    dataset loader, for every corpus format: EXIF rotation, 16-bit, sBIT, CMYK, palette, BMP, TIFF..."""
    folder, files = corpus
    paths = list_images(folder)
    dataset, kept, _ = load_batch([Sample(p, 0, "good") for p in paths], SPEC.height, SPEC.width, POLICY)
    pre = Preprocessor(SPEC, POLICY)
    for sample, want in zip(kept, dataset):
        for loop in (False, True):
            source = make_source(CameraSection(name="still", source=str(sample.path), loop=loop))
            source.open()
            grabbed = source.read()
            assert grabbed.image is not None, grabbed.error
            slot = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
            pre.into(grabbed.image, slot, "still")
            assert np.array_equal(slot, want), f"{sample.path.name}: the file camera differs from the dataset loader"
            again = source.read()  # one pass ends after the image; a looping camera shows it again
            assert (again is None) if not loop else np.array_equal(again.image, grabbed.image)
            source.close()


@pytest.mark.parametrize("name", ["exif6.jpe", "photo.jfif", "scan.jp2", "no_extension"])
def test_a_still_image_camera_is_known_by_its_content_not_only_its_extension(tmp_path, name):
    """``predict`` decodes any file OpenCV's image codecs recognise, whatever its name; a camera whose
    source is that file must too. FFmpeg used to open a ``.jpe`` / ``.jfif`` / ``.jp2`` / extensionless
    still as a video: an EXIF-rotated JPEG came out unrotated (another frame size), others with FFmpeg's
    colour conversion (up to 31 levels off)."""
    rgb = _picture()
    exif = Image.Exif()
    exif[0x0112] = 6 if name.startswith("exif6") else 1
    pil = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90) if name.startswith("exif6") else Image.fromarray(rgb)
    fmt = "JPEG2000" if name.endswith(".jp2") else "JPEG"
    pil.save(tmp_path / name, format=fmt, **({"quality": 90, "exif": exif} if fmt == "JPEG" else {}))
    want = resize_image(read_image(tmp_path / name), SPEC.height, SPEC.width, POLICY)  # predict's path
    source = make_source(CameraSection(name="still", source=str(tmp_path / name)))
    source.open()
    grabbed = source.read()
    source.close()
    slot = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
    Preprocessor(SPEC, POLICY).into(grabbed.image, slot, "still")
    assert grabbed.image.shape[:2] == (H, W), f"{name}: frame {grabbed.image.shape[:2]}, predict sees {(H, W)}"
    assert np.array_equal(slot, want), f"{name}: max diff {np.abs(slot.astype(int) - want).max()}"


def _planar_tiff(planes: np.ndarray) -> bytes:
    """An uncompressed little-endian RGB TIFF with one strip per sample plane (PlanarConfiguration 2) of
    ``planes`` (3, H, W) uint16, written here because neither OpenCV nor Pillow writes that layout."""
    _, h, w = planes.shape
    n_tags, size = 11, h * w * 2
    ifd_at = 8
    extra_at = ifd_at + 2 + n_tags * 12 + 4  # BitsPerSample, StripOffsets, StripByteCounts: 3 values each
    data_at = extra_at + 3 * 2 + 3 * 4 + 3 * 4
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, extra_at), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 3, extra_at + 6), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 3, extra_at + 18), (284, 3, 1, 2),
            (339, 3, 1, 1)]
    ifd = struct.pack("<H", n_tags) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1
                                                 else struct.pack("<I", value)) for tag, kind, count, value in tags)
    extra = struct.pack("<3H", 16, 16, 16) + struct.pack("<3I", *(data_at + i * size for i in range(3)))
    extra += struct.pack("<3I", size, size, size)
    return b"II*\x00" + struct.pack("<I", ifd_at) + ifd + b"\x00" * 4 + extra + planes.astype("<u2").tobytes()


def test_a_tiff_gives_its_stored_samples_whatever_its_layout(tmp_path):
    """OpenCV's TIFF reader premultiplied an 8-bit RGBA TIFF's colour by its unassociated alpha (as Pillow,
    GIMP and Photoshop write it: colour 40 at alpha 100 came out 16, mean 79 levels off the picture), left a
    16-bit MinIsWhite page uninverted (the negative, mean 85 levels off) and interleaved a 16-bit planar page's
    samples wrongly (11822 came out 33153). Every path (predict / train / calibrate's decoder, the daemon's
    folder camera) now gives the stored colour of all three (the planar page through a rewritten IFD,
    :mod:`inspector.data.tiff_retag`; it was refused in one line before that)."""
    rgb = _picture()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(np.dstack([rgb, np.full_like(grey, 100)]), "RGBA").save(tmp_path / "alpha.tif")
    Image.fromarray(65535 - grey.astype(np.uint16) * 257).save(tmp_path / "white0.tif", tiffinfo={262: 0})
    (tmp_path / "planar.tif").write_bytes(_planar_tiff(np.moveaxis(rgb, 2, 0).astype(np.uint16) * 257))
    want = {"alpha.tif": rgb, "white0.tif": np.dstack([grey] * 3), "planar.tif": rgb}
    for name, ref in want.items():
        got = read_image(tmp_path / name)
        assert np.array_equal(got, ref), f"{name}: mean {np.abs(got.astype(int) - ref).mean():.1f} levels off"
    source = FolderSource(CameraSection(name="tiff", source=str(tmp_path)))
    source.open()
    seen = {}
    while (grabbed := source.read()) is not None:
        seen[grabbed.meta["file"]] = grabbed
    source.close()
    for name, ref in want.items():
        assert np.array_equal(seen[name].image, cv2.cvtColor(ref, cv2.COLOR_RGB2BGR)), name


def _packed_grey_tiff(levels: np.ndarray, bits: int, photometric: int = 1, orientation: int = 1) -> bytes:
    """An uncompressed big-endian grey TIFF of ``levels`` (H, W) packed ``bits`` to a sample (rows padded to a
    byte), written here because neither OpenCV nor Pillow writes 2- or 4-bit grey."""
    h, w = levels.shape
    per_byte = 8 // bits
    rows = np.zeros((h, -(-w // per_byte)), np.uint8)
    for x in range(w):
        rows[:, x // per_byte] |= (levels[:, x].astype(np.uint8) << (8 - bits * (x % per_byte + 1))).astype(np.uint8)
    data = rows.tobytes()
    tags = [(256, 3, w), (257, 3, h), (258, 3, bits), (259, 3, 1), (262, 3, photometric), (273, 4, 0),
            (274, 3, orientation), (277, 3, 1), (278, 3, h), (279, 4, len(data))]
    data_at = 8 + 2 + len(tags) * 12 + 4
    ifd = struct.pack(">H", len(tags)) + b"".join(
        struct.pack(">HHI", tag, kind, 1) + (struct.pack(">HH", value, 0) if kind == 3 else
                                             struct.pack(">I", data_at if tag == 273 else value))
        for tag, kind, value in tags)
    return b"MM\x00*" + struct.pack(">I", 8) + ifd + b"\x00" * 4 + data


@pytest.mark.parametrize("bits", [2, 4])
def test_a_2_or_4_bit_grey_tiff_decodes_widened_on_every_path(tmp_path, bits):
    """OpenCV refuses 2- and 4-bit grey TIFF pages ("should be palette", "Invalid bitsperpixel"), so predict,
    training and the daemon refused a scanner's file whose PNG copy decodes. Read, widened to full range
    (level 3 or 15 → 255), MinIsWhite inverted and the EXIF/TIFF orientation applied, the same on every path."""
    top = (1 << bits) - 1
    grey = cv2.cvtColor(_picture(), cv2.COLOR_RGB2GRAY)
    levels = (grey.astype(np.uint32) * top + 127) // 255
    want = np.dstack([((levels * 255 + top // 2) // top).astype(np.uint8)] * 3)
    (tmp_path / "black0.tif").write_bytes(_packed_grey_tiff(levels, bits))
    (tmp_path / "white0.tif").write_bytes(_packed_grey_tiff(top - levels, bits, photometric=0))
    stored = np.rot90(levels, 1)  # a quarter turn left; Orientation 6 turns it back
    (tmp_path / "turned.tif").write_bytes(_packed_grey_tiff(np.ascontiguousarray(stored), bits, orientation=6))
    source = FolderSource(CameraSection(name="tiff", source=str(tmp_path)))
    source.open()
    seen = {}
    while (grabbed := source.read()) is not None:
        seen[grabbed.meta["file"]] = grabbed
    source.close()
    for name in ("black0.tif", "white0.tif", "turned.tif"):
        got = read_image(tmp_path / name)
        assert np.array_equal(got, want), f"{name}: mean {np.abs(got.astype(int) - want).mean():.1f} levels off"
        assert seen[name].image is not None and np.array_equal(seen[name].image, want), name


def _frames_decoded(path: Path) -> int:
    """How many frames the camera made of the file ``path`` gives, to its end."""
    source = make_source(CameraSection(name="v", source=str(path)))
    source.open()
    frames = 0
    while (grabbed := source.read()) is not None:
        frames += grabbed.image is not None
    source.close()
    return frames


def test_a_video_stays_a_video_whatever_its_first_bytes(tmp_path):
    """A Motion-JPEG file begins like a JPEG: its video extension keeps it a video (every frame, not one)."""
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for _ in range(3):
        writer.write(cv2.cvtColor(_picture(), cv2.COLOR_RGB2BGR))
    writer.release()
    assert _frames_decoded(tmp_path / "clip.avi") == 3


def test_a_raw_mjpeg_file_is_a_video_not_its_first_picture(tmp_path):
    """A raw Motion-JPEG file (JPEGs back to back, ``.mjpg``) begins like a JPEG; its name keeps it a video."""
    path = tmp_path / "line.mjpg"
    path.write_bytes(b"".join(cv2.imencode(".jpg", np.full((64, 96, 3), 40 * i, np.uint8))[1].tobytes()
                              for i in range(4)))
    assert _frames_decoded(path) == 4


def test_a_16_bit_grey_video_is_scaled_like_its_frames_as_images(tmp_path):
    """12-bit camera data recorded losslessly in a 16-bit grey video (FFV1) gives the model what the same
    frame as a 16-bit PNG gives it, with the camera's ``bit_depth``. OpenCV used to cut the video's frames to
    8-bit BGR by the 16-bit scale: values 0..16, the setting ignored, a black frame with no warning."""
    grey = cv2.cvtColor(_picture(), cv2.COLOR_RGB2GRAY)
    twelve = (grey.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    writer = cv2.VideoWriter(str(tmp_path / "mono12.mkv"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 10,
                             (W, H), [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0])
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write 16-bit FFV1")
    for _ in range(2):
        writer.write(twelve)
    writer.release()
    cv2.imwrite(str(tmp_path / "mono12.png"), twelve)
    want = resize_image(read_image(tmp_path / "mono12.png", bit_depth=12), SPEC.height, SPEC.width, POLICY)
    _settle(tmp_path / "mono12.mkv")
    slots = _inputs_of(CameraSection(name="mono", source=str(tmp_path / "mono12.mkv"), bit_depth=12), frames=2)
    for slot in slots:
        assert np.array_equal(slot, want), f"max diff {np.abs(slot.astype(int) - want).max()}"
    assert len(slots) == 2


def test_a_snapshot_url_camera_decodes_like_predict(tmp_path):
    """A network camera's still-image URL (``http://cam/snapshot.jpg``, here a real HTTP server with basic
    authentication) gives the model what ``predict`` gives the saved picture, on every read. FFmpeg used to
    open it as a one-frame video: unrotated (another frame size), colours up to 80 levels off, then "no
    frame" and a reconnect for every picture."""
    import base64
    import functools
    import http.server

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_picture()).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "snap.jpg", quality=90,
                                                                          exif=exif)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"op:p@ss").decode():
                return self.send_error(401)
            return super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        want = resize_image(read_image(tmp_path / "snap.jpg"), SPEC.height, SPEC.width, POLICY)
        url = f"http://op:p%40ss@127.0.0.1:{server.server_address[1]}/snap.jpg"
        source = make_source(CameraSection(name="snap", source=url, open_timeout_s=5, read_timeout_s=5))
        source.open()
        pre = Preprocessor(SPEC, POLICY)
        for read in range(3):
            if read == 2:  # the camera's next picture: the same pixels in new bytes, a later Last-Modified
                Image.fromarray(_picture()).transpose(Image.Transpose.ROTATE_90).save(
                    tmp_path / "snap.jpg", quality=90, exif=exif, comment=b"the next part")
                later = time.time() + 5
                os.utime(tmp_path / "snap.jpg", (later, later))
            grabbed = source.read()
            if read == 1:  # the same picture answered again (304 to a conditional GET) is no new part
                assert grabbed.image is None and grabbed.reason == "repeat"
                continue
            assert grabbed.image is not None and grabbed.image.shape[:2] == (H, W)
            slot = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
            pre.into(grabbed.image, slot, "snap")
            assert np.array_equal(slot, want), f"max diff {np.abs(slot.astype(int) - want).max()}"
        source.close()
    finally:
        server.shutdown()
        server.server_close()


def test_orientation_is_applied(corpus):
    folder, _ = corpus
    img = read_image(folder / "exif6.jpg")
    assert img.shape == (H, W, 3)  # displayed orientation, not the stored (W, H)
    assert img[9, 18, 0] > 180 and img[9, 18, 1] < 90  # the red mark is upright, top-left


def test_too_small_is_rejected_on_every_path(tmp_path):
    cv2.imwrite(str(tmp_path / "a_tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b_ok.png"), np.zeros((16, 16, 3), np.uint8))
    paths = list_images(tmp_path)
    samples = [Sample(p, 0, "good") for p in paths]
    _, kept, skipped = load_batch(samples, 8, 8)
    assert [s.path.name for s in kept] == ["b_ok.png"] and "smaller than the minimum 8x8" in skipped[0][1]
    errors: list[str] = []
    list(_batches(paths, InputSpec(8, 8, resize=POLICY), 4, errors))
    assert len(errors) == 1 and "a_tiny.png: image is 1x1, smaller than the minimum 8x8" in errors[0]
    scored = score_samples(_recording_backend(), samples)
    assert scored.skipped == [str(paths[0])]
    source = FolderSource(CameraSection(name="c", source=str(tmp_path)))
    source.open()
    first = source.read()
    assert first.image is None and first.reason == "rejected.too_small"
    with pytest.raises(FrameRejected) as exc:  # a 1x1 frame from a video or camera
        Preprocessor(SPEC).into(np.zeros((1, 1, 3), np.uint8), np.empty((40, 56, 3), np.uint8))
    assert exc.value.reason == "too_small"


def test_hidden_files_are_not_images(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "._x.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tmp_path / ".hidden.jpg").write_bytes(b"junk")
    assert [p.name for p in list_images(tmp_path)] == ["x.png"]
    source = FolderSource(CameraSection(name="c", source=str(tmp_path)))
    source.open()
    assert source.read().meta["file"] == "x.png" and source.read() is None


# -- bit depth -----------------------------------------------------------------------------------
def test_sbit_setting_and_narrow_depth_warning(tmp_path, caplog):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))  # 16 x 64
    v12 = (grey.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    eight = read_image(cv2.imwrite(str(tmp_path / "g8.png"), grey) and tmp_path / "g8.png")
    ok, buf = cv2.imencode(".png", v12)
    (tmp_path / "sbit.png").write_bytes(_with_sbit(buf.tobytes(), b"\x0c"))
    cv2.imwrite(str(tmp_path / "nosbit.png"), v12)
    with caplog.at_level(logging.WARNING, logger="inspector.images"):
        assert np.abs(read_image(tmp_path / "sbit.png").astype(int) - eight).max() <= 1  # the file says 12
        assert not caplog.records
        assert np.abs(read_image(tmp_path / "nosbit.png", bit_depth=12).astype(int) - eight).max() <= 1
        assert not caplog.records  # the setting says 12
        dark = read_image(tmp_path / "nosbit.png", warn_key="test-narrow")  # nothing says: 16-bit scale
        read_image(tmp_path / "nosbit.png", warn_key="test-narrow")
    assert dark.max() <= 16
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "12 significant bits" in warnings[0] and "bit_depth: 12" in warnings[0]


def test_camera_frames_use_the_camera_bit_depth():
    frame = np.full((16, 16), 4095, np.uint16)
    out = np.empty((8, 8, 3), np.uint8)
    Preprocessor(InputSpec(8, 8), bit_depths={"mono12": 12}).into(frame, out, "mono12")
    assert (out == 255).all()
    Preprocessor(InputSpec(8, 8)).into(frame, out, "other")
    assert (out == 16).all()  # 4095 / 65535 · 255, rounded


# -- masks ---------------------------------------------------------------------------------------
def test_two_level_masks_read_the_same(tmp_path):
    truth = np.zeros((48, 64), bool)
    truth[10:30, 20:50] = True
    encodings = {
        "m255.png": truth.astype(np.uint8) * 255, "m1.png": truth.astype(np.uint8),
        "m65535.png": truth.astype(np.uint16) * 65535, "m255.bmp": truth.astype(np.uint8) * 255,
        "m255_rgb.png": np.dstack([truth.astype(np.uint8) * 255] * 3),
    }
    for name, arr in encodings.items():
        cv2.imwrite(str(tmp_path / name), arr)
        assert np.array_equal(read_mask(tmp_path / name), truth), name
    # JPEG keeps a 0/255 mask well at any usual quality; a 0/1 mask has only one code step to lose, so
    # at quality 75 ~6 % of its pixels are flipped in the file itself (no rule can recover them): quality 90
    for name, arr, q in (("m255.jpg", truth.astype(np.uint8) * 255, 75), ("m1.jpg", truth.astype(np.uint8), 90)):
        cv2.imwrite(str(tmp_path / name), arr, [cv2.IMWRITE_JPEG_QUALITY, q])
        wrong = (read_mask(tmp_path / name) != truth).mean()
        assert wrong <= 0.01, f"{name}: {wrong:.2%} of pixels wrong"
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((48, 64), np.uint8))
    assert not read_mask(tmp_path / "empty.png").any()


def test_16bit_tiff_of_12bit_data_uses_the_setting_or_warns(tmp_path, caplog):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    v12 = (grey.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    Image.fromarray(v12).save(tmp_path / "mono12.tif")  # BitsPerSample 16: says nothing about 12
    assert np.abs(read_image(tmp_path / "mono12.tif", bit_depth=12)[..., 0].astype(int) - grey).max() <= 1
    with caplog.at_level(logging.WARNING, logger="inspector.images"):
        read_image(tmp_path / "mono12.tif", warn_key="test-tiff")
    assert any("bit_depth: 12" in r.getMessage() for r in caplog.records)


def _pnm(magic: str, grey_or_rgb: np.ndarray, maxval: int) -> bytes:
    """A netpbm file (with a comment line) holding ``grey_or_rgb`` as stored samples against ``maxval``."""
    h, w = grey_or_rgb.shape[:2]
    head = f"{magic}\n# written by a line-scan SDK\n{w} {h}\n{maxval}\n".encode()
    if magic in ("P2", "P3"):
        return head + " ".join(map(str, grey_or_rgb.ravel())).encode() + b"\n"
    return head + grey_or_rgb.astype(">u2" if maxval > 255 else np.uint8).tobytes()



def _through_a_folder_camera(folder, files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Write ``files`` into ``folder`` and read them with the daemon's folder camera: {file name: RGB pixels}."""
    for name, data in files.items():
        (folder / name).write_bytes(data)
    daemon = {}
    source = FolderSource(CameraSection(name="c", source=str(folder)))
    source.open()
    while (grabbed := source.read()) is not None:
        assert grabbed.image is not None, grabbed.error
        daemon[grabbed.meta["file"]] = cv2.cvtColor(grabbed.image, cv2.COLOR_BGR2RGB)
    return daemon

def test_declared_full_scale_wins_however_the_samples_are_stored(tmp_path):
    """The file's own white point: PGM/PPM maxval (8- and 16-bit), and a PNG sBIT whose samples are
    MSB-aligned as the PNG specification writes them; every one must read like its 8-bit copy, on the
    offline path and in the daemon's folder camera (no clipping to white, no dark 16-bit scaling)."""
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))  # 16 x 64
    rgb = np.dstack([grey, grey[:, ::-1], np.full_like(grey, 77)])
    v12 = (grey.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    ok, buf = cv2.imencode(".png", ((v12 << 4) | (v12 >> 8)).astype(np.uint16))  # libpng's sBIT scaling
    files = {
        "pgm12.pgm": (_pnm("P5", v12, 4095), grey),
        "ppm12.ppm": (_pnm("P6", (rgb.astype(np.uint32) * 4095 // 255).astype(np.uint16), 4095), rgb),
        "pgm4.pgm": (_pnm("P5", grey // 17, 15), grey // 17 * 17),
        "ascii4.pgm": (_pnm("P2", grey // 17, 15), grey // 17 * 17),
        "sbit12_msb.png": (_with_sbit(buf.tobytes(), b"\x0c"), grey),
    }
    daemon = _through_a_folder_camera(tmp_path, {name: data for name, (data, _) in files.items()})
    for name, (_, truth) in files.items():
        want = truth if truth.ndim == 3 else np.dstack([truth] * 3)
        for path, got in (("read_image", read_image(tmp_path / name)), ("daemon", daemon[name])):
            diff = np.abs(got.astype(int) - want).max()
            assert diff <= 1, f"{name}: {path} differs from the 8-bit picture by up to {diff} grey levels"


@pytest.mark.parametrize("bits", [12, 14])
def test_a_dark_picture_shifted_up_by_its_sbit_reads_like_its_8_bit_copy(tmp_path, bits):
    """A PNG's sBIT samples stored as the PNG specification writes them (shifted up to fill 16 bits, top bits
    replicated below) never exceed the declared full scale when the picture is dark: a 12-bit one below 1/16 of
    white, a 14-bit one below 1/4. They were read as low-justified data, 16× (4×) too bright; the same camera's
    brighter pictures read right. Offline and in the daemon's folder camera alike."""
    grey = np.tile(np.arange(64) * (256 >> (16 - bits)) // 64, (16, 1)).astype(np.uint8)  # 0 .. below the limit
    top = (1 << bits) - 1
    value = (grey.astype(np.uint32) * top + 127) // 255
    stored = ((value << (16 - bits)) | (value >> (2 * bits - 16))).astype(np.uint16)
    assert stored.max() <= top  # what made it look low-justified
    ok, buf = cv2.imencode(".png", stored)
    name = f"dark{bits}.png"
    daemon = _through_a_folder_camera(tmp_path, {name: _with_sbit(buf.tobytes(), bytes([bits]))})
    for path, got in (("read_image", read_image(tmp_path / name)), ("daemon", daemon[name])):
        diff = np.abs(got[..., 0].astype(int) - grey).max()
        assert diff <= 1, f"{name}: {path} differs from the 8-bit picture by up to {diff} grey levels"


def test_a_low_justified_sbit_picture_is_not_taken_for_a_shifted_one(tmp_path):
    """The other side of the rule above: 12-bit data low-justified (as cameras write it) whose samples are not all
    multiples of 16 is read against 4095, however dark."""
    grey = np.tile(np.arange(0, 64, dtype=np.uint8), (16, 1))
    value = ((grey.astype(np.uint32) * 4095 + 127) // 255).astype(np.uint16)
    ok, buf = cv2.imencode(".png", value)
    (tmp_path / "low.png").write_bytes(_with_sbit(buf.tobytes(), b"\x0c"))
    assert np.abs(read_image(tmp_path / "low.png")[..., 0].astype(int) - grey).max() <= 1


def test_a_signed_8_bit_tiff_reads_127_as_white(tmp_path):
    """A TIFF of int8 samples (SampleFormat 2, BitsPerSample 8): 0 is black and 127 white, as 32767 is an int16
    page's white. Its BitsPerSample was read as a declared full scale of 255 and the 8-bit samples passed
    unscaled: the page came out at half brightness."""
    import tifffile

    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    signed = ((grey.astype(np.int32) * 127 + 127) // 255).astype(np.int8)
    tifffile.imwrite(tmp_path / "i8.tif", signed)
    tifffile.imwrite(tmp_path / "i16.tif", ((grey.astype(np.int32) * 32767 + 127) // 255).astype(np.int16))
    daemon = _through_a_folder_camera(tmp_path, {})
    for name in ("i8.tif", "i16.tif"):
        for path, got in (("read_image", read_image(tmp_path / name)), ("daemon", daemon[name])):
            diff = np.abs(got[..., 0].astype(int) - grey).max()
            assert diff <= 1, f"{name}: {path} differs from the 8-bit picture by up to {diff} grey levels"



def _os2_bmp(rgb: np.ndarray, bits: int) -> bytes:
    """An OS/2 1.x bitmap (12-byte BITMAPCOREHEADER, 3-byte palette entries, rows bottom-up, padded to 4 bytes) of
    ``rgb`` (H, W, 3): 24-bit samples, or 8-bit indices into a palette of its 256 first colours (as given)."""
    h, w = rgb.shape[:2]
    stride = (w * bits + 31) // 32 * 4
    if bits == 24:
        palette, rows = b"", [row[:, ::-1].tobytes() for row in rgb]
    else:
        colours, index = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
        assert len(colours) <= 256
        colours = np.vstack([colours, np.zeros((256 - len(colours), 3), np.uint8)])
        palette = colours[:, ::-1].astype(np.uint8).tobytes()
        rows = [r.astype(np.uint8).tobytes() for r in index.reshape(h, w)]
    data = b"".join(r + bytes(stride - len(r)) for r in rows[::-1])
    offset = 14 + 12 + len(palette)
    return (b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + struct.pack("<IHHHH", 12, w, h, 1, bits)
            + palette + data)


@pytest.mark.parametrize("bits", [24, 8])
def test_an_os2_bitmap_keeps_its_colours_on_every_path(tmp_path, bits):
    """OpenCV, left to choose colour or grey (IMREAD_ANYCOLOR), took every OS/2 1.x bitmap for grey: a colour one,
    24-bit or palette, came out grey, offline and in the daemon's folder camera."""
    rgb = _picture() if bits == 24 else (_picture() // 64 * 64).astype(np.uint8)  # a palette holds 256 colours
    name = f"os2_{bits}.bmp"
    daemon = _through_a_folder_camera(tmp_path, {name: _os2_bmp(rgb, bits)})
    assert np.array_equal(np.asarray(Image.open(tmp_path / name).convert("RGB")), rgb)  # the file is right
    for path, got in (("read_image", read_image(tmp_path / name)), ("daemon", daemon[name])):
        assert np.array_equal(got, rgb), f"{name}: {path} differs by up to {np.abs(got.astype(int) - rgb).max()}"

def _pam(samples: np.ndarray, maxval: int, tupltype: str) -> bytes:
    """A netpbm PAM (P7) of ``samples`` (H, W) or (H, W, C) against ``maxval``: one byte a sample below 256, else
    two big-endian (pam(5)), with a comment line as camera SDKs write."""
    h, w = samples.shape[:2]
    depth = 1 if samples.ndim == 2 else samples.shape[2]
    head = (f"P7\n# written by a line-scan SDK\nWIDTH {w}\nHEIGHT {h}\nDEPTH {depth}\nMAXVAL {maxval}\n"
            f"TUPLTYPE {tupltype}\nENDHDR\n").encode()
    return head + samples.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def test_a_pam_reads_like_its_8_bit_copy_on_every_path(tmp_path):
    """netpbm's PAM (.pam, P7) declares its white by MAXVAL, as a PGM by maxval: 12-bit data (MAXVAL 4095) came
    out as 16-bit data (1/16 of the range), 4-bit data (MAXVAL 15) unscaled, a BLACKANDWHITE page (MAXVAL 1, one
    byte a sample) all black (OpenCV read it as packed bits), and a folder camera skipped .pam files that
    predict read. Each must read like its 8-bit picture, alpha dropped, offline and in the folder camera."""
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))  # 16 x 64
    rgb = np.dstack([grey, grey[:, ::-1], np.full_like(grey, 77)])
    twelve = lambda a: (a.astype(np.uint32) * 4095 // 255).astype(np.uint16)  # noqa: E731
    black_white = np.where(grey > 127, 255, 0).astype(np.uint8)
    files = {
        "grey12.pam": (_pam(twelve(grey), 4095, "GRAYSCALE"), grey),
        "grey4.pam": (_pam(grey // 17, 15, "GRAYSCALE"), grey // 17 * 17),
        "rgb12.pam": (_pam(twelve(rgb), 4095, "RGB"), rgb),
        "rgba8.pam": (_pam(np.dstack([rgb, grey // 2]), 255, "RGB_ALPHA"), rgb),
        "grey_alpha12.pam": (_pam(np.dstack([twelve(grey), twelve(grey[:, ::-1])]), 4095, "GRAYSCALE_ALPHA"), grey),
        "bw.pam": (_pam((grey > 127).astype(np.uint8), 1, "BLACKANDWHITE"), black_white),
    }
    daemon = _through_a_folder_camera(tmp_path, {name: data for name, (data, _) in files.items()})
    assert sorted(daemon) == sorted(files), "the folder camera skipped .pam files"
    for name, (_, truth) in files.items():
        want = truth if truth.ndim == 3 else np.dstack([truth] * 3)
        for path, got in (("read_image", read_image(tmp_path / name)), ("daemon", daemon[name])):
            diff = np.abs(got.astype(int) - want).max()
            assert diff <= 1, f"{name}: {path} differs from the 8-bit picture by up to {diff} grey levels"


def test_a_cut_short_pam_is_one_line(tmp_path):
    """A PAM whose samples stop early (a writer that died) is refused in one line naming it, never read."""
    path = tmp_path / "cut.pam"
    path.write_bytes(_pam(np.zeros((16, 16), np.uint16), 4095, "GRAYSCALE")[:-3])
    with pytest.raises(DataError, match=r"cut\.pam: cannot decode image \(corrupt or cut-short PAM\)"):
        read_image(path)


def _png16(samples: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG of ``samples`` (H, W, C) in PNG channel order, written by hand: neither OpenCV nor Pillow
    writes 16-bit grey + alpha."""
    h, w = samples.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples.reshape(h, -1))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_declared_depth_is_read_whatever_else_the_file_carries(tmp_path, caplog):
    """12-bit data in 16-bit files that declare it by another tag than the ones read so far: a PNG whose sBIT
    gives the colour 12 bits and its alpha 16 (or 8), and a TIFF whose MaxSampleValue is 4095. The alpha's bits
    hid the colour's (the largest over all channels was taken) and MaxSampleValue was not read: each was scaled
    as 16-bit data (1/16 of the range) with a warning to save the sBIT chunk it had. Each must read like its
    8-bit copy, offline and in the daemon's folder camera, without a warning. A MaxSampleValue that is not
    2**n - 1 is one image's own largest sample: it declares no depth."""
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))  # 16 x 64
    v12 = (grey.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    opaque = np.full_like(v12, 65535)
    files = {
        "rgba_sbit_alpha16.png": _with_sbit(_png16(np.dstack([v12, v12, v12, opaque]), 6), b"\x0c\x0c\x0c\x10"),
        "rgba_sbit_alpha8.png": _with_sbit(_png16(np.dstack([v12, v12, v12, opaque]), 6), b"\x0c\x0c\x0c\x08"),
        "grey_alpha_sbit.png": _with_sbit(_png16(np.dstack([v12, opaque]), 4), b"\x0c\x10"),
    }
    tiff = io.BytesIO()
    Image.fromarray(v12).save(tiff, format="TIFF", tiffinfo={281: 4095})  # MaxSampleValue
    files["max_sample_4095.tif"] = tiff.getvalue()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    Image.fromarray(v12).save(tmp_path / "own_max.tif", tiffinfo={281: 3000})
    source = FolderSource(CameraSection(name="c", source=str(tmp_path)))
    source.open()
    with caplog.at_level(logging.WARNING, logger="inspector.images"):
        daemon = {g.meta["file"]: cv2.cvtColor(g.image, cv2.COLOR_BGR2RGB) for g in iter(source.read, None)}
        for name in files:
            for path, got in (("read_image", read_image(tmp_path / name)), ("daemon", daemon[name])):
                diff = np.abs(got.astype(int) - np.dstack([grey] * 3)).max()
                assert diff <= 1, f"{name}: {path} differs from the 8-bit picture by up to {diff} grey levels"
        told = [r.getMessage() for r in caplog.records]
        assert not [m for m in told if "own_max" not in m], told
        assert read_image(tmp_path / "own_max.tif").max() <= 16  # the container's scale, as without the tag
    assert any("own_max.tif" in m and "bit_depth: 12" in m for m in told), told


# -- frames OpenCV would convert itself: wide samples, still-picture codecs ------------------------------------
VIDEOS = Path(__file__).parent / "videos"




def _camera_inputs(source_path: Path, bit_depth: int | None) -> list[np.ndarray]:
    """The model input of every frame a camera on the file ``source_path`` gives (:func:`_inputs_of`)."""
    _settle(source_path)
    return _inputs_of(CameraSection(name="cam", source=str(source_path), bit_depth=bit_depth))


def _settle(path: Path) -> None:
    """Date ``path`` 10 s back: a file camera takes a file written just now for a recording still growing."""
    if path.stat().st_mtime > time.time() - 10:
        os.utime(path, (time.time() - 10, time.time() - 10))


def _inputs_of(camera: CameraSection, frames: int | None = None) -> list[np.ndarray]:
    """The model input of the first ``frames`` frames ``camera`` gives (None: all, to its end), each through the
    daemon's own source and preprocessor."""
    source = make_source(camera)
    pre = Preprocessor(SPEC, POLICY, {camera.name: source.bit_depth})
    source.open()
    slots = []
    while (frames is None or len(slots) < frames) and (grabbed := source.read()) is not None:
        assert grabbed.image is not None, grabbed.error
        slot = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
        pre.into(grabbed.image, slot, camera.name)
        slots.append(slot)
    source.close()
    return slots


@pytest.mark.parametrize("name", ["mono12_gray16be.nut", "colour12_rgb48be.nut", "colour12_rgb48le.nut",
                                  "colour12_bgr48le.nut", "mono12_png_frames.mkv"])
def test_a_16_bit_video_of_any_layout_is_scaled_like_its_frames_as_images(tmp_path, name):
    """12-bit camera data in a 16-bit video — big-endian grey, RGB48 either byte order, BGR48, PNG frames —
    gives the model what the same frame as a 16-bit PNG gives ``predict``, with the camera's ``bit_depth``.
    OpenCV converted all of these to 8-bit BGR by the 16-bit scale (only gray16le was kept): 12-bit data came
    out 0..16 (max diff 239), the setting ignored, no warning."""
    picture = twelve_bit_picture()
    if name.startswith("mono"):
        picture = picture[:, :, 2]
    cv2.imwrite(str(tmp_path / "frame.png"), picture)
    video = VIDEOS / name
    if name.endswith("png_frames.mkv"):  # PNG-coded frames (FFmpeg decodes them as gray16be), written here
        video = tmp_path / name
        writer = cv2.VideoWriter(str(video), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MPNG"), 10, picture.shape[1::-1],
                                 [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0])
        if not writer.isOpened():
            pytest.skip("this OpenCV cannot write 16-bit PNG frames")
        for _ in range(2):
            writer.write(picture)
        writer.release()
    want = resize_image(read_image(tmp_path / "frame.png", bit_depth=12), SPEC.height, SPEC.width, POLICY)
    slots = _camera_inputs(video, bit_depth=12)
    assert len(slots) == 2
    for slot in slots:
        assert np.array_equal(slot, want), f"{name}: max diff {np.abs(slot.astype(int) - want).max()}"


def test_a_motion_jpeg_video_decodes_like_its_frames_as_jpeg_files(tmp_path):
    """A Motion-JPEG recording or stream is JPEG pictures: each gives the model what ``predict`` gives the same
    JPEG file. FFmpeg's MJPEG decoder upsampled the chroma its own way: 32 levels off libjpeg at this
    picture's colour edges."""
    pictures = [_picture(), np.ascontiguousarray(_picture()[::-1])]
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(p, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
             for p in pictures]
    (tmp_path / "line.mjpg").write_bytes(b"".join(jpegs))
    wants = []
    for i, data in enumerate(jpegs):
        (tmp_path / f"frame{i}.jpg").write_bytes(data)
        wants.append(resize_image(read_image(tmp_path / f"frame{i}.jpg"), SPEC.height, SPEC.width, POLICY))
    slots = _camera_inputs(tmp_path / "line.mjpg", bit_depth=None)
    assert len(slots) == 2
    for slot, want in zip(slots, wants):
        assert np.array_equal(slot, want), f"max diff {np.abs(slot.astype(int) - want).max()}"


class _FakeV4l2Capture:
    """Stands in for cv2.VideoCapture on OpenCV's V4L2 backend, which no machine here has a 16-bit grey camera
    for. It mirrors modules/videoio/src/cap_v4l.cpp: ``get(CAP_PROP_FOURCC)`` is the V4L2 palette; converting
    (the default) Y16 keeps only each sample's high byte (Y16_BE likewise, Y12 divides by 16) as 8-bit BGR;
    with CAP_PROP_CONVERT_RGB off ``retrieve`` gives the buffer's bytes as uint8 (1, bytesused), rows
    ``bytesperline`` long."""

    FOURCCS = {"Y16": (b"Y16 ", 0), "Y16_BE": (b"Y16 ", 1 << 31), "Y12": (b"Y12 ", 0)}

    def __init__(self, samples: np.ndarray, palette: str, bytesperline: int) -> None:
        self.samples, self.palette, self.bytesperline, self.convert = samples, palette, bytesperline, True

    def isOpened(self):
        return True

    def getBackendName(self):
        return "V4L2"

    def get(self, prop):
        code, flag = self.FOURCCS[self.palette]
        return {cv2.CAP_PROP_FOURCC: float(int.from_bytes(code, "little") | flag),
                cv2.CAP_PROP_FRAME_WIDTH: float(self.samples.shape[1]),
                cv2.CAP_PROP_FRAME_HEIGHT: float(self.samples.shape[0])}.get(prop, 0.0)

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_CONVERT_RGB:
            self.convert = bool(value)
            return True
        return False

    def grab(self):
        return True

    def retrieve(self):
        if self.convert:
            # Y16: extractChannel of the high byte; Y12: convertTo(CV_8U, 1.0 / 16), rounded and saturated
            eight = (np.clip(np.rint(self.samples / 16), 0, 255) if self.palette == "Y12"
                     else self.samples >> 8).astype(np.uint8)
            return True, cv2.cvtColor(eight, cv2.COLOR_GRAY2BGR)
        rows = self.samples.astype(">u2" if self.palette == "Y16_BE" else "<u2").view(np.uint8)
        buffer = np.zeros((rows.shape[0], self.bytesperline), np.uint8)
        buffer[:, :rows.shape[1]] = rows
        return True, buffer.reshape(1, -1)

    def release(self):
        pass


@pytest.mark.parametrize("palette, bytesperline", [("Y16", 64), ("Y16_BE", 64), ("Y16", 80), ("Y12", 64)])
def test_a_v4l2_16_bit_grey_camera_is_scaled_like_its_frames_as_images(tmp_path, monkeypatch, palette, bytesperline):
    """A V4L2 camera sending 12-bit data as Y16 / Y16_BE (or declaring Y12) gives the model what the same frame
    as a 16-bit PNG gives ``predict`` with the camera's ``bit_depth``: OpenCV's V4L backend kept only the high
    byte of each Y16 sample (12-bit data 0..15, the setting ignored). Fake capture: see _FakeV4l2Capture."""
    picture = twelve_bit_picture()[:, :, 2]
    cv2.imwrite(str(tmp_path / "frame.png"), picture)
    want = resize_image(read_image(tmp_path / "frame.png", bit_depth=12), SPEC.height, SPEC.width, POLICY)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: _FakeV4l2Capture(picture, palette, bytesperline))
    slots = _inputs_of(CameraSection(name="cam", source=0, bit_depth=None if palette == "Y12" else 12), frames=2)
    for slot in slots:
        assert np.array_equal(slot, want), f"{palette}: max diff {np.abs(slot.astype(int) - want).max()}"
    assert len(slots) == 2


@pytest.mark.parametrize("name", ["colour8_bmp_frames.avi", "colour8_tiff_frames.avi"])
def test_a_video_of_still_pictures_without_a_codec_tag_decodes_like_its_frames_as_images(tmp_path, name):
    """AVI stores BMP- and TIFF-coded frames without a codec tag (FOURCC 0), so the still-picture rule keyed by
    the tag missed them and OpenCV's own decoding gave the model pictures up to 255 levels off the same frame
    as an image file. The first packet's magic bytes tell: each frame gives what ``predict`` gives the PNG."""
    h, w = 24, 32  # the picture of tests/data/videos/README.md (8-bit)
    yy, xx = np.mgrid[0:h, 0:w]
    picture = np.dstack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (w + h - 2)]).astype(np.uint8)
    picture[2:6, 3:14] = (20, 200, 250)
    cv2.imwrite(str(tmp_path / "frame.png"), picture)
    want = resize_image(read_image(tmp_path / "frame.png"), SPEC.height, SPEC.width, POLICY)
    video = tmp_path / name  # a copy: _camera_inputs settles its time stamp
    video.write_bytes((VIDEOS / name).read_bytes())
    slots = _camera_inputs(video, bit_depth=None)
    assert len(slots) == 2
    for slot in slots:
        assert np.array_equal(slot, want), f"{name}: max diff {np.abs(slot.astype(int) - want).max()}"


@pytest.mark.parametrize("name, bit_depth, max_diff, mean_diff", [
    ("mono12_ffv1_gray12le.mkv", None, 0, 0.0),          # declared 12 bits: scaled by them, as a PNG's sBIT
    ("colour12_ffv1_gbrp12le.mkv", None, 0, 0.0),
    ("colour12_ffv1_gbrp16le.mkv", 12, 0, 0.0),          # 16-bit container: the camera's bit_depth
    ("colour12_ffv1_yuv444p16le.mkv", 12, 1, 0.1),       # RGB → YUV → RGB rounding in the file itself
    ("colour12_prores4444.mov", None, 3, 0.3)])          # lossy: ProRes's own error (0.19 mean measured)
def test_a_compressed_wide_video_is_decoded_at_full_depth(tmp_path, name, bit_depth, max_diff, mean_diff):
    """12-bit camera data in a compressed wide video (FFV1 grey / planar RGB / YUV, ProRes 4444) gives the model
    what the same frame as a 16-bit PNG gives ``predict`` with ``bit_depth: 12``. OpenCV cut these to 8-bit BGR:
    a 16-bit container by 65535 (12-bit data 0..16, 239 levels off), a declared 12 bits truncated (1 level off on
    half the pixels). Decoded by the ffmpeg program (inspector.pipeline.ffmpeg_frames) when it is installed."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg program")
    picture = twelve_bit_picture()
    if name.startswith("mono"):
        picture = picture[:, :, 2]
    cv2.imwrite(str(tmp_path / "frame.png"), picture)
    want = resize_image(read_image(tmp_path / "frame.png", bit_depth=12), SPEC.height, SPEC.width, POLICY)
    video = tmp_path / name  # a copy: _camera_inputs settles its time stamp
    video.write_bytes((VIDEOS / name).read_bytes())
    slots = _camera_inputs(video, bit_depth=bit_depth)
    assert len(slots) == 2
    for slot in slots:
        diff = np.abs(slot.astype(int) - want)
        assert diff.max() <= max_diff and diff.mean() <= mean_diff, f"{name}: max {diff.max()} mean {diff.mean():.2f}"


def test_a_compressed_wide_video_loops_and_closes_at_full_depth(tmp_path):
    """Looping (a seek back to frame 0) keeps the full-depth decoding, frame after frame, and closing the camera
    ends the ffmpeg program it started."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg program")
    cv2.imwrite(str(tmp_path / "frame.png"), twelve_bit_picture())
    want = resize_image(read_image(tmp_path / "frame.png", bit_depth=12), SPEC.height, SPEC.width, POLICY)
    video = tmp_path / "loop.mkv"
    video.write_bytes((VIDEOS / "colour12_ffv1_gbrp16le.mkv").read_bytes())
    source = make_source(CameraSection(name="cam", source=str(video), bit_depth=12, loop=True))
    source.open()
    pre = Preprocessor(SPEC, POLICY, {"cam": 12})
    for _ in range(5):  # 2 frames a pass
        slot = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
        pre.into(source.read().image, slot, "cam")
        assert np.array_equal(slot, want)
    proc = source._cap._frames._proc  # ffmpeg_live.FileFrames' program
    source.close()
    assert proc.poll() is not None, "the ffmpeg program outlived its camera"


def test_a_compressed_wide_video_without_the_ffmpeg_program_warns_with_the_figure(tmp_path, monkeypatch, caplog):
    """Where the ffmpeg program is missing OpenCV's 8-bit frames are kept, and one warning says what that costs."""
    video = tmp_path / "w.mkv"
    video.write_bytes((VIDEOS / "colour12_ffv1_gbrp16le.mkv").read_bytes())
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg program on it
    with caplog.at_level(logging.WARNING, logger="inspector.pipeline.sources"):
        slots = _camera_inputs(video, bit_depth=12)
    assert len(slots) == 2
    warnings = [r.getMessage() for r in caplog.records if "16-bit samples" in r.getMessage()]
    assert len(warnings) == 1 and "239 levels" in warnings[0] and "ffmpeg program" in warnings[0]


@pytest.mark.parametrize("name", ["colour8_ffv1_yuv444p_bt709.mkv", "colour8_ffv1_yuv444p_full.mkv"])
def test_a_yuv_video_is_decoded_by_its_own_colour_matrix_and_range(tmp_path, name):
    """A video's YUV frames are turned into RGB by the matrix (BT.709 / BT.601) and range (limited / full) its
    stream declares, as the ffmpeg program does when frames are extracted for a training set: the daemon's input
    is bitwise the extracted PNG's, and within the file's own 8-bit YUV rounding of the original PNG (max 2,
    mean 0.4 measured). Decoded as BT.601 limited range (what swscale assumes when a player does not pass the
    tags on) these frames are 29 / 20 levels off (mean 5.7 / 7.8): an OpenCV build that ignores the tags fails
    here."""
    h, w = 24, 32  # the 8-bit picture of tests/data/videos/README.md
    yy, xx = np.mgrid[0:h, 0:w]
    picture = np.dstack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (w + h - 2)]).astype(np.uint8)
    picture[2:6, 3:14] = (20, 200, 250)
    cv2.imwrite(str(tmp_path / "frame.png"), picture)
    want = resize_image(read_image(tmp_path / "frame.png"), SPEC.height, SPEC.width, POLICY)
    video = tmp_path / name
    video.write_bytes((VIDEOS / name).read_bytes())
    slots = _camera_inputs(video, bit_depth=None)
    assert len(slots) == 2
    for slot in slots:
        diff = np.abs(slot.astype(int) - want)
        assert diff.max() <= 2 and diff.mean() <= 0.5, f"{name}: max {diff.max()} mean {diff.mean():.2f}"
    if shutil.which("ffmpeg"):  # frames extracted for training by the ffmpeg program: the very same pixels
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-frames:v", "1", str(tmp_path / "x.png")],
                       check=True, stdin=subprocess.DEVNULL)
        extracted = resize_image(read_image(tmp_path / "x.png"), SPEC.height, SPEC.width, POLICY)
        assert np.array_equal(slots[0], extracted), f"max {np.abs(slots[0].astype(int) - extracted).max()}"


# -- frames of another size than the training images: one resize function on every path ----------------------
@pytest.mark.parametrize("policy", ["square", "letterbox", "shorter_side_crop"])
@pytest.mark.parametrize("downscale", ["halving", "box_linear", "area"])
def test_a_frame_of_another_size_gives_bitwise_the_same_model_input_on_every_path(tmp_path, policy, downscale):
    """A 1920x1080 or odd 1001x777 frame (grey, colour or with alpha) for a model trained on 500x1263 scans (input
    316x125, a quarter) gives the model bitwise the same input through ``predict``, the dataset loader (train /
    evaluate) and the daemon's folder camera + preprocessor, for every resize policy and downscale method: the
    one :func:`resize_image`, no faster approximation on the daemon's side (measured: 0 levels over 1080p, 777x1001
    and 1263x500 frames, 1/3/4 channels, four input sizes, three policies and three methods)."""
    rng = np.random.default_rng(7)
    spec = InputSpec(height=316, width=125, resize=policy, downscale=downscale)
    for (h, w), channels in (((1080, 1920), 3), ((777, 1001), 1), ((777, 1001), 4)):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.sin(xx / 7.0) * 60 + np.cos(yy / 5.0) * 60 + 128 + rng.normal(0, 20, (h, w))  # fine detail
        frame = np.dstack([np.clip(base + 30 * k, 0, 255) for k in range(channels)]).astype(np.uint8)
        cv2.imwrite(str(tmp_path / f"f{w}x{h}c{channels}.png"), frame)
    paths = list_images(tmp_path)
    errors: list[str] = []
    by_predict = {p.name: img for chunk, batch in _batches(paths, spec, 8, errors) for p, img in zip(chunk, batch)}
    dataset, kept, _ = load_batch([Sample(p, 0, "good") for p in paths], spec.height, spec.width, policy, None,
                                  downscale)
    by_dataset = {s.path.name: img for s, img in zip(kept, dataset)}
    source = FolderSource(CameraSection(name="cam", source=str(tmp_path)))
    source.open()
    pre = Preprocessor(spec, policy, downscale=downscale)
    while (grabbed := source.read()) is not None:
        slot = np.empty((spec.height, spec.width, 3), np.uint8)
        pre.into(grabbed.image, slot, "cam")
        name = grabbed.meta["file"]
        for path_name, other in (("predict", by_predict[name]), ("dataset", by_dataset[name])):
            diff = np.abs(slot.astype(int) - other).max()
            assert diff == 0, f"{name}: the daemon differs from {path_name} by up to {diff} levels"
    assert not errors and len(by_predict) == 3
