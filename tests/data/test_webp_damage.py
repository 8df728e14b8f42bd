"""A WebP whose container or lossy data is damaged is refused as corrupt, not scored as wrong pixels; intact WebP
files of every kind (lossy at any quality, lossless, alpha, EXIF, animated) decode as before. A flip in lossless
data is not tellable (inspector.data.webp_damage): what libwebp refuses there is refused in one line."""

import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from inspector.data.images import ImageRejected, decode_image, read_image
from inspector.data.webp_damage import VP8_SPARE, webp_damage


def _picture(seed: int, shape=(120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    ramp = np.linspace(0, 120, shape[1], dtype=np.float32)[None, :, None]
    return (cv2.GaussianBlur(noise, (7, 7), 2) * 0.5 + ramp).astype(np.uint8)


def _webp(img: np.ndarray, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(img).save(out, "WEBP", **options)
    return out.getvalue()


def _chunk(data: bytes, kind: bytes) -> tuple[int, int]:
    """(payload offset, size) of the first top-level chunk ``kind``."""
    pos = 12
    while pos + 8 <= len(data):
        name, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if name == kind:
            return pos + 8, size
        pos += 8 + size + (size & 1)
    raise AssertionError(f"no {kind!r} chunk")


def _flipped(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


def _token_flips(data: bytes, count: int = 12) -> list[tuple[int, int]]:
    """Flips spread over a lossy picture's token data (after its first partition, away from its last bytes)."""
    at, size = _chunk(data, b"VP8 ")
    first = at + 10 + (int.from_bytes(data[at:at + 3], "little") >> 5)  # frame tag's first-partition size
    return [(int(p), i % 8) for i, p in enumerate(np.linspace(first, at + size - 4 * VP8_SPARE, count))]


@pytest.mark.parametrize("seed, quality", [(2, 95), (1, 80)])
def test_a_lossy_webp_with_flipped_bits_in_its_data_is_refused_as_corrupt(seed, quality, tmp_path):
    """16 flips spread over the token data: libwebp alone decoded 16 and 8 of them to wrong pixels without a word.
    Not every flip can be told (webp_damage's docstring: a misreading that ends within the encoder's spare bytes);
    these pictures' flips but one (two) are."""
    data = _webp(_picture(seed, (240, 320)), quality=quality)
    good = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    silent, refused = 0, 0
    for pos, bit in _token_flips(data, 16):
        bad = _flipped(data, pos, bit)
        garbage = cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR)
        # what made this a wrong decision: libwebp decodes many such files without a word, to other pixels
        silent += garbage is not None and not np.array_equal(garbage, good)
        try:
            decode_image(bad, f"part-{pos}.webp")
        except ImageRejected as err:
            refused += 1
            told = "damaged WebP data (its lossy (VP8) picture decodes" if garbage is not None else "cannot decode"
            assert err.reason == "corrupt" and str(err).startswith(f"part-{pos}.webp: {told}")
    assert silent >= 6 and refused >= 14
    (tmp_path / "p.webp").write_bytes(_flipped(data, *_token_flips(data, 16)[5]))
    with pytest.raises(ImageRejected, match="damaged WebP data"):
        read_image(tmp_path / "p.webp")


def _with_exif(img: np.ndarray, lossless: bool) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return _webp(img, exif=exif, **({"lossless": True} if lossless else {"quality": 85}))


@pytest.mark.parametrize("lossless", [False, True])
@pytest.mark.parametrize("chunk", [b"VP8 ", b"EXIF"])
@pytest.mark.parametrize("bit", [0, 1, 4])
def test_a_webp_whose_chunk_size_is_damaged_is_refused_as_corrupt(lossless, chunk, bit):
    """A flipped chunk size: libwebp read the picture by its own chunk's size and decoded it anyway, the EXIF
    orientation lost (the picture came out unturned) or the picture's data cut or overrun."""
    data = _with_exif(_picture(3, (60, 90)), lossless)
    at, _ = _chunk(data, b"VP8L" if lossless and chunk == b"VP8 " else chunk)
    bad = _flipped(data, at - 4, bit)
    with pytest.raises(ImageRejected, match=r"^x\.webp: damaged WebP data \(.*chunk") as err:
        decode_image(bad, "x.webp")
    assert err.value.reason == "corrupt"


@pytest.mark.parametrize("lossless", [False, True])
def test_a_webp_whose_exif_chunk_lost_its_name_is_refused_not_read_unturned(lossless):
    data = _with_exif(_picture(4, (60, 90)), lossless)
    assert decode_image(data, "x.webp").shape == (90, 60, 3)  # turned by its orientation
    at, _ = _chunk(data, b"EXIF")
    bad = _flipped(data, at - 8, 5)  # 'EXIF' → 'eXIF': a chunk libwebp skips, and the orientation with it
    with pytest.raises(ImageRejected, match="declares EXIF metadata .* but the file holds no EXIF chunk"):
        decode_image(bad, "x.webp")


@pytest.mark.parametrize("options", [{"quality": q} for q in (1, 20, 50, 80, 90, 100)]
                         + [{"quality": 80, "method": 0}, {"quality": 80, "method": 6}, {"lossless": True},
                            {"lossless": True, "quality": 0}])
def test_intact_webp_files_decode_as_opencv_decodes_them(options):
    for seed, shape in ((5, (120, 160)), (6, (8, 8)), (7, (17, 33)), (8, (300, 200))):
        img = _picture(seed, shape)
        for picture in (img, np.full_like(img, 127)):  # textured and flat (few bytes of data)
            data = _webp(picture, **options)
            assert webp_damage(data) is None
            want = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            assert np.array_equal(decode_image(data, "x.webp"), want)


def test_intact_webp_with_alpha_exif_animation_or_trailing_bytes_is_not_called_damaged():
    img = _picture(9, (64, 80))
    rgba = np.dstack([img, np.linspace(0, 255, 80, dtype=np.uint8)[None].repeat(64, 0)])
    frames = [Image.fromarray(_picture(s, (64, 80))) for s in (10, 11, 12)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=40, quality=80)
    files = [_webp(rgba, quality=80), _webp(rgba, lossless=True), _with_exif(img, False), _with_exif(img, True),
             out.getvalue(), _webp(img, quality=80) + b"\0" * 16]
    for data in files:
        assert webp_damage(data) is None
        decode_image(data, "x.webp")


def test_a_damaged_first_frame_of_an_animated_webp_is_told():
    frames = [Image.fromarray(_picture(s)) for s in (13, 14)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=40, quality=80)
    data = out.getvalue()
    at = data.index(b"VP8 ") + 8
    size = struct.unpack_from("<I", data, at - 4)[0]
    bad = _flipped(data, at + size // 2, 3)
    assert "lossy (VP8) picture" in (webp_damage(bad) or "")


@pytest.mark.parametrize("lossless", [False, True])
def test_a_truncated_webp_is_refused_in_one_line(lossless):
    data = _webp(_picture(15), **({"lossless": True} if lossless else {"quality": 80}))
    for cut in (len(data) // 3, len(data) - 5):
        assert webp_damage(data[:cut]) is None  # cut short: the decoder refuses it, the sources wait for the rest
        with pytest.raises(ImageRejected, match=r"^x\.webp: cannot decode image") as err:
            decode_image(data[:cut], "x.webp")
        assert err.value.reason == "corrupt"
