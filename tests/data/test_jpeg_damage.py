"""A JPEG whose compressed data is damaged is refused as corrupt, not scored as garbage; a whole one, padding
before its end marker, and the layouts libjpeg-turbo cannot judge (CMYK) decode exactly as before."""

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inspector.data.images import ImageRejected, decode_image, read_image
from inspector.data.jpeg_damage import jpeg_damage, jpeg_end


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


def _stuffed_byte_flips(data: bytes, count: int = 6) -> list[bytes]:
    """``data`` with one bit flipped in the 0x00 after an 0xFF of its scan (a stuffed data byte 0xFF), each bit of
    such a byte in turn: the flip makes a marker (FF 01 … FF 80) the file never had."""
    sos = data.index(b"\xff\xda")
    start, out = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"), []
    stuffed = [i for i in range(start, len(data) - 2) if data[i:i + 2] == b"\xff\x00"]
    for n, i in enumerate(stuffed[:count]):
        flipped = bytearray(data)
        flipped[i + 1] ^= 1 << (n % 8)
        out.append(bytes(flipped))
    return out


@pytest.mark.parametrize("layout", ["baseline", "restart markers", "progressive", "grey"])
def test_a_flipped_bit_that_makes_a_marker_in_the_scan_is_refused_as_corrupt(layout):
    """OpenCV decodes such a file with only "premature end of data segment" on stderr (the rows after the flip
    filled), libjpeg-turbo's strict mode stops with a marker error ("Unsupported marker type 0x40", "two SOF
    markers", …) that was not taken for damage: 7 of 8 flips of such a byte were scored as parts."""
    img, _ = _part()
    base = io.BytesIO()
    Image.fromarray(img).save(base, "JPEG", quality=90, progressive=layout == "progressive")
    data = {"baseline": base.getvalue(), "progressive": base.getvalue(),
            "restart markers": cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])[1].tobytes(),
            "grey": cv2.imencode(".jpg", img[..., 1])[1].tobytes()}[layout]
    whole = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    flips = _stuffed_byte_flips(data)
    assert len(flips) == 6
    for flipped in flips:
        garbage = cv2.imdecode(np.frombuffer(flipped, np.uint8), cv2.IMREAD_UNCHANGED)
        # what made it wrong: pixels unlike the part's, without a word (a progressive file may fail outright)
        assert garbage is None or not np.array_equal(garbage, whole)
        with pytest.raises(ImageRejected) as refused:
            decode_image(flipped, "cam/0001.jpg")
        assert refused.value.reason == "corrupt"
        if garbage is not None:
            assert str(refused.value).startswith("cam/0001.jpg: damaged JPEG data (")


@pytest.mark.parametrize("tail", [b"\x00" * 512, b"\xff" * 7, "appended picture"])
def test_a_jpeg_with_bytes_after_its_end_marker_is_judged_up_to_it(tail):
    """Bytes after EOI (a camera padding its file to a block, a second picture appended) left the file unjudged:
    a damaged scan in it was scored as a part. Whole, it decodes as before."""
    img, data = _part()
    tail = data if tail == "appended picture" else tail
    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(decode_image(data + tail, "x.jpg", order="BGR"), reference)
    for damaged in (*_damaged().values(), *_stuffed_byte_flips(data, 2)):
        with pytest.raises(ImageRejected, match="damaged JPEG data"):
            decode_image(damaged + tail, "x.jpg")


