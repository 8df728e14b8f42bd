"""Live streams with B-frames read by the ffmpeg program (``live_decoder: ffmpeg``): MPEG-2 and H.264 with
``-bf 2``, as cameras and NVRs send them. Each frame must be inspected, in display order, with the pixels of the
stream received whole; only the decoder's (or demuxer's) own word of lost data makes a frame 'concealed'.

Before: ``-flags low_delay`` made the MPEG-2 decoder output such a stream in decode order (each P-frame before
the B-frames shown before it), and the rawvideo muxer's "non monotonically increasing dts" errors were taken for
losses: 24 of 30 frames counted 'concealed', the others out of order. Real streams served over tcp://, real
ffmpeg. Skipped where the ffmpeg program (or its libx264) is missing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from inspector.pipeline import ffmpeg_live
from tests.pipeline.test_live_concealment import TS_PACKET, _packets
from source_support import decoded
from tests.pipeline.test_live_concealment_8bit import _nearest_diff, _read_all

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")

_FRAMES = 60


def _bframe_clip(tmp_path: Path, codec: str) -> bytes:
    """60 moving frames (testsrc2, 64x48, 25 fps) with 2 B-frames between references, a key frame every 12
    frames, in MPEG-TS (``tmp_path / "clip.ts"``): the bytes."""
    if codec == "libx264" and "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"],
                                                              capture_output=True, text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    out = tmp_path / "clip.ts"
    extra = ["-pix_fmt", "yuv420p", "-x264-params", "keyint=12:min-keyint=12:scenecut=0"] if codec == "libx264" \
        else ["-g", "12"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v",
                    str(_FRAMES), "-c:v", codec, "-bf", "2", *extra, "-f", "mpegts", str(out)],
                   check=True, stdin=subprocess.DEVNULL)
    return out.read_bytes()


def _b_frames(tmp_path: Path) -> int:
    """How many B-frames the clip has (ffprobe's picture types): the test's premise."""
    types = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pict_type",
                            "-of", "json", str(tmp_path / "clip.ts")], capture_output=True, text=True,
                           check=True).stdout
    return [frame["pict_type"] for frame in json.loads(types)["frames"]].count("B")


@pytest.mark.parametrize("codec", ["mpeg2video", "libx264"])
def test_a_clean_stream_with_b_frames_is_inspected_whole_in_display_order(tmp_path, codec):
    """Received whole: all 60 frames handed on with an image (none 'concealed'), frame i within 2 levels of
    OpenCV's decoding of the file's frame i (display order). MPEG-2 before: 24 of 30 counted 'concealed'."""
    clip = _bframe_clip(tmp_path, codec)
    assert _b_frames(tmp_path) >= 20
    truth = decoded(tmp_path / "clip.ts")
    assert len(truth) == _FRAMES
    grabbed = _read_all(clip)
    assert [g.reason for g in grabbed if g.image is None] == []
    assert len(grabbed) == _FRAMES
    diffs = [int(np.abs(g.image.astype(np.int16) - t.astype(np.int16)).max()) for g, t in zip(grabbed, truth)]
    assert max(diffs) <= 2, diffs


@pytest.mark.parametrize("codec", ["mpeg2video", "libx264"])
def test_a_stream_with_b_frames_that_lost_a_key_frame_still_counts_its_made_up_frames(tmp_path, codec):
    """Its second key frame's TS packets lost on the way: the frames resting on it come 'concealed', no made-up
    frame is handed on (each within 2 levels of a frame of the whole stream), the later GOPs are inspected."""
    clip = _bframe_clip(tmp_path, codec)
    truth = decoded(tmp_path / "clip.ts")
    packets = _packets(tmp_path)
    keys = [i for i, (_, key) in enumerate(packets) if key]
    start, end = packets[keys[1]][0], packets[keys[1] + 1][0]
    assert start % TS_PACKET == 0 and end % TS_PACKET == 0 and end > start
    grabbed = _read_all(clip[:start] + clip[end:])
    concealed = [g for g in grabbed if g.image is None]
    handed_on = [g for g in grabbed if g.image is not None]
    assert len(concealed) >= 10 and all(g.reason == "concealed" for g in concealed), [g.reason for g in concealed]
    made_up = [i for i, g in enumerate(handed_on) if _nearest_diff(g.image, truth) > 2]
    assert not made_up, f"{len(made_up)} made-up frames handed on, e.g. {made_up[:5]}"
    assert len(handed_on) >= 20


def _verdict(concealment: ffmpeg_live.Concealment, line: str) -> str | None:
    """The verdict on one of the program's lines, as the live reader takes them."""
    return concealment.frame_verdict(*ffmpeg_live.Concealment.parse(line), ffmpeg_live.Concealment.context(line))


def test_the_output_sides_timestamp_errors_are_no_loss(tmp_path):
    """The program's real log of an MPEG-2 stream with B-frames decoded in decode order (``-flags low_delay``,
    the old live command): its rawvideo muxer writes "[error] Application provided invalid, non monotonically
    increasing dts" lines, which are our output's bookkeeping, not data the decoder lacked. Through the verdict,
    every frame is whole (before: all frames after the first such line 'concealed'); a demuxer's loss warning
    in the same log is still a loss."""
    _bframe_clip(tmp_path, "mpeg2video")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-flags", "low_delay",
           "-i", str(tmp_path / "clip.ts"), *ffmpeg_live._framed_output("bgr24")]
    lines = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=True).stderr.splitlines()
    muxer_errors = [line for line in lines if line.startswith("[rawvideo @") and "[error]" in line]
    assert muxer_errors, "the premise: the muxer complained of the timestamps"
    concealment = ffmpeg_live.Concealment()
    verdicts = [v for line in lines if (v := _verdict(concealment, line)) is not None]
    assert len(verdicts) == _FRAMES and set(verdicts) == {""}, verdicts
    _verdict(concealment, "[mpegts @ 0x55d0c0ffee00] [warning] Packet corrupt (stream = 0, dts = 158400).")
    next_frame = "[Parsed_showinfo_0 @ 0x55d0c0ffee01] [info] n:  60 pts: 216000 iskey:0 type:B"
    assert _verdict(concealment, next_frame) == "concealed"
