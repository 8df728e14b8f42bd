"""A PNG whose sBIT or eXIf chunk is damaged (its CRC fails) is refused, not read unscaled or unturned; a damaged
chunk that changes no pixel here (text, gamma) leaves the file readable, and damaged pixel data stays refused.

libpng drops an ancillary chunk whose CRC fails and decodes the file; the decoder's own readers of sBIT (the
significant bits a 16-bit picture is scaled by) and eXIf (its orientation) read the damaged chunk as it stood."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from inspector.data.images import ImageRejected, decode_image, read_image
from inspector.data.png_damage import png_damage


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(grey16: np.ndarray, extra: bytes = b"") -> bytes:
    """A 16-bit grey PNG of ``grey16`` (H, W) with the chunks ``extra`` before its pixel data."""
    h, w = grey16.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in grey16)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)) + extra
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _chunk(b"eXIf", exif.tobytes())


def _flipped(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


PICTURE = np.random.default_rng(0).integers(0, 4096, (20, 30)).astype(np.uint16)  # 12-bit samples


@pytest.mark.parametrize("bit", [0, 1, 2, 3])
def test_a_png_whose_sbit_chunk_is_damaged_is_refused_not_scaled_by_it(bit, tmp_path):
    data = _png(PICTURE, _chunk(b"sBIT", bytes([12])))
    assert decode_image(data, "p.png").max() == round(int(PICTURE.max()) * 255 / 4095)  # the intact file: 12-bit data
    bad = _flipped(data, data.index(b"sBIT") + 4, bit)  # 12 → 13, 14, 8, 4: the pixels scaled 2x, 4x … off
    (tmp_path / "p.png").write_bytes(bad)
    with pytest.raises(ImageRejected, match=r"p\.png: damaged PNG \(its sBIT chunk at byte 33 fails its CRC") as err:
        read_image(tmp_path / "p.png")
    assert err.value.reason == "corrupt"


@pytest.mark.parametrize("offset", [8, 14, 20, 30])
def test_a_png_whose_exif_chunk_is_damaged_is_refused_not_read_unturned(offset):
    data = _png(PICTURE, _exif(6))
    assert decode_image(data, "p.png").shape == (30, 20, 3)  # the intact file: turned a quarter
    bad = _flipped(data, data.index(b"eXIf") + offset, 2)
    assert png_damage(bad) is not None
    with pytest.raises(ImageRejected, match=r"^p\.png: damaged PNG \(its eXIf chunk .* fails its CRC"):
        decode_image(bad, "p.png")


@pytest.mark.parametrize("kind, data", [(b"tEXt", b"Comment\0line 4"), (b"gAMA", struct.pack(">I", 45455))])
def test_a_damaged_chunk_that_changes_no_pixel_leaves_the_png_readable(kind, data):
    good = _png(PICTURE, _chunk(b"sBIT", bytes([12])) + _chunk(kind, data))
    bad = _flipped(good, good.index(kind) + 6, 0)
    assert png_damage(bad) is None
    assert np.array_equal(decode_image(bad, "p.png"), decode_image(good, "p.png"))


def test_damaged_pixel_data_stays_refused():
    data = _png(PICTURE, _chunk(b"sBIT", bytes([12])))
    bad = _flipped(data, data.index(b"IDAT") + 40, 3)
    with pytest.raises(ImageRejected, match=r"^p\.png: cannot decode image") as err:
        decode_image(bad, "p.png")
    assert err.value.reason == "corrupt"


def test_a_png_cut_short_written_by_pillow_or_no_png_is_not_called_damaged(tmp_path):
    data = _png(PICTURE, _exif(3))
    assert png_damage(data[:40]) is None  # its eXIf cut: the decoder refuses a cut file itself
    assert png_damage(b"GIF89a" + data) is None
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(PICTURE[:, :, None].repeat(3, 2).astype(np.uint8)).save(tmp_path / "p.png", exif=exif)
    assert png_damage((tmp_path / "p.png").read_bytes()) is None
    assert read_image(tmp_path / "p.png").shape == (30, 20, 3)
