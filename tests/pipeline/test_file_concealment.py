"""A damaged video file read by the ffmpeg program (a recording whose key frames change size, or one wider than 8
bits: :class:`inspector.pipeline.ffmpeg_live.FileFrames`): FFmpeg's decoder conceals the damage and outputs made-up
frames up to the next key frame, which the program's log tells (:class:`ffmpeg_live.Concealment`), as on the
live path. They were handed on to inspection as parts; now they are skipped, counted 'concealed', and the damage
is said once. Real H.264 with B-frames, real corrupted bytes, the daemon's capture worker. Skipped where the
ffmpeg program or its libx264 is missing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from inspector.pipeline import ffmpeg_live
from inspector.pipeline.config import CameraSection
from source_support import decoded
from tests.pipeline.test_format_changes import _capture, _one_recording
from tests.pipeline.test_live_concealment import TS_PACKET

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")


def _gop_part(path: Path, size: str, frames: int, pix_fmt: str = "yuv420p") -> None:
    """``frames`` frames of the moving test pattern at ``size``, H.264 with 2 B-frames, a key frame every 20."""
    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=10", "-frames:v",
                    str(frames), "-c:v", "libx264", "-pix_fmt", pix_fmt, "-bf", "2",
                    "-x264-params", "keyint=20:min-keyint=20:scenecut=0", "-f", "mpegts", str(path)],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)


def _corrupt_second_key_frame(video: Path) -> None:
    """Flip the payload bytes of the TS packets in the middle of the file's second key frame (its TS headers,
    PES header and adaptation fields kept): the damage a bad sector or a flipped bit makes, which the H.264
    decoder meets ("error while decoding MB") and conceals."""
    listing = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pos,flags",
                              "-of", "json", str(video)], capture_output=True, text=True, check=True).stdout
    packets = [(int(p["pos"]), p["flags"].startswith("K")) for p in json.loads(listing)["packets"]]
    second = [i for i, (_, key) in enumerate(packets) if key][1]
    data, flipped = bytearray(video.read_bytes()), 0
    for at in range(packets[second][0], packets[second + 1][0], TS_PACKET):
        # the video PID (0x100), no payload-unit start, payload only (no adaptation field)
        if data[at + 1] == 0x01 and data[at + 2] == 0x00 and data[at + 3] & 0x30 == 0x10:
            data[at + 20:at + TS_PACKET] = bytes(b ^ 0x5A for b in data[at + 20:at + TS_PACKET])
            flipped += 1
    assert flipped >= 2, flipped
    video.write_bytes(bytes(data))
    os.utime(video, (time.time() - 60, time.time() - 60))  # written long ago: its end is its end


def test_a_damaged_video_read_by_the_program_skips_and_counts_its_made_up_frames(tmp_path, caplog):
    """40 frames at 64x48 then (the camera reconfigured) 20 at 128x96, the second key frame's bytes damaged:
    every frame handed on is, within 2 levels, a frame of the file decoded whole; the made-up ones are counted
    'concealed' (handed on + concealed = 60), the 128x96 part is inspected whole, and the damage is said once
    (not once a frame). Before: 0 counted, the made-up frames handed on as parts."""
    caplog.set_level(logging.WARNING)
    _gop_part(tmp_path / "a.ts", "64x48", 40)
    _gop_part(tmp_path / "b.ts", "128x96", 20)
    video = tmp_path / "recording.ts"
    _one_recording([tmp_path / "a.ts", tmp_path / "b.ts"], video)
    _corrupt_second_key_frame(video)
    truth = decoded(tmp_path / "a.ts") + decoded(tmp_path / "b.ts")
    assert len(truth) == 60
    frames, states, counters = _capture(CameraSection(name="dmg", source=str(video)))
    concealed = counters.get("dmg.concealed")
    assert concealed >= 10 and len(frames) + concealed == 60, (len(frames), counters.snapshot())
    made_up = [f.meta["index"] for f in frames
               if min(int(np.abs(f.image.astype(np.int16) - t.astype(np.int16)).max())
                      for t in truth if t.shape == f.image.shape) > 2]
    assert not made_up, f"made-up frames handed on: {made_up}"
    assert [f.image.shape for f in frames].count((96, 128, 3)) == 20
    said = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(said) == 1 and "camera 'dmg'" in said[0] and str(video) in said[0], said
    assert not [r for r in caplog.records if "skipped a frame (concealed)" in r.getMessage()]
    assert states[-1][0] == "ended" and "concealed" in states[-1][1], states


def test_a_damaged_wide_video_read_at_full_depth_skips_and_counts_its_made_up_frames(tmp_path, caplog):
    """A 10-bit H.264 recording (one size: read at full depth by the program, ffmpeg_frames), its second key
    frame's bytes damaged: every frame handed on is, within 2 levels, the same frame of the file undamaged; the
    made-up ones are counted 'concealed' (handed on + concealed = 60) and the damage said once. Before: the wide
    path's reader (a bare pipe of frames, FfmpegFrames) had no verdict: 60 handed on, 0 counted, 23 made up."""
    caplog.set_level(logging.WARNING)
    whole = tmp_path / "whole.ts"
    _gop_part(whole, "64x48", 60, pix_fmt="yuv420p10le")
    video = tmp_path / "wide.ts"
    video.write_bytes(whole.read_bytes())
    _corrupt_second_key_frame(video)
    truth = {f.meta["index"]: f.image for f in _capture(CameraSection(name="ok", source=str(whole)))[0]}
    assert len(truth) == 60
    frames, _, counters = _capture(CameraSection(name="dmg", source=str(video)))
    concealed = counters.get("dmg.concealed")
    assert concealed >= 10 and len(frames) + concealed == 60, (len(frames), counters.snapshot())
    made_up = [f.meta["index"] for f in frames
               if int(np.abs(f.image.astype(np.int16) - truth[f.meta["index"]].astype(np.int16)).max()) > 2]
    assert not made_up, f"made-up frames handed on: {made_up}"
    said = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(said) == 1 and "camera 'dmg'" in said[0] and str(video) in said[0], said


