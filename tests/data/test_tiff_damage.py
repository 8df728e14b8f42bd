"""A TIFF whose deflate (or JPEG) strips or tiles are damaged is refused as corrupt, not decoded to wrong pixels; intact
deflate pages of every layout decode as before. Uncompressed, PackBits and LZW strips carry no checksum: their
damage cannot be told (inspector.data.tiff_damage)."""

import io
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from inspector.data.images import ImageRejected, decode_image, read_image
from inspector.data.tiff_damage import tiff_damage


def _picture(shape=(64, 80, 3), dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, shape).astype(np.uint8), (5, 5), 2)
    return img.astype(dtype) * (257 if dtype == np.uint16 else 1)


def _files() -> dict[str, bytes]:
    """Deflate TIFFs as Pillow (libtiff) and tifffile write them: both compression codes, strips and tiles,
    8 and 16 bits, with and without a predictor."""
    out = {}
    for code in ("tiff_deflate", "tiff_adobe_deflate"):
        buf = io.BytesIO()
        Image.fromarray(_picture()).save(buf, "TIFF", compression=code)
        out[code] = buf.getvalue()
    for name, options in {"strips16": {"rowsperstrip": 8}, "tiles16": {"tile": (32, 32)},
                          "predictor16": {"predictor": True, "rowsperstrip": 16}}.items():
        buf = io.BytesIO()
        tifffile.imwrite(buf, _picture(dtype=np.uint16), photometric="rgb", compression="zlib", **options)
        out[name] = buf.getvalue()
    return out


def _strip(data: bytes) -> tuple[int, int]:
    """(offset, size) of the first strip or tile."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        return page.dataoffsets[0], page.databytecounts[0]


@pytest.mark.parametrize("name", list(_files()))
def test_a_tiff_whose_deflate_data_is_damaged_is_refused_as_corrupt(name, tmp_path):
    data = _files()[name]
    at, size = _strip(data)
    told = silent = 0
    for k, pos in enumerate(np.linspace(at + 2, at + size - 16, 8).astype(int)):  # past the zlib header, before the last block's end
        bad = bytearray(data)
        bad[pos] ^= 1 << (k % 8)
        garbage = cv2.imdecode(np.frombuffer(bytes(bad), np.uint8), cv2.IMREAD_UNCHANGED)
        silent += garbage is not None  # what made it a wrong decision: OpenCV decoded it without a word
        with pytest.raises(ImageRejected, match=r"^p\.tif: damaged TIFF data \((strip|tile) 0 of its deflate data "
                                                r"fails its zlib check") as err:
            decode_image(bytes(bad), "p.tif")
        told += err.value.reason == "corrupt"
    assert told == 8 and silent >= 1  # OpenCV refuses some flips of 16-bit strips itself
    bad = bytearray(data)
    bad[at + size // 2] ^= 0x10
    (tmp_path / "p.tif").write_bytes(bytes(bad))
    with pytest.raises(ImageRejected, match="damaged TIFF data"):
        read_image(tmp_path / "p.tif")


@pytest.mark.parametrize("name", list(_files()))
def test_an_intact_deflate_tiff_decodes_its_stored_samples(name):
    data = _files()[name]
    assert tiff_damage(data) is None
    want = tifffile.imread(io.BytesIO(data))
    scale = 257 if want.dtype == np.uint16 else 1
    assert np.array_equal(decode_image(data, "p.tif").astype(np.uint16) * scale, want)


def test_a_deflate_strip_cut_short_is_left_to_the_decoder():
    data = _files()["tiff_adobe_deflate"]
    at, size = _strip(data)
    assert tiff_damage(data[:at + size // 2]) is None  # a copy still being written: not called damaged here
    stream = zlib.compress(b"\0" * 100)
    assert tiff_damage(b"II*\0" + stream) is None  # no readable IFD: the decoder judges


def test_lzw_strips_carry_no_checksum_so_their_damage_is_not_told():
    buf = io.BytesIO()
    Image.fromarray(_picture()).save(buf, "TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    at, size = _strip(bytes(data))
    data[at + size // 2] ^= 0x10
    assert tiff_damage(bytes(data)) is None  # the limit, said in tiff_damage's docstring


def _jpeg_tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_picture((96, 128, 3))).save(buf, "TIFF", compression="jpeg", quality=90)
    return buf.getvalue()


def test_a_tiff_whose_jpeg_strip_is_damaged_is_refused_as_a_jpeg_file_would_be():
    """A JPEG strip is judged by the JPEG rule (jpeg_damage), its JPEGTables put back in front: a bad copy of 32
    bytes decoded with only a libjpeg warning, wrong pixels scored as a part."""
    data = _jpeg_tiff()
    at, size = _strip(data)
    bad = bytearray(data)
    bad[at + size // 2:at + size // 2 + 32] = b"\x5a" * 32
    assert cv2.imdecode(np.frombuffer(bytes(bad), np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV: no word
    with pytest.raises(ImageRejected, match=r"^p\.tif: damaged TIFF data \(strip 0 of its JPEG data is damaged "
                                            r"\(Corrupt JPEG data") as err:
        decode_image(bytes(bad), "p.tif")
    assert err.value.reason == "corrupt"


def test_an_intact_jpeg_tiff_is_not_called_damaged():
    data = _jpeg_tiff()
    assert tiff_damage(data) is None
    want = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_image(data, "p.tif"), want)
