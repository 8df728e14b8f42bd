"""A JPEG whose compressed data is damaged is refused as corrupt, not scored as garbage; a whole one, padding
before its end marker, and the layouts libjpeg-turbo cannot judge (CMYK) decode exactly as before."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from inspector.data.images import ImageRejected, decode_image, read_image
from inspector.data.jpeg_damage import jpeg_damage


def _part() -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(0)
    img = (rng.random((240, 320, 3)) * 60 + np.linspace(0, 180, 320)[None, :, None]).astype(np.uint8)
    return img, cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _damaged() -> dict[str, bytes]:
    _, data = _part()
    mid = len(data) // 2
    overwritten = bytearray(data)
    overwritten[mid:mid + 32] = b"\x5a" * 32  # a bad copy: 32 bytes of the scan replaced
    return {"lost block": data[:mid] + data[mid + 800:], "overwritten": bytes(overwritten)}


@pytest.mark.parametrize("kind", ["lost block", "overwritten"])
def test_a_jpeg_with_damaged_compressed_data_is_refused_as_corrupt(kind, tmp_path):
    data = _damaged()[kind]
    garbage = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    good, _ = _part()
    # what made this a wrong decision: OpenCV decodes it without a word, tens of levels off the part
    assert garbage is not None and np.abs(garbage.astype(int) - cv2.imdecode(
        np.frombuffer(_part()[1], np.uint8), cv2.IMREAD_COLOR)).mean() > 5
    with pytest.raises(ImageRejected) as refused:
        decode_image(data, "cam/0001.jpg")
    assert refused.value.reason == "corrupt"
    assert str(refused.value).startswith("cam/0001.jpg: damaged JPEG data (Corrupt JPEG data")
    path = tmp_path / "0001.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageRejected, match="damaged JPEG data"):
        read_image(path)


def test_a_whole_jpeg_and_one_padded_before_its_end_decode_as_opencv_does():
    _, data = _part()
    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    # fill bytes, and a stray byte or two past the bit reader's read-ahead (7 bytes: "2 extraneous bytes before
    # marker 0xd9"), between the last scan and the end marker
    padded = {tail: data[:-2] + tail + data[-2:] for tail in (b"\x00" * 16, b"\xff" * 16, b"\x5a" * 7)}
    for name, variant in {"whole": data, **padded}.items():
        assert jpeg_damage(variant) is None, name
        assert np.array_equal(decode_image(variant, "x.jpg", order="BGR"), reference), name


def test_layouts_libjpeg_turbo_cannot_judge_are_decoded_as_before():
    img, _ = _part()
    cmyk, progressive = io.BytesIO(), io.BytesIO()
    Image.fromarray(img).convert("CMYK").save(cmyk, "JPEG")
    Image.fromarray(img).save(progressive, "JPEG", progressive=True)
    for data in (cmyk.getvalue(), progressive.getvalue(), cv2.imencode(".jpg", img[..., 0])[1].tobytes()):
        assert jpeg_damage(data) is None
        assert decode_image(data, "x.jpg").shape[:2] == (240, 320)
