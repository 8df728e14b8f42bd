"""TIFF colour spaces other than grey, RGB and palette: CMYK is read by one rule at every depth and layout, and
CIELab is refused in one line rather than read as RGB.

CMYK (PhotometricInterpretation 5): OpenCV reads interleaved 8-bit CMYK by libtiff's RGBA reader
(``R = (255 - C)(255 - K) / 255``, rounded down) and refused 16-bit pages, pages with alpha and 8-bit planes, so
one picture was read as 8-bit and refused as 16-bit. The expected pixels are computed here from the stored inks.

CIELab (8), ICCLab (9), ITULab (10): OpenCV read the 8-bit CIELab samples L*, a*, b* as if they were R, G, B (a
neutral grey L* 50 came out (133, 123, 107), tinted) and refused the others as "corrupt or unsupported format".
They are refused, in one line naming the file and the layout, on every path: turning L*a*b* into a camera's RGB
needs a white point and a colour transform the camera never applied (the decoder's rule is no colour
management), and a model scoring a guessed conversion is scoring pixels the camera did not produce.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from inspector.data.images import ImageRejected, decode_image, read_image
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import FolderSource
from tests.data.test_pixel_layouts import H, RGB, W, _every_path, _scaled, _tiff_page

# inks with every combination of light and dark: a CMYK separation of the test picture, K the shared darkness
_K = (255 - RGB.max(axis=2)).astype(np.uint8)
_INKS8 = np.dstack([255 - RGB[:, :, k] - _K // 2 for k in range(3)] + [_K]).astype(np.uint8)
_INKS16 = _INKS8.astype(np.uint16) * 257 + np.arange(W, dtype=np.uint16)[None, :, None] % 200  # low bits vary


def _cmyk_pixels(inks: np.ndarray) -> np.ndarray:
    """Expected RGB uint8 of CMYK ``inks`` (H, W, 4): libtiff's rule at the stored depth, then scaled to 8 bits."""
    white = int(np.iinfo(inks.dtype).max)
    wide = inks.astype(np.int64)
    rgb = np.dstack([(white - wide[:, :, k]) * (white - wide[:, :, 3]) // white for k in range(3)])
    return _scaled(rgb, white)


_ALPHA = (np.arange(H * W).reshape(H, W, 1) % 256).astype(np.uint8)
CMYK_CASES = {
    "cmyk8.tif": lambda: (_tiff_page(_INKS8, 5, 1, False, extra=()), _INKS8),
    "cmyk16.tif": lambda: (_tiff_page(_INKS16, 5, 1, False, extra=()), _INKS16),
    "cmyk16_deflate_pred.tif": lambda: (_tiff_page(_INKS16, 5, 1, False, 8, 2, extra=()), _INKS16),
    "cmyk16_planar.tif": lambda: (_tiff_page(_INKS16, 5, 1, True, extra=()), _INKS16),
    "cmyk8_planar.tif": lambda: (_tiff_page(_INKS8, 5, 1, True, extra=()), _INKS8),
    "cmyk8_alpha.tif": lambda: (_tiff_page(np.dstack([_INKS8, _ALPHA]), 5, 1, False, extra=(2,)), _INKS8),
    "cmyk16_alpha.tif": lambda: (_tiff_page(np.dstack([_INKS16, _ALPHA.astype(np.uint16) * 257]), 5, 1, False,
                                            extra=(2,)), _INKS16),
}


@pytest.mark.parametrize("name", sorted(CMYK_CASES))
def test_a_cmyk_tiff_is_read_by_one_rule_at_every_depth_and_layout_on_every_path(tmp_path, name):
    """Before: only cmyk8.tif was read; the 16-bit, planar and alpha pages were refused as undecodable."""
    encoded, inks = CMYK_CASES[name]()
    (tmp_path / name).write_bytes(encoded)
    want = _cmyk_pixels(inks)
    for path_name, got in _every_path(tmp_path / name).items():
        assert np.array_equal(got, want), f"{name}: {path_name}, max {np.abs(got.astype(int) - want).max()} off"


def test_a_16_bit_cmyk_page_reads_within_a_level_of_its_8_bit_copy():
    """The same inks as 8 and 16 bits (x 257) give one picture: libtiff's 8-bit rule rounds down, the 16-bit
    one's scaling rounds to nearest, so they may differ by one level, never more."""
    eight = decode_image(_tiff_page(_INKS8, 5, 1, False, extra=()), "cmyk8.tif")
    sixteen = decode_image(_tiff_page(_INKS8.astype(np.uint16) * 257, 5, 1, False, extra=()), "cmyk16.tif")
    assert np.abs(eight.astype(int) - sixteen).max() <= 1


def _lab_page(photometric: int, bits: int) -> bytes:
    """A neutral mid grey (L* 50, a* = b* = 0) as the layout stores it (TIFF 6.0 Section 23, TIFF Technical Note
    3): 8-bit CIELab's a*, b* are signed, ICCLab's offset by 128 (32768 at 16 bits), L* scaled to the full range."""
    dtype = np.uint8 if bits == 8 else np.uint16
    top = int(np.iinfo(dtype).max)
    zero = 0 if photometric == 8 else (top + 1) // 2
    page = np.empty((H, W, 3), dtype)
    page[:, :, 0], page[:, :, 1:] = top // 2, zero
    return _tiff_page(page, photometric, 1, False)


@pytest.mark.parametrize("photometric,bits", [(8, 8), (8, 16), (9, 8), (9, 16), (10, 8)])
def test_a_lab_tiff_is_refused_in_one_line_on_every_path(tmp_path, photometric, bits):
    """Before: the 8-bit CIELab page came out (133, 123, 107) for a neutral grey; the others "corrupt or
    unsupported format", which sent the user looking for damage."""
    path = tmp_path / f"lab{photometric}_{bits}.tif"
    path.write_bytes(_lab_page(photometric, bits))
    with pytest.raises(ImageRejected) as refused:
        read_image(path)
    message = str(refused.value)
    assert refused.value.reason == "unsupported" and "\n" not in message
    assert message.startswith(f"{path}: a CIELab TIFF (PhotometricInterpretation {photometric}")
    assert "save it as RGB or grey" in message
    os.utime(path, (time.time() - 600, time.time() - 600))  # settled: not a file still being written
    source = FolderSource(CameraSection(name="lab", source=str(tmp_path)))
    source.open()
    grabbed = source.read()
    source.close()
    assert grabbed.image is None and grabbed.reason == "rejected.unsupported" and "CIELab" in grabbed.error


@pytest.mark.parametrize("orientation", [1, 2, 6])
def test_8_bit_cmyk_tiles_read_as_its_strips(tmp_path, orientation):
    """8-bit tiles are read by Pillow (OpenCV's tile reader scrambles some), whose own CMYK conversion rounds where
    libtiff's, that strips are read by, rounds down: half the pixels of one picture were one level apart."""
    tifffile = pytest.importorskip("tifffile")
    turned = {"extratags": [(274, 3, 1, orientation, False)]}
    tifffile.imwrite(tmp_path / "strips.tif", _INKS8, photometric="separated", **turned)
    tifffile.imwrite(tmp_path / "tiles.tif", _INKS8, photometric="separated", tile=(16, 16), **turned)
    strips, tiles = read_image(tmp_path / "strips.tif"), read_image(tmp_path / "tiles.tif")
    assert np.array_equal(tiles, strips)
    if orientation == 1:
        assert np.array_equal(strips, _cmyk_pixels(_INKS8))


@pytest.mark.parametrize("photometric,samples,name", [(32803, 1, "CFA"), (34892, 3, "LinearRaw"),
                                                       (4, 1, "transparency mask")])
def test_a_tiff_of_a_photometric_interpretation_no_reader_takes_is_refused_naming_it(tmp_path, photometric, samples,
                                                                                     name):
    """A whole Bayer mosaic (TIFF/EP CFA), DNG LinearRaw samples or a transparency mask were "cannot decode image
    (corrupt or unsupported format)", which sent the user looking for damage in a whole file."""
    rng = np.random.default_rng(1)
    path = tmp_path / f"photometric{photometric}.tif"
    path.write_bytes(_tiff_page(rng.integers(0, 256, (H, W, samples), dtype=np.uint8), photometric, 1, False,
                                extra=()))
    with pytest.raises(ImageRejected) as refused:
        read_image(path)
    assert refused.value.reason == "unsupported"
    assert str(refused.value).startswith(f"{path}: a TIFF of PhotometricInterpretation {photometric} ({name}")
    os.utime(path, (time.time() - 600, time.time() - 600))
    source = FolderSource(CameraSection(name="raw", source=str(tmp_path)))
    source.open()
    grabbed = source.read()
    source.close()
    assert grabbed.image is None and grabbed.reason == "rejected.unsupported" and name in grabbed.error