def _drop_packets_mid_key_frame(video: Path, key: int) -> None:
    """Take out 3 TS packets from the middle of the file's ``key``-th key frame (0-based): packets lost on the way
    to a recorder, which the continuity count tells mid-PES (not at a join)."""
    listing = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pos,flags",
                              "-of", "json", str(video)], capture_output=True, text=True, check=True).stdout
    packets = [(int(p["pos"]), p["flags"].startswith("K")) for p in json.loads(listing)["packets"]]
    at = [i for i, (_, k) in enumerate(packets) if k][key]
    data = video.read_bytes()
    mid = packets[at][0] + ((packets[at + 1][0] - packets[at][0]) // TS_PACKET // 2) * TS_PACKET
    video.write_bytes(data[:mid] + data[mid + 3 * TS_PACKET:])
    os.utime(video, (time.time() - 60, time.time() - 60))


@pytest.mark.parametrize("second, pix_fmt", [("128x96", "yuv420p"), ("64x48", "yuv420p10le"), ("64x48", "yuv420p")])
def test_segments_joined_with_cat_are_inspected_whole_at_the_join(tmp_path, second, pix_fmt):
    """Two 40-frame recordings joined byte for byte (``cat``, as NVR segments are put together), read by the program
    (a size change; a 10-bit one at one size), or by OpenCV beside the program's verdict pass (8-bit, one size: its
    feed knows the joins too, file_verdicts): the TS continuity count restarts at the join, which the demuxer
    flags "Packet corrupt", and 26 frames (34..59) were skipped as made up. Every frame of both parts is handed on
    now, each (within 2 levels) its part's own; the same file with 3 TS packets lost mid key frame still has its
    made-up frames counted 'concealed' (a join is not a loss, a loss still is)."""
    _gop_part(tmp_path / "a.ts", "64x48", 40, pix_fmt=pix_fmt)
    _gop_part(tmp_path / "b.ts", second, 40, pix_fmt=pix_fmt)
    video = tmp_path / "joined.ts"
    video.write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    os.utime(video, (time.time() - 60, time.time() - 60))  # written long ago: its end is its end
    truth = [f.image for f in _capture(CameraSection(name="a", source=str(tmp_path / "a.ts")))[0]] + \
        [f.image for f in _capture(CameraSection(name="b", source=str(tmp_path / "b.ts")))[0]]
    assert len(truth) == 80
    frames, _, counters = _capture(CameraSection(name="cat", source=str(video)))
    assert len(frames) == 80 and not counters.get("cat.concealed"), counters.snapshot()
    off = [i for i, (f, t) in enumerate(zip(frames, truth))
           if f.image.shape != t.shape or int(np.abs(f.image.astype(np.int16) - t.astype(np.int16)).max()) > 2]
    assert not off, f"frames not their part's own: {off}"
    _drop_packets_mid_key_frame(video, 3)  # the second part's second key frame
    frames, _, counters = _capture(CameraSection(name="lossy", source=str(video)))
    assert counters.get("lossy.concealed") >= 5, counters.snapshot()


def _count_from(data: bytes, pid: int, first: int) -> bytes:
    """``data`` with the continuity counts of ``pid``'s packets with a payload renumbered from ``first`` on."""
    out, cc = bytearray(data), first
    for at in range(0, len(out) - TS_PACKET + 1, TS_PACKET):
        if ((out[at + 1] & 0x1F) << 8 | out[at + 2]) == pid and out[at + 3] & 0x10:
            out[at + 3] = (out[at + 3] & 0xF0) | cc
            cc = (cc + 1) % 16
    return bytes(out)


def test_a_join_whose_second_segment_counts_on_from_the_same_number_is_still_a_join(tmp_path):
    """Two segments joined byte for byte where the second's first continuity count is the first's last (one join in
    16): FFmpeg's demuxer takes the repeated count for a break ("Packet corrupt"), and the scan took it for a
    duplicate packet (which repeats the packet before, count and all), so the join went unexcused and the second
    segment's first key-frame interval was counted 'concealed'. Every frame is handed on now (8-bit: OpenCV beside the
    verdict pass; 10-bit: the program)."""
    for pix_fmt in ("yuv420p", "yuv420p10le"):
        _gop_part(tmp_path / "a.ts", "64x48", 40, pix_fmt=pix_fmt)
        _gop_part(tmp_path / "b.ts", "64x48", 40, pix_fmt=pix_fmt)
        a = (tmp_path / "a.ts").read_bytes()
        last = [a[at + 3] & 0x0F for at in range(0, len(a), TS_PACKET)
                if ((a[at + 1] & 0x1F) << 8 | a[at + 2]) == 0x100 and a[at + 3] & 0x10][-1]
        video = tmp_path / f"joined-{pix_fmt}.ts"
        video.write_bytes(a + _count_from((tmp_path / "b.ts").read_bytes(), 0x100, last))
        os.utime(video, (time.time() - 60, time.time() - 60))
        frames, _, counters = _capture(CameraSection(name="cat", source=str(video)))
        assert len(frames) == 80 and not counters.get("cat.concealed"), (pix_fmt, counters.snapshot())
