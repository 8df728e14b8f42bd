"""A MinIsWhite TIFF page is inverted against the white its samples are then read by, at every sample type and
depth: ``white - x`` with :func:`inspector.data.images.white_level` of the samples as stored, never 1.0, 255 or
the container's maximum while the scaling reads by another (module docstring of inspector.data.images).

Before: a float32 page on a 12-bit scale (``bit_depth: 12``: 0..4095) was inverted as ``255 - x`` (mostly
negative: black), a 16-bit page holding 12-bit data as ``65535 - x`` (all above 4095: white), a signed one as
``32767 - x`` (white). Real TIFF files written by tifffile, read through the public decoder (read_image).
"""

from __future__ import annotations

import numpy as np
import pytest

from inspector.data.images import read_image

tifffile = pytest.importorskip("tifffile")

H, W = 16, 24
RAMP = np.linspace(0.0, 1.0, H * W).reshape(H, W)  # displayed brightness, 0 black .. 1 white


def _write(path, shown: np.ndarray, dtype, white: float, miniswhite: bool, extratags=()) -> None:
    """``shown`` (0..1 brightness) stored on the scale 0..``white`` as ``dtype``; MinIsWhite stores ``white - v``."""
    values = shown * white
    stored = (white - values) if miniswhite else values
    stored = stored.astype(dtype) if np.dtype(dtype).kind == "f" else np.rint(stored).astype(dtype)
    tifffile.imwrite(path, stored, photometric="miniswhite" if miniswhite else "minisblack", extratags=extratags)


def _expected(shown: np.ndarray, white: float, dtype) -> np.ndarray:
    """The uint8 grey the decoder must give: the displayed values on the scale 0..``white``, scaled to 255."""
    values = shown * white
    if np.dtype(dtype).kind != "f":
        values = np.rint(values)
    return np.clip(values * (255.0 / white) + 0.5, 0, 255).astype(np.uint8)


MAX_SAMPLE_4095 = [(281, "H", 1, 4095, True)]  # MaxSampleValue: 12-bit data declared by the file
S_MAX_4095 = [(341, "f", 1, 4095.0, True)]  # SMaxSampleValue: the maximum of samples that are not unsigned integers

# (sample type, the white its data is on, bit_depth setting, extra TIFF tags): every combination the rule tells
CASES = {
    "float32 0..1": (np.float32, 1.0, None, ()),
    "float32 0..1, bit_depth 12 (max <= 1: still 0..1)": (np.float32, 1.0, 12, ()),
    "float32 0..4095, bit_depth 12": (np.float32, 4095.0, 12, ()),
    "float32 0..1023, bit_depth 10": (np.float32, 1023.0, 10, ()),
    "float32 0..255, no bit_depth": (np.float32, 255.0, None, ()),
    "float64 0..16383, bit_depth 14": (np.float64, 16383.0, 14, ()),
    "uint16 12-bit, bit_depth 12": (np.uint16, 4095, 12, ()),
    "uint16 10-bit, bit_depth 10": (np.uint16, 1023, 10, ()),
    "uint16 16-bit, no bit_depth": (np.uint16, 65535, None, ()),
    "uint16 12-bit declared by MaxSampleValue": (np.uint16, 4095, None, MAX_SAMPLE_4095),
    "uint16 declared 12-bit wins over bit_depth 14": (np.uint16, 4095, 14, MAX_SAMPLE_4095),
    "int16 12-bit, bit_depth 12": (np.int16, 4095, 12, ()),
    "int16 no bit_depth (0..32767)": (np.int16, 32767, None, ()),
    "uint8": (np.uint8, 255, None, ()),
    # a float page's white declared by the file (SMaxSampleValue, else MaxSampleValue, of 2**n - 1) wins over the
    # samples' maximum and the setting, for MinIsWhite and MinIsBlack alike; before, a MinIsWhite float page of a
    # 12-bit camera declaring MaxSampleValue 4095 was inverted as 255 - x (black) and its MinIsBlack twin clipped
    "float32 0..4095 declared by MaxSampleValue": (np.float32, 4095.0, None, MAX_SAMPLE_4095),
    "float32 0..4095 declared by SMaxSampleValue": (np.float32, 4095.0, None, S_MAX_4095),
    "float32 0..4095 declared 12-bit wins over bit_depth 16": (np.float32, 4095.0, 16, S_MAX_4095),
    "float32 0..1 declared by SMaxSampleValue 1.0, bit_depth 12": (np.float32, 1.0, 12, [(341, "f", 1, 1.0, True)]),
    "float64 0..65535 declared by SMaxSampleValue": (np.float64, 65535.0, None, [(341, "d", 1, 65535.0, True)]),
    "float32 0..255, a max that is no 2**n - 1 says nothing": (np.float32, 255.0, None, [(341, "f", 1, 250.5, True)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_miniswhite_page_reads_as_its_minisblack_twin_on_the_same_scale(tmp_path, case):
    dtype, white, bit_depth, extratags = CASES[case]
    want = _expected(RAMP, white, dtype)
    for miniswhite in (False, True):
        path = tmp_path / f"{'white' if miniswhite else 'black'}.tif"
        _write(path, RAMP, dtype, white, miniswhite, extratags)
        got = read_image(path, bit_depth)[:, :, 0]
        diff = int(np.abs(got.astype(int) - want.astype(int)).max())
        assert diff <= 1, (case, "MinIsWhite" if miniswhite else "MinIsBlack", diff, got[0, :6], want[0, :6])


@pytest.mark.parametrize("dtype, white, bit_depth, extratags", [
    (np.float32, 4095.0, 12, ()), (np.float32, 255.0, None, ()), (np.uint16, 4095, 12, ()),
    (np.float32, 4095.0, None, MAX_SAMPLE_4095), (np.float32, 4095.0, None, S_MAX_4095)])
def test_a_dark_miniswhite_page_stays_dark(tmp_path, dtype, white, bit_depth, extratags):
    """A lens-capped camera's page: displayed 0..1 levels of 4095 (or 255), stored ``white - v`` near white's
    value. The white is chosen on the samples as stored (near 4095: the 12-bit scale); chosen again after the
    inversion, the displayed values (all ≤ 1) read as 0..1 float data and the dark page came out white."""
    shown = RAMP / white  # 0..1 level of ``white``
    path = tmp_path / "dark.tif"
    _write(path, shown, dtype, white, miniswhite=True, extratags=extratags)
    got = read_image(path, bit_depth)
    assert int(got.max()) <= 1, got.max()
