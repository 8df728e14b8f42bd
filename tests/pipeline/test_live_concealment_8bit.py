"""An ordinary 8-bit live camera that loses data: H.264 with B-frames in MPEG-TS over tcp://, its second key
frame's TS packets lost on the way. OpenCV's VideoCapture says nothing of a loss (no per-frame error, no key
frame flag) and handed the decoder's made-up frames on as parts; an inter-coded live stream is now read by the
ffmpeg program (``live_decoder: ffmpeg``) whose log tells them (:class:`inspector.pipeline.ffmpeg_live.Concealment`). A clean stream
gives OpenCV's pixels (measured identical; a bound of 2 levels allows another swscale build), and an intra-only stream
(MJPEG) stays with OpenCV, its pictures decoded by the one image decoder. Opt-in (``live_decoder: ffmpeg``): the
program's connection comes after OpenCV's probe (two connections, a slower open). Skipped where the ffmpeg
program or its libx264 is missing."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest

from inspector.pipeline import sources
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source
from source_support import decoded, read_until_it_ends
from inspector.pipeline.config import ReconnectSection
from tests.pipeline.test_live_concealment import TS_PACKET, _packets, serving

pytestmark = pytest.mark.skipif(not sources.ffmpeg_live.available(), reason="needs the ffmpeg program")


def _h264_clip(tmp_path: Path) -> bytes:
    """100 moving frames (testsrc2, 64x48, 25 fps) of 8-bit H.264 with 3 B-frames, a key frame every 25
    frames, in MPEG-TS: as an IP camera's encoder sends them."""
    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    out = tmp_path / "clip.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v", "100",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "3",
                    "-x264-params", "keyint=25:min-keyint=25:scenecut=0", "-f", "mpegts", str(out)],
                   check=True, stdin=subprocess.DEVNULL)
    return out.read_bytes()


def _second_key_frame_lost(tmp_path: Path, clip: bytes) -> bytes:
    packets = _packets(tmp_path)
    keys = [i for i, (_, key) in enumerate(packets) if key]
    start, end = packets[keys[1]][0], packets[keys[1] + 1][0]
    assert start % TS_PACKET == 0 and end % TS_PACKET == 0 and end > start
    return clip[:start] + clip[end:]


def _read_all(data: bytes, live_decoder: str = "ffmpeg") -> list:
    """Every Grabbed the camera (offline: each frame waits to be taken) gives for one pass of ``data``."""
    with serving(data) as port:
        return read_until_it_ends(CameraSection(
            name="lossy", source=f"tcp://127.0.0.1:{port}", mode="offline", open_timeout_s=10, read_timeout_s=5,
            live_decoder=live_decoder, reconnect=ReconnectSection(initial_s=0.5, max_s=1.0)))


def _nearest_diff(image: np.ndarray, truth: list[np.ndarray]) -> int:
    """The largest pixel difference (levels) to the nearest frame of ``truth``."""
    return min(int(np.abs(image.astype(np.int16) - t.astype(np.int16)).max()) for t in truth)


def test_an_8bit_h264_stream_that_lost_a_key_frame_hands_on_no_made_up_frame(tmp_path):
    """Its second key frame lost: every frame handed on is (within the colour conversion's level or two) a
    frame of the stream received whole; the made-up ones come without an image, reason 'concealed'; the last
    two GOPs are handed on again. Through OpenCV, 24 made-up frames (71 to 92 levels off) were handed on."""
    clip = _h264_clip(tmp_path)
    truth = decoded(tmp_path / "clip.ts")
    assert len(truth) == 100
    lossy = _read_all(_second_key_frame_lost(tmp_path, clip))
    handed_on = [g for g in lossy if g.image is not None]
    made_up = [i for i, g in enumerate(handed_on) if _nearest_diff(g.image, truth) > 2]
    assert not made_up, f"{len(made_up)} made-up frames handed on as parts, e.g. {made_up[:5]}"
    concealed = [g for g in lossy if g.image is None]
    assert len(concealed) >= 20 and all(g.reason == "concealed" for g in concealed), [g.reason for g in concealed]
    assert len(handed_on) >= 50


