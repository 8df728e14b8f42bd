"""A damaged ordinary 8-bit video file (one size, H.264 with B-frames) read by the daemon's capture worker. OpenCV
reads such a file and cannot tell the frames its decoder made up around the damage: they went to inspection as
parts, none counted. Now the ffmpeg program judges every frame beside it (:class:`inspector.pipeline.file_verdicts.
VerdictPass`) and the file is read on by the program from the first frame it does not vouch for: the made-up frames
are counted 'concealed', never inspected, and said once; an undamaged file gives OpenCV's very frames. Real files
made by the real program, damaged as a bad sector (bytes flipped) or a recorder that lost TS packets; the real
program's verdicts. Skipped where the ffmpeg program or its libx264 is missing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from inspector.pipeline import ffmpeg_live, file_verdicts
from inspector.pipeline.config import CameraSection
from source_support import decoded
from tests.pipeline.test_file_concealment import _drop_packets_mid_key_frame
from tests.pipeline.test_format_changes import _capture

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")
FRAMES = 60


def _recording(path: Path) -> None:
    """60 moving frames (testsrc2, 64x48, 10 fps) of 8-bit H.264 with 2 B-frames, a key frame every 20, in the
    container of ``path``'s suffix (mkv, mp4, ts); dated long ago (its end is its end)."""
    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=10", "-frames:v",
                    str(FRAMES), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "2",
                    "-x264-params", "keyint=20:min-keyint=20:scenecut=0", str(path)],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)
    os.utime(path, (time.time() - 60, time.time() - 60))


def _flip_mid_key_frame(video: Path, key: int = 1) -> None:
    """Flip the middle third of the bytes of the file's ``key``-th key frame (0-based), its container's own bytes
    around it kept: the damage a bad sector or a flipped bit makes, which the H.264 decoder conceals."""
    listing = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                              "packet=pos,size,flags", "-of", "json", str(video)], capture_output=True, text=True,
                             check=True).stdout
    packet = [p for p in json.loads(listing)["packets"] if p["flags"].startswith("K")][key]
    start, size = int(packet["pos"]), int(packet["size"])
    data, cut = bytearray(video.read_bytes()), slice(start + size // 3, start + 2 * size // 3)
    data[cut] = bytes(b ^ 0x5A for b in data[cut])
    video.write_bytes(bytes(data))
    os.utime(video, (time.time() - 60, time.time() - 60))


@pytest.fixture
def passes(monkeypatch):
    """The verdict passes started (their files), the real program run."""
    started = []

    class Counted(file_verdicts.VerdictPass):
        def __init__(self, path: str) -> None:
            started.append(path)
            super().__init__(path)

    monkeypatch.setattr(file_verdicts, "VerdictPass", Counted)
    return started


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".ts"])
def test_an_undamaged_8bit_video_gives_opencvs_very_frames(tmp_path, suffix, passes):
    """Every frame, in order, bitwise as OpenCV decodes the file (what the daemon handed on before), none counted
    concealed; the program judged them (one verdict pass)."""
    video = tmp_path / f"clip{suffix}"
    _recording(video)
    before = decoded(video)
    assert len(before) == FRAMES
    frames, states, counters = _capture(CameraSection(name="ok", source=str(video)))
    assert [f.meta["index"] for f in frames] == list(range(FRAMES)), counters.snapshot()
    assert all(np.array_equal(f.image, b) for f, b in zip(frames, before))
    assert not counters.get("ok.concealed") and states[-1] == ("ended", f"{FRAMES} frames"), states
    assert passes == [str(video)]


@pytest.mark.parametrize("suffix, damage", [(".mkv", "flipped"), (".mp4", "flipped"), (".ts", "flipped"),
                                            (".ts", "packets lost")])
def test_a_damaged_8bit_video_skips_and_counts_its_made_up_frames(tmp_path, caplog, suffix, damage):
    """The second key frame's bytes flipped (a bad sector), or 3 of its TS packets lost (a recorder's link): the
    frames made up around it are counted 'concealed' (handed on + concealed = 60), each frame handed on is bitwise
    the undamaged file's frame at its place (OpenCV's up to the damage, the program's after it: no frame twice, none
    out of place), and the damage is said once. Before: 60 handed on, 0 counted, the made-up ones among them."""
    caplog.set_level(logging.WARNING)
    whole, video = tmp_path / f"whole{suffix}", tmp_path / f"damaged{suffix}"
    _recording(whole)
    video.write_bytes(whole.read_bytes())
    _flip_mid_key_frame(video) if damage == "flipped" else _drop_packets_mid_key_frame(video, 1)
    truth = decoded(whole)
    frames, states, counters = _capture(CameraSection(name="dmg", source=str(video)))
    concealed = counters.get("dmg.concealed")
    assert concealed >= 10 and len(frames) + concealed == FRAMES, (len(frames), counters.snapshot())
    indices = [f.meta["index"] for f in frames]
    assert indices == sorted(set(indices)), indices
    off = [i for i, f in zip(indices, frames) if not np.array_equal(f.image, truth[i])]
    assert not off, f"frames handed on that are not the file's own: {off}"
    assert min(set(range(FRAMES)) - set(indices)) <= 20, "the damage is at the second key frame (frame 20)"
    said = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(said) == 1 and "camera 'dmg'" in said[0] and str(video) in said[0], said
    assert states[-1][0] == "ended" and "concealed" in states[-1][1], states


def test_a_looping_damaged_8bit_video_skips_its_made_up_frames_on_every_pass(tmp_path, caplog):
    """A looping camera on a damaged file: the program reads it on from the damage, and on from the file's start
    at each later pass: each pass's made-up frames are counted, none inspected; the damage is said once."""
    from inspector.pipeline.sources import make_source

    caplog.set_level(logging.WARNING)
    whole, video = tmp_path / "whole.mkv", tmp_path / "damaged.mkv"
    _recording(whole)
    video.write_bytes(whole.read_bytes())
    _flip_mid_key_frame(video)
    truth = decoded(whole)
    source = make_source(CameraSection(name="loop", source=str(video), loop=True))
    source.open()
    try:
        reads = [source.read() for _ in range(3 * FRAMES)]
    finally:
        source.close()
    kept = [r for r in reads if r.image is not None]
    concealed = [r for r in reads if r.reason == "concealed"]
    assert len(kept) + len(concealed) == 3 * FRAMES and len(concealed) >= 30, (len(kept), len(concealed))
    assert all(np.array_equal(r.image, truth[r.meta["index"]]) for r in kept)
    assert len([r for r in caplog.records if "is damaged" in r.getMessage()]) == 1


def test_without_the_program_an_8bit_video_is_read_as_before_and_says_it_cannot_tell(tmp_path, caplog, monkeypatch):
    """No ffmpeg program: OpenCV's frames as before, and one warning that made-up frames cannot be told."""
    caplog.set_level(logging.WARNING)
    video = tmp_path / "clip.mkv"
    _recording(video)
    monkeypatch.setattr(ffmpeg_live, "available", lambda: False)
    frames, _, counters = _capture(CameraSection(name="bare", source=str(video)))
    assert len(frames) == FRAMES and not counters.get("bare.concealed")
    said = [r.getMessage() for r in caplog.records if "cannot tell the frames its decoder makes up" in r.getMessage()]
    assert len(said) == 1 and "'h264'" in said[0] and "not installed" in said[0], said
