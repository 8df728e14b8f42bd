"""A TIFF with an alpha channel is read as its sibling without one, whatever its samples: alpha dropped, the stored
colour kept, as for 8-bit RGBA. Before, float32 / float64 / 32-bit integer grey + alpha and RGBA pages were
refused as "corrupt or unsupported" (OpenCV reads such samples 1 or 3 to a pixel only) while the same data
without alpha was read; 16-bit grey + alpha came out cut to 8 bits (uint16: 12-bit data 16x too dark with
``bit_depth: 12``) or as garbage (float16: its words taken as levels). Real files written by tifffile (not a
dependency: skipped without it), in the layouts writers use: strips, Deflate with the horizontal predictor,
tiles, big-endian, a turned Orientation."""

from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest

from inspector.data.images import decode_image, read_image
from inspector.errors import DataError
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import FolderSource
from tests.data.test_pixel_layouts import GREY, RGB, _every_path, _pixels_or_one_line, _scaled

tifffile = pytest.importorskip("tifffile")

# (dtype, bit_depth setting, stored values from 8-bit levels): the sample kinds OpenCV misread with alpha
_KINDS = {
    "float32": (np.float32, None, lambda v: v.astype(np.float32) / 255),
    "float64": (np.float64, None, lambda v: v.astype(np.float64) / 255),
    "uint32": (np.uint32, 12, lambda v: v.astype(np.uint32) * 16),
    "int32": (np.int32, 12, lambda v: v.astype(np.int32) * 16),
    "float16": (np.float16, None, lambda v: (v.astype(np.float32) / 255).astype(np.float16)),
    "uint16": (np.uint16, 12, lambda v: v.astype(np.uint16) * 16),
}
# 16-bit RGBA OpenCV reads right (left to it); 16-bit grey + alpha it does not
_CASES = [(kind, colour) for kind in _KINDS for colour in (False, True) if not (colour and "16" in kind)]
_LAYOUTS = {
    "strips": {},
    "deflate": {"compression": "zlib", "rowsperstrip": 8},
    "tiles": {"tile": (16, 16), "compression": "zlib"},
    "big_endian": {"byteorder": ">"},
    "turned": {"extratags": [(274, 3, 1, 6, True)]},  # Orientation 6 (RightTop): a quarter turn
}


def _write(path, samples: np.ndarray, colour: bool, alpha: bool, **options) -> bytes:
    """``samples`` (H, W) grey or (H, W, 3) RGB, with an unassociated alpha channel (a ramp) if ``alpha``."""
    if alpha:
        ramp = np.linspace(0, 1, samples.shape[0] * samples.shape[1]).reshape(samples.shape[:2])
        top = 1.0 if samples.dtype.kind == "f" else 4095
        samples = np.dstack([samples, (ramp * top).astype(samples.dtype)])
    tifffile.imwrite(path, samples, photometric="rgb" if colour else "minisblack", planarconfig="contig",
                     extrasamples=["unassalpha"] if alpha else None, **options)
    return path.read_bytes()


def _siblings(tmp_path, kind: str, colour: bool, **options) -> tuple[np.ndarray, np.ndarray]:
    """(with alpha, without) as the decoder gives them: uint8 RGB."""
    dtype, bits, stored = _KINDS[kind]
    samples = stored(RGB if colour else GREY)
    with_alpha = _write(tmp_path / "alpha.tif", samples, colour, True, **options)
    without = _write(tmp_path / "plain.tif", samples, colour, False, **options)
    return decode_image(with_alpha, "alpha.tif", bits), decode_image(without, "plain.tif", bits)


@pytest.mark.parametrize("kind,colour", _CASES)
@pytest.mark.parametrize("layout", sorted(_LAYOUTS))
def test_a_tiff_with_alpha_reads_as_its_sibling_without(tmp_path, kind, colour, layout):
    options = dict(_LAYOUTS[layout])
    if layout in ("deflate", "tiles") and np.dtype(_KINDS[kind][0]).kind != "f":
        options["predictor"] = 2  # horizontal differencing (per tile row): tifffile writes it for integers only
    got, want = _siblings(tmp_path, kind, colour, **options)
    assert got.shape == want.shape and np.array_equal(got, want), np.abs(got.astype(int) - want).max()
    if layout != "turned":  # and both are the data: floats by 1.0, 12-bit integers by 4095 (bit_depth)
        levels = RGB if colour else np.dstack([GREY] * 3)
        assert np.array_equal(want, levels if _KINDS[kind][1] is None else _scaled(levels.astype(int) * 16, 4095))