def test_jpeg_end_skips_a_thumbnail_and_finds_the_end_marker_before_appended_bytes():
    img, data = _part()
    exif = Image.Exif()
    exif[0x0112] = 1
    framed = io.BytesIO()
    Image.fromarray(img).save(framed, "JPEG", exif=exif)
    with_thumb = framed.getvalue()
    # an APP1 segment holding a whole JPEG (a thumbnail) before the picture's own scan
    thumb = cv2.imencode(".jpg", img[:16, :16])[1].tobytes()
    segment = b"\xff\xe1" + (len(thumb) + 2).to_bytes(2, "big") + thumb
    nested = data[:2] + segment + data[2:]
    assert jpeg_end(nested + b"\0" * 9) == len(nested) - 2
    assert jpeg_end(with_thumb + data) == len(with_thumb) - 2
    assert jpeg_end(data[:len(data) // 2]) is None


def _lossless_jpeg(samples: np.ndarray, precision: int = 8) -> bytes:
    """A lossless JPEG (T.81 Annex H: SOF3, predictor 1) of ``samples`` (H, W) or (H, W, 3) of ``precision`` bits
    (8 or 12)."""
    samples = samples[:, :, None] if samples.ndim == 2 else samples
    h, w, comps = samples.shape
    ids = (1,) if comps == 1 else tuple(b"RGB")  # 'R', 'G', 'B': libjpeg reads them as RGB, not YCbCr
    sof = struct.pack(">BHHB", precision, h, w, comps) + b"".join(struct.pack(">BBB", i, 0x11, 0) for i in ids)
    # one DC table: categories 0..precision (the size of a difference), each a 4-bit code equal to the category
    dht = bytes([0x00]) + bytes([0, 0, 0, precision + 1] + [0] * 12) + bytes(range(precision + 1))
    sos = bytes([comps]) + b"".join(bytes([i, 0x00]) for i in ids) + bytes([1, 0, 0])  # predictor 1, Pt 0
    bits, x = [], samples.astype(np.int32)
    for row in range(h):
        for col in range(w):
            for c in range(comps):
                pred = 1 << (precision - 1) if row == col == 0 else x[row, col - 1, c] if col else x[row - 1, col, c]
                diff = int(x[row, col, c] - pred)
                size = abs(diff).bit_length()
                bits.append(format(size, "04b"))
                if size:
                    bits.append(format(diff if diff > 0 else diff + (1 << size) - 1, f"0{size}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = int(stream, 2).to_bytes(len(stream) // 8, "big") if stream else b""
    data = data.replace(b"\xff", b"\xff\x00")

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body
    return b"\xff\xd8" + segment(0xC3, sof) + segment(0xC4, dht) + segment(0xDA, sos) + data + b"\xff\xd9"


_DECODE_MANY = """
import sys
import numpy as np
from inspector.data.images import ImageRejected, decode_image
data, want = open(sys.argv[1], "rb").read(), np.load(sys.argv[2])
for _ in range(60):
    got = decode_image(data, "lossless.jpg")
print(int(np.abs(got.astype(int) - want).max()))
mid = len(data) // 2
for damaged in (data[:mid] + b"\\x5a" * 32 + data[mid + 32:], data[:mid] + data[mid + 600:]):
    try:
        decode_image(damaged, "lossless.jpg")
        print("read")
    except ImageRejected as exc:
        print(exc)
import gc
gc.collect()
"""


def test_a_lossless_jpeg_decodes_exactly_without_corrupting_the_process_and_its_damage_is_told(tmp_path):
    """simplejpeg asked for 1/8 of a lossless JPEG (SOF3: no DCT to scale) wrote the whole image into a buffer sized
    for the eighth: the heap overflowed and the process died of a segmentation fault a few files later (a daemon
    on a folder of them, every offline command). It is judged at full size. In a child process, so a crash fails
    this test, not the run."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 2)
    (tmp_path / "lossless.jpg").write_bytes(_lossless_jpeg(img))
    np.save(tmp_path / "want.npy", img)
    root = Path(__file__).resolve().parents[2]
    args = [str(tmp_path / "lossless.jpg"), str(tmp_path / "want.npy")]
    done = subprocess.run([sys.executable, "-c", _DECODE_MANY, *args], capture_output=True, text=True, timeout=120,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
    lines = done.stdout.splitlines()
    assert lines[0] == "0"  # RGB component ids: the samples as stored, exactly
    assert len(lines) == 3 and all(line.startswith("lossless.jpg: damaged JPEG data (") for line in lines[1:]), lines


def test_a_12_bit_jpeg_is_refused_naming_its_precision_not_as_corrupt(tmp_path):
    """OpenCV reads 8-bit JPEG samples only: a 12-bit JPEG (medical and some industrial cameras write them) was
    "cannot decode image (corrupt or unsupported format)", which sent the user looking for damage."""
    rng = np.random.default_rng(0)
    twelve = rng.integers(0, 4096, (24, 32), dtype=np.uint16)
    path = tmp_path / "mono12.jpg"
    path.write_bytes(_lossless_jpeg(twelve, 12))
    with pytest.raises(ImageRejected) as refused:
        read_image(path)
    assert refused.value.reason == "unsupported"
    assert str(refused.value) == (f"{path}: a JPEG of 12-bit samples, which the decoder does not read (8-bit "
                                  f"JPEG only); save such pictures as 16-bit PNG or TIFF")
