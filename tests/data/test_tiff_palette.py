"""Palette TIFF pages (PhotometricInterpretation 3) of every depth a reader meets give their ColorMap's colours.

TIFF 6.0 Section 5: Baseline palette pages are 4 or 8 bits; the ColorMap (3 x 2**BitsPerSample SHORTs) is defined
for any depth, and 1-, 2- and 16-bit palette files exist (GDAL writes 16-bit ones). OpenCV read a 1-bit palette
page as black and white (its ColorMap ignored: wrong pixels without a word) and refused 2- and 16-bit ones as
"corrupt"; a depth no reader takes is refused in one line naming it."""

import struct

import numpy as np
import pytest

from inspector.data.images import ImageRejected, decode_image, read_image
from inspector.data.tiff_retag import palette_colours


def palette_tiff(indices: np.ndarray, colormap: np.ndarray, bits: int, order: str = "<", orientation: int = 1) -> bytes:
    """A one-strip uncompressed palette TIFF of ``indices`` (H, W) at ``bits`` a sample (rows packed most
    significant bit first, each row to a whole byte) and ``colormap`` (3, N) uint16, written here because neither
    Pillow nor tifffile writes palettes of 1, 2 or 16 bits."""
    h, w = indices.shape
    if bits >= 8:
        pixels = indices.astype(f"{order}u{bits // 8}").tobytes()
    else:
        unpacked = np.unpackbits(indices.astype(np.uint8)[..., None], axis=2)[..., 8 - bits:]
        pixels = b"".join(np.packbits(row.ravel()).tobytes() for row in unpacked)
    cmap = struct.pack(f"{order}{colormap.size}H", *colormap.astype(int).ravel().tolist())
    pix_at = 8 + 2 + 12 * 11 + 4
    cmap_at = pix_at + len(pixels) + (len(pixels) & 1)
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, bits), (259, 3, 1, 1), (262, 3, 1, 3), (273, 4, 1, pix_at),
               (274, 3, 1, orientation), (277, 3, 1, 1), (278, 3, 1, h), (279, 4, 1, len(pixels)),
               (320, 3, colormap.size, cmap_at)]
    out = [(b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8), struct.pack(order + "H", 11)]
    for tag, kind, count, value in entries:
        packed = struct.pack(order + ("H" if kind == 3 and count == 1 else "I"), value)
        out.append(struct.pack(order + "HHI", tag, kind, count) + packed.ljust(4, b"\0"))
    return b"".join(out) + b"\0" * 4 + pixels + b"\0" * (len(pixels) & 1) + cmap


def _page(bits: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << bits, (12, 19)), rng.integers(0, 65536, (3, 1 << bits)).astype(np.uint16)


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("orientation", [1, 6])
def test_a_palette_tiff_gives_its_colormap_colours_at_every_depth(bits, order, orientation, tmp_path):
    indices, colormap = _page(bits)
    (tmp_path / "p.tif").write_bytes(palette_tiff(indices, colormap, bits, order, orientation))
    want = (colormap[:, indices] >> 8).transpose(1, 2, 0).astype(np.uint8)  # each colour's high byte (libtiff)
    want = np.rot90(want, -1) if orientation == 6 else want  # 6: turned a quarter clockwise to display
    assert np.array_equal(read_image(tmp_path / "p.tif"), want)


def test_a_16_bit_palette_page_gives_the_pixels_of_its_8_bit_copy():
    indices, colormap = _page(8, seed=1)
    wide = np.zeros((3, 1 << 16), np.uint16)
    wide[:, :256] = colormap
    assert np.array_equal(decode_image(palette_tiff(indices, wide, 16), "p16.tif"),
                          decode_image(palette_tiff(indices, colormap, 8), "p8.tif"))


def test_an_old_8_bit_colormap_is_taken_as_it_is():
    """libtiff (tif_getimage.c checkcmap): a ColorMap whose values are all below 256 was written by old software
    as 8-bit colours; OpenCV reads an 8-bit page's so, and a 16-bit page's is read by the same rule."""
    indices = np.arange(12 * 19).reshape(12, 19) % 7
    colormap = np.zeros((3, 1 << 16), np.uint16)
    colormap[:, :7] = np.array([[0, 40, 80, 120, 160, 200, 255]] * 3) // np.array([[1], [2], [3]])
    out = decode_image(palette_tiff(indices, colormap, 16), "p16.tif")
    assert np.array_equal(out, colormap[:, indices].transpose(1, 2, 0))
    assert np.array_equal(palette_colours(indices, colormap[:, :8]), out[..., ::-1])


def test_a_16_bit_palette_page_without_its_whole_colormap_is_refused_in_one_line():
    indices, colormap = _page(16)
    with pytest.raises(ImageRejected, match=r"^p\.tif: cannot read palette TIFF of 16-bit indices: its ColorMap "
                                            r"holds 768 values, not 3 x 2\*\*16 = 196608$") as err:
        decode_image(palette_tiff(indices % 256, colormap[:, :256], 16), "p.tif")
    assert err.value.reason == "corrupt"


def test_a_palette_depth_no_reader_takes_is_refused_naming_it():
    indices, colormap = _page(3)
    with pytest.raises(ImageRejected, match=r"^p\.tif: a palette TIFF of 3-bit indices, which the decoder does not "
                                            r"read") as err:
        decode_image(palette_tiff(indices, colormap, 3), "p.tif")
    assert err.value.reason == "unsupported"