def test_by_default_an_inter_coded_live_url_says_once_that_made_up_frames_go_unnoticed(tmp_path, caplog):
    """``live_decoder: opencv`` (the default: one connection, a measured lag): the startup log says once that
    frames the decoder makes up after a loss cannot be told on this path, and how to have them told."""
    caplog.set_level(logging.WARNING, logger="inspector.pipeline.sources")
    clip = _h264_clip(tmp_path)
    grabbed = _read_all(clip, live_decoder="opencv")
    assert len(grabbed) == 100
    lines = [r.getMessage() for r in caplog.records if "makes up" in r.getMessage()]
    assert len(lines) == 1 and "camera 'lossy'" in lines[0] and "live_decoder: ffmpeg" in lines[0], lines


def test_a_clean_8bit_h264_stream_gives_opencvs_pixels(tmp_path):
    """Received whole: all 100 frames handed on, in order, each within 2 levels of OpenCV's decoding of the
    same frame (the program converts YUV to BGR with the same swscale: measured 0 levels)."""
    clip = _h264_clip(tmp_path)
    truth = decoded(tmp_path / "clip.ts")
    whole = _read_all(clip)
    assert [g.reason for g in whole if g.image is None] == []
    assert len(whole) == 100
    diffs = [int(np.abs(g.image.astype(np.int16) - t.astype(np.int16)).max()) for g, t in zip(whole, truth)]
    assert max(diffs) <= 2, diffs
    assert whole[0].image.dtype == np.uint8 and whole[0].image.shape == (48, 64, 3)


def test_an_mjpeg_live_url_is_still_read_by_opencv_and_the_image_decoder(tmp_path):
    """Motion JPEG is intra-only (no frame leans on another, nothing to conceal): read by OpenCV, each
    picture decoded by the one image decoder, as before; never by the program."""
    clip = tmp_path / "clip.mjpeg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v", "20",
                    "-c:v", "mjpeg", "-f", "mjpeg", str(clip)], check=True, stdin=subprocess.DEVNULL)
    with serving(clip.read_bytes()) as port:
        source = make_source(CameraSection(name="mjpeg", source=f"tcp://127.0.0.1:{port}", mode="offline",
                                           open_timeout_s=10, read_timeout_s=5, live_decoder="ffmpeg"))
        source.open()
        try:
            chosen = source._chosen
            assert isinstance(chosen, sources.CvSource) and chosen._decode is not None, type(chosen)
            assert source.read().image.shape == (48, 64, 3)
        finally:
            source.close()


@pytest.mark.rtsp
def test_an_rtsp_h264_camera_read_by_the_program_inspects_fresh_frames_and_counts_the_rest():
    """A real 25 fps RTSP H.264 camera (gst-rtsp-server, its clock stamped into each frame) with
    ``live_decoder: ffmpeg``, read at ~10 frames a second through the capture worker: read by the program,
    every inspected frame at most 1 s old by the camera's clock, the frames passed over counted."""
    import threading
    import time

    from pipeline_support import read_slowly
    from rtsp_support import RtspCamera

    from inspector.pipeline.capture import CaptureWorker, FrameHub
    from inspector.pipeline.telemetry import Counters
    from inspector.testing.clock_stamp import read_stamp

    counters, frames, chosen = Counters(), [], None
    with RtspCamera(codec="h264", fps=25) as server:
        cam = CameraSection(name="ipcam", source=server.url(), open_timeout_s=5, read_timeout_s=5,
                            live_decoder="ffmpeg")
        source = make_source(cam)
        hub, stop = FrameHub(Counters()), threading.Event()
        worker = CaptureWorker(cam, read_slowly(source, 0.1), hub, stop, counters, lambda *a: None)
        worker.start()
        try:
            t_end = time.monotonic() + 6.0
            while time.monotonic() < t_end:
                for f in hub.take(1, 0.2):
                    now_ms = int(time.time() * 1000) & 0xFFFFFFFF
                    frames.append(((now_ms - read_stamp(f.image)) & 0xFFFFFFFF) / 1e3)
                    chosen = type(source._chosen).__name__ if source._chosen is not None else None
        finally:
            stop.set()
            worker.join(10)
    assert chosen == "FullDepthStream"
    assert len(frames) >= 20 and max(frames[3:]) <= 1.0, frames
    assert counters.get("ipcam.dropped_live") >= 20, counters.snapshot()


