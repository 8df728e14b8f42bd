"""The bottom-up DIB AVI reader (:mod:`inspector.pipeline.avi_raw`) on damaged files: a bounded fuzz of its
header and chunk bytes, and cuts at every part of the file. Whatever the bytes, it either declines the file
(None: OpenCV opens it as any video), gives frames of the declared size, or refuses a frame in one line naming
the file: never another exception (the daemon's camera thread would die with a traceback)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.data.images import ImageRejected
from inspector.pipeline import avi_raw

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")


def _bottom_up_avi(tmp_path: Path, pix_fmt: str) -> bytes:
    picture = np.random.default_rng(5).integers(0, 256, (16, 24, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "src.png"), picture)
    video = tmp_path / "good.avi"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-loop", "1", "-i", str(tmp_path / "src.png"), "-frames:v", "3",
                    "-c:v", "rawvideo", "-pix_fmt", pix_fmt, "-flipped_raw_rgb", "1", str(video)],
                   check=True, stdin=subprocess.DEVNULL)
    return video.read_bytes()


def _read_all(path: Path) -> tuple[int, int]:
    """(frames decoded, frames refused) by the reader the daemon would use; any other exception fails."""
    dib = avi_raw.avi_bottom_up(path)
    if dib is None:
        return 0, 0
    frames, decode = avi_raw.AviFrames(path, dib), avi_raw.dib_decoder(dib, str(path), None, None)
    good = refused = 0
    try:
        for _ in range(6):
            if not frames.grab():
                break
            try:
                image = decode(frames.retrieve()[1])
            except ImageRejected as exc:
                assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
                refused += 1
                continue
            assert image.dtype == np.uint8 and image.shape == (dib.height, dib.width, 3)
            good += 1
        assert frames.set(cv2.CAP_PROP_POS_FRAMES, 1)
    finally:
        frames.release()
    return good, refused


@pytest.mark.parametrize("pix_fmt", ["bgr24", "rgb555le", "pal8"])
def test_the_avi_reader_survives_damaged_headers_and_cut_files(tmp_path, pix_fmt):
    data = _bottom_up_avi(tmp_path, pix_fmt)
    assert _read_all(tmp_path / "good.avi") == (3, 0)  # the undamaged file: every frame
    movi = data.find(b"movi")
    rng = np.random.default_rng(11)
    path = tmp_path / "bad.avi"
    for trial in range(150):  # 1-4 bytes of the header or the first chunk headers set at random
        bad = bytearray(data)
        for at in rng.integers(0, movi + 40, rng.integers(1, 5)):
            bad[at] = int(rng.integers(0, 256))
        path.write_bytes(bytes(bad))
        _read_all(path)
    for cut in list(range(0, movi + 64, 23)) + list(range(movi, len(data), max(1, (len(data) - movi) // 40))):
        path.write_bytes(data[:cut])
        _read_all(path)


def test_a_size_field_past_the_end_is_a_frame_cut_short(tmp_path):
    """The first frame chunk's size says 4 GiB: what the file holds is the chunk (its first frame's bytes are
    there: one frame), then the end; no 4 GiB read, no hang."""
    data = bytearray(_bottom_up_avi(tmp_path, "bgr24"))
    first = data.find(b"movi") + 4
    data[first + 4:first + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "bad.avi"
    path.write_bytes(bytes(data))
    assert _read_all(path) == (1, 0)


def test_a_bottom_up_avi_still_being_written_reads_on(tmp_path):
    """A recording copied in while read (its second frame cut by the copy's front): the whole first frame, a
    'growing' wait, then, once the rest is there, every frame once, in order, and the end once it settles."""
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import make_source

    data = _bottom_up_avi(tmp_path, "bgr24")
    first = data.find(b"movi") + 4
    cut = first + 8 + int.from_bytes(data[first + 4:first + 8], "little") + 8 + 500
    path = tmp_path / "growing.avi"
    path.write_bytes(data[:cut])
    source = make_source(CameraSection(name="grow", source=str(path)))
    source.open()
    try:
        assert source.read().image is not None
        assert source.read().reason == "growing"
        with path.open("ab") as f:
            f.write(data[cut:])
        indices = [g.meta["index"] for g in iter(source.read, None) if g.image is not None]
    finally:
        source.close()
    assert indices == [1, 2]