def test_a_miniswhite_float_page_with_alpha_is_inverted_as_its_sibling(tmp_path):
    path = tmp_path / "white.tif"
    stored = 1 - GREY.astype(np.float32) / 255
    tifffile.imwrite(path, np.dstack([stored, np.ones_like(stored)]), photometric="miniswhite",
                     extrasamples=["unassalpha"], planarconfig="contig")
    assert np.array_equal(read_image(path), np.dstack([GREY] * 3))


def test_a_float_rgba_tiff_gives_its_colour_on_every_path(tmp_path):
    """The dataset loader (train / evaluate), ``predict``, calibration and the daemon's folder camera."""
    path = tmp_path / "rgba.tif"
    _write(path, RGB.astype(np.float32) / 255, True, True)
    for path_name, pixels in _every_path(path).items():
        assert np.array_equal(pixels, RGB), path_name


def test_a_float_predictor_tag_on_data_not_so_stored_is_one_line(tmp_path):
    """The floating-point Predictor (3) with alpha is read (tests/data/test_pixel_layouts.py, the *_fpredictor
    cases: it was refused, "Predictor 3 with 4 samples a pixel is not read"). A file whose tag says so while its
    bytes were not so stored (the tag set on a Deflate file in place of its ResolutionUnit entry) decodes to
    bytes that are no picture: refused in one line, on the offline decoder and the folder camera alike."""
    path = tmp_path / "pred3.tif"
    data = _write(path, RGB.astype(np.float32) / 255, True, True, compression="zlib", rowsperstrip=8)
    path.write_bytes(_unit_made(data, 317, 3))
    with pytest.raises(DataError, match=rf"^{path}: float image with NaN/inf"):
        read_image(path)
    os.utime(path, (time.time() - 600, time.time() - 600))  # settled: not a file still being written
    source = FolderSource(CameraSection(name="tiffs", source=str(tmp_path)))
    source.open()
    grabbed = source.read()
    source.close()
    assert grabbed.image is None and grabbed.reason.startswith("rejected.") and "\n" not in grabbed.error


def _unit_made(data: bytes, tag: int, value: int) -> bytes:
    """``data`` (a tifffile TIFF) with its ResolutionUnit entry made ``tag`` = ``value`` (one SHORT): a tag
    tifffile will not write, set without moving any offset."""
    unit = struct.pack("<HHI", 296, 3, 1) + struct.pack("<H", 1)
    assert data.count(unit) == 1
    return data.replace(unit, struct.pack("<HHIH", tag, 3, 1, value))


def test_a_predictor_tag_on_uncompressed_strips_is_ignored_as_libtiff_does(tmp_path):
    """Predictor 2 means nothing without compression (libtiff applies it in its codecs only): the sibling
    without alpha reads the stored samples, and so must the page with alpha."""
    samples = RGB.astype(np.uint32) * 16
    with_alpha = _unit_made(_write(tmp_path / "a.tif", samples, True, True), 317, 2)
    without = _unit_made(_write(tmp_path / "p.tif", samples, True, False), 317, 2)
    got, want = decode_image(with_alpha, "a.tif", 12), decode_image(without, "p.tif", 12)
    assert np.array_equal(got, want) and np.array_equal(want, _scaled(RGB.astype(int) * 16, 4095))


def _read_or_one_line(encoded: bytes) -> bool:
    """Whether ``encoded`` gave pixels; else it was refused in one line naming it (never a traceback)."""
    try:
        _pixels_or_one_line(encoded, "bad.tif")
        decode_image(encoded, "bad.tif", 12)
    except DataError:
        return False
    return True


@pytest.mark.parametrize("kind,colour", [("float32", True), ("float64", False), ("uint32", True)])
def test_a_damaged_tiff_with_alpha_is_pixels_or_one_line(tmp_path, kind, colour):
    """A bounded fuzz, as for planar pages: 1-3 bytes of the header, IFD and tag values set at random, a third of
    the files also cut short; each tag's type made UNDEFINED. Each is pixels or one line naming the file, and
    damage the page does without (its Software text, a resolution) still gives pixels."""
    good = _write(tmp_path / "good.tif", _KINDS[kind][2](RGB if colour else GREY), colour, True,
                  compression="zlib", rowsperstrip=8)
    rng = np.random.default_rng(5)
    read = 0
    for trial in range(150):
        bad = bytearray(good)
        for at in rng.integers(0, 300, rng.integers(1, 4)):
            bad[at] = int(rng.integers(0, 256))
        if trial % 3 == 0:
            bad = bad[:int(rng.integers(8, len(bad)))]
        read += _read_or_one_line(bytes(bad))
    ifd = struct.unpack_from("<I", good, 4)[0]
    for entry in range(struct.unpack_from("<H", good, ifd)[0]):
        bad = bytearray(good)
        struct.pack_into("<H", bad, ifd + 2 + 12 * entry + 2, 7)
        read += _read_or_one_line(bytes(bad))
    assert read >= 5, read