def test_a_stream_joined_between_key_frames_at_every_reconnect_counts_reconnects_not_concealment(tmp_path):
    """A live H.264 camera that each connection joins between key frames (the clip from its 38th packet: 12
    frames before its third key frame), through the capture worker until it reconnected three times: every
    reconnect counted as one, no frame counted 'concealed', and from each pass every frame from the first key
    frame on (50 of the clip's last 50) handed on, each a frame of the clip (within 2 levels of OpenCV's
    decoding). The decoder's complaints of the packets before the first key frame were taken as a loss: 25
    frames a pass (the whole first key-frame interval) counted 'concealed' and not inspected."""
    import threading
    import time

    from inspector.pipeline.capture import CaptureWorker, FrameHub
    from inspector.pipeline.telemetry import Counters

    clip = _h264_clip(tmp_path)
    truth = decoded(tmp_path / "clip.ts")[50:]
    joined = clip[_packets(tmp_path)[37][0]:]
    with serving(joined) as port:
        cam = CameraSection(name="rejoin", source=f"tcp://127.0.0.1:{port}", mode="offline", open_timeout_s=10,
                            read_timeout_s=5, live_decoder="ffmpeg",
                            reconnect=ReconnectSection(initial_s=0.2, max_s=0.5))
        hub, stop, counters = FrameHub(Counters()), threading.Event(), Counters()
        worker = CaptureWorker(cam, make_source(cam), hub, stop, counters, lambda *a: None)
        worker.start()
        frames, t_end = [], time.monotonic() + 90
        try:
            while worker.reconnects < 3 and time.monotonic() < t_end:
                frames += hub.take(8, 0.2)
        finally:
            stop.set()
            worker.join(10)
    frames += hub.take(1000, 0)
    snap = counters.snapshot()
    assert worker.reconnects >= 3 and snap.get("rejoin.reconnects", 0) >= 3, snap
    assert snap.get("rejoin.concealed", 0) == 0, snap
    assert len(frames) >= 3 * 50, (len(frames), snap)
    assert max(_nearest_diff(f.image, truth) for f in frames) <= 2


def test_an_8bit_stream_with_a_byte_flipped_inside_a_slice_hands_on_no_made_up_frame(tmp_path):
    """Damaged in transit with no packet lost (one byte of a P-frame's slice flipped: a faulty link or encoder; the TS
    continuity count runs on unbroken): the decoder conceals what it could not parse, and with slice threading its
    error-resilience pass, the only thing that marks such a frame, was off: 15 made-up frames were handed on as parts.
    Decoded on one thread (:data:`inspector.pipeline.ffmpeg_live.ONE_THREAD`) they come 'concealed', none inspected
    until the next key frame decoded after the damage. 320x240, so that a slice spans several TS packets."""
    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-frames:v", "50",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "2", "-threads", "1",
                    "-x264-params", "keyint=25:min-keyint=25:scenecut=0", "-f", "mpegts", str(tmp_path / "clip.ts")],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)
    clip, truth = bytearray((tmp_path / "clip.ts").read_bytes()), decoded(tmp_path / "clip.ts")
    packets = _packets(tmp_path)
    assert not packets[10][1]  # an inter-coded frame (the 11th in stream order)
    clip[packets[10][0] + 2 * TS_PACKET + 100] ^= 0xFF  # inside its slice: its PES's third TS packet
    grabbed = _read_all(bytes(clip))
    assert len(grabbed) == 50
    handed_on = [g for g in grabbed if g.image is not None]
    made_up = [i for i, g in enumerate(handed_on) if _nearest_diff(g.image, truth) > 2]
    assert not made_up, f"{len(made_up)} made-up frames handed on as parts, e.g. {made_up[:5]}"
    assert {g.reason for g in grabbed if g.image is None} == {"concealed"}
    assert len(handed_on) >= 25  # the first key-frame interval, and the damaged one's frames up to the damage