@pytest.mark.parametrize("name, photometric, extra", [
    ("miniswhite_alpha", "miniswhite", [2]),
    ("alpha_and_another", "minisblack", [2, 0]),
    ("alpha_turned", "minisblack", [2]),
])
def test_an_8_bit_grey_page_with_unassociated_alpha_is_read_as_stored_on_every_path(tmp_path, name, photometric,
                                                                                  extra):
    """8-bit grey + unassociated alpha went to Pillow (the route that keeps an RGBA page's colour unpremultiplied),
    which refuses a MinIsWhite grey page with alpha and a grey page with two extra samples: both were refused as
    undecodable ("cannot identify image file <_io.BytesIO …>") on every path. OpenCV reads a grey page's stored
    values, alpha dropped, MinIsWhite inverted, turned by its Orientation."""
    alpha = np.full(GREY.shape, 100, np.uint8)
    alpha[:, :5] = 0
    stored = 255 - GREY if photometric == "miniswhite" else GREY
    turned = name == "alpha_turned"
    tags = [(274, 3, 1, 6, True)] if turned else []
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, np.dstack([stored] + [alpha] * len(extra)), photometric=photometric, extrasamples=extra,
                     extratags=tags)
    want = np.dstack([np.rot90(GREY, -1) if turned else GREY] * 3)
    assert np.abs(read_image(path).astype(int) - want).max() == 0
    if not turned:  # the model-input paths resize to the sibling tests' (H, W): a turned page is another shape
        reference = _every_path(_sibling(tmp_path, GREY))["dataset"]
        for where, pixels in _every_path(path).items():
            assert np.array_equal(pixels, reference), where


def _sibling(tmp_path, grey: np.ndarray):
    """The same grey picture as a plain 8-bit TIFF without alpha, alone in its own folder."""
    folder = tmp_path / "sibling"
    folder.mkdir(exist_ok=True)
    tifffile.imwrite(folder / "plain.tif", grey)
    return folder / "plain.tif"


_MIRRORED = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 6: lambda a: np.rot90(a, -1),
             7: lambda a: np.rot90(np.swapaxes(a, 0, 1), 2)}


@pytest.mark.parametrize("orientation", sorted(_MIRRORED))
@pytest.mark.parametrize("colour", [False, True])
def test_8_bit_tiles_whose_orientation_mirrors_the_page_read_turned_not_scrambled(tmp_path, orientation, colour):
    """OpenCV's tile reader scrambles an 8-bit tiled page whose Orientation mirrors it (2, 3, 6, 7: each tile
    turned in its place): the picture came out as garbage on every path. Read as its strips are."""
    picture = RGB if colour else GREY
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, picture, tile=(16, 16), compression="zlib", photometric="rgb" if colour else "minisblack",
                     extratags=[(274, 3, 1, orientation, True)])
    want = _MIRRORED[orientation](picture)
    assert np.array_equal(read_image(path), want if colour else np.dstack([want] * 3))


@pytest.mark.parametrize("name, photometric, extra, orientation, readable", [
    ("grey_unassociated", "minisblack", [2], 1, True),   # Pillow reads it (OpenCV misreads grey tiles with alpha)
    ("rgb_associated", "rgb", [1], 1, True),             # OpenCV keeps the stored colour (Pillow unpremultiplies)
    ("miniswhite_associated", "miniswhite", [1], 1, False),
    ("rgb_associated_turned", "rgb", [1], 6, False),
])
def test_8_bit_tiles_with_alpha_give_their_stored_values_or_one_line(tmp_path, name, photometric, extra,
                                                                      orientation, readable):
    """8-bit tiled pages with alpha: read as stored where a reader reads them right, else refused in one line.
    A MinIsWhite grey page with associated alpha came out as garbage (OpenCV), an RGBA one turned by its
    Orientation scrambled."""
    colour = photometric == "rgb"
    picture = RGB if colour else GREY
    alpha = np.full(GREY.shape, 100, np.uint8)
    stored = 255 - picture if photometric == "miniswhite" else picture
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, np.dstack([stored, alpha]), tile=(16, 16), compression="zlib", photometric=photometric,
                     extrasamples=extra, extratags=[(274, 3, 1, orientation, True)] if orientation != 1 else [])
    if not readable:
        with pytest.raises(DataError) as exc:
            read_image(path)
        assert str(exc.value).startswith(f"{path}: cannot ") and "\n" not in str(exc.value), exc.value
        return
    assert np.array_equal(read_image(path), picture if colour else np.dstack([picture] * 3))
