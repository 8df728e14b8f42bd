"""A live stream that loses data: a 10-bit HEVC stream with B-frames (read by the ffmpeg program,
:mod:`inspector.pipeline.ffmpeg_live`) whose second key frame's MPEG-TS packets were lost on the way, as on a
lossy link. FFmpeg's decoder conceals the loss and outputs the frames up to the next key frame predicted from a
grey "missing reference" (measured: 65 to 174 levels off in 8 bits); a defect decision on such a picture is a
wrong answer. Every frame the camera hands on must be one the decoder made from the data it was sent (bitwise a
frame of the same stream received whole); the concealed ones come counted, with no image; inspection resumes
at the next key frame. Skipped where the ffmpeg program or its libx265 is missing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from inspector.pipeline import ffmpeg_live
from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.sources import make_source
from source_support import read_until_it_ends
from inspector.pipeline.telemetry import Counters

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")

TS_PACKET = 188


def _has_libx265() -> bool:
    return "libx265" in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def _clip(tmp_path: Path) -> bytes:
    """100 moving frames (testsrc2, 64x48, 25 fps) of 10-bit HEVC with x265's default B-frames, a key frame
    every 25 frames, in MPEG-TS: as a camera's encoder sends them."""
    out = tmp_path / "clip.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v", "100",
                    "-c:v", "libx265", "-pix_fmt", "yuv444p10le", "-x265-params", "log-level=error:keyint=25",
                    "-f", "mpegts", str(out)], check=True, stdin=subprocess.DEVNULL)
    return out.read_bytes()


def _packets(tmp_path: Path) -> list[tuple[int, bool]]:
    """(byte position, key frame?) of each video packet of the clip, in stream order."""
    listing = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                              "packet=pos,flags", "-of", "json", str(tmp_path / "clip.ts")], capture_output=True,
                             text=True, check=True).stdout
    return [(int(p["pos"]), p["flags"].startswith("K")) for p in json.loads(listing)["packets"]]


def _joined_after_its_key_frame(tmp_path: Path, clip: bytes) -> bytes:
    """``clip`` from its 6th packet on: a receiver that joined the stream after its first key frame."""
    return clip[_packets(tmp_path)[5][0]:]


def _second_key_frame_lost(tmp_path: Path, clip: bytes) -> bytes:
    """``clip`` without the TS packets carrying its second key frame (from its position to the next packet's)."""
    packets = _packets(tmp_path)
    keys = [i for i, (_, key) in enumerate(packets) if key]
    start, end = packets[keys[1]][0], packets[keys[1] + 1][0]
    assert start % TS_PACKET == 0 and end % TS_PACKET == 0 and end > start
    return clip[:start] + clip[end:]


@contextlib.contextmanager
def serving(data: bytes):
    """A camera on 127.0.0.1 sending ``data`` whole to each connection, then closing it (the stream ends)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                with contextlib.suppress(OSError):  # a probe that hung up early
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _camera(port: int) -> CameraSection:
    # offline: every frame waits to be taken, so each one of the stream is seen
    return CameraSection(name="lossy", source=f"tcp://127.0.0.1:{port}", mode="offline", open_timeout_s=10,
                         read_timeout_s=5, reconnect=ReconnectSection(initial_s=0.5, max_s=1.0))


def _read_all(data: bytes) -> list:
    """Every Grabbed the camera gives for one pass of ``data``, until the stream ends."""
    with serving(data) as port:
        return read_until_it_ends(_camera(port))


def _digest(image) -> str:
    return hashlib.sha1(image.tobytes()).hexdigest()


@pytest.mark.parametrize("damage, reason", [(_second_key_frame_lost, "concealed"),
                                            (_joined_after_its_key_frame, "before_key_frame")])
def test_frames_concealed_after_a_loss_are_counted_never_handed_on(tmp_path, damage, reason):
    """The stream's second key frame lost, or the stream joined after its first key frame: no frame handed on
    is a made-up picture (each is bitwise a frame of the stream received whole); the frames up to a key
    frame come without an image, reason 'concealed' after a loss, 'before_key_frame' after the join (no loss:
    the pictures the decoder made up before its first key frame); the last two GOPs are handed on again.
    Without the rule, 26 frames 65 to 174 levels off (8 bits) were handed on as parts (joined: 18)."""
    if not _has_libx265():
        pytest.skip("this ffmpeg has no libx265")
    clip = _clip(tmp_path)
    whole = _read_all(clip)
    assert len(whole) == 100 and all(g.image is not None for g in whole), [g.error for g in whole[:3]]
    true_frames = [_digest(g.image) for g in whole]
    lossy = _read_all(damage(tmp_path, clip))
    handed_on = [g for g in lossy if g.image is not None]
    made_up = [i for i, g in enumerate(handed_on) if _digest(g.image) not in true_frames]
    assert not made_up, f"{len(made_up)} concealed frames handed on as parts, e.g. {made_up[:5]}"
    concealed = [g for g in lossy if g.image is None]
    assert concealed and all(g.reason == reason for g in concealed), [(g.reason, g.error) for g in concealed]
    assert ("concealed" in concealed[0].error or reason != "concealed") and "key frame" in concealed[0].error
    # inspection resumes: the last two GOPs' 50 frames (the third key frame on) are all handed on
    assert [_digest(g.image) for g in handed_on[-50:]] == true_frames[-50:]


def test_the_capture_worker_counts_concealed_frames_and_hands_on_only_true_ones(tmp_path, caplog):
    """Through the capture worker: the concealed frames counted (``lossy.concealed``, the camera's stats), a
    throttled warning naming them (the first few of a burst), and no concealed frame in the hub."""
    caplog.set_level(logging.WARNING, logger="inspector.capture")
    if not _has_libx265():
        pytest.skip("this ffmpeg has no libx265")
    clip = _clip(tmp_path)
    true_frames = {_digest(g.image) for g in _read_all(clip)}
    states, reconnected = [], threading.Event()

    def on_status(name, state, *rest) -> None:
        states.append(state)
        if state == "reconnecting":  # the one pass of the stream ended
            reconnected.set()

    with serving(_second_key_frame_lost(tmp_path, clip)) as port:
        cam = _camera(port)
        hub, stop, counters = FrameHub(Counters()), threading.Event(), Counters()
        worker = CaptureWorker(cam, make_source(cam), hub, stop, counters, on_status)
        worker.start()
        frames = []
        try:
            while not reconnected.is_set():
                frames += hub.take(8, 0.2)
        finally:
            stop.set()
            worker.join(10)
    frames += hub.take(1000, 0)
    assert counters.get("lossy.concealed") >= 20, counters.snapshot()
    assert frames and all(_digest(f.image) in true_frames for f in frames), states
    lines = [r.getMessage() for r in caplog.records if "(concealed)" in r.getMessage()]
    assert 1 <= len(lines) <= 5 and "camera 'lossy'" in lines[0] and "next key frame" in lines[0], lines


def _frame_line(n: int, key: bool) -> str:
    """showinfo's line for frame ``n`` as the program writes it with ``-loglevel level+info``."""
    return (f"[Parsed_showinfo_0 @ 0x55d] [info] n:{n:4d} pts:{n * 3600:7d} pts_time:{n / 25:g} duration: 3600 "
            f"duration_time:0.04 fmt:yuv444p10le sar:1/1 s:64x48 i:P iskey:{int(key)} type:{'I' if key else 'B'}")


def _verdicts(lines: list[str]) -> list[bool]:
    """Whether each frame is concealed, by the rule."""
    rule = ffmpeg_live.Concealment()
    return [v == "concealed" for v in (rule.frame_verdict(*rule.parse(line)) for line in lines) if v is not None]


def test_a_key_frame_output_too_soon_after_a_loss_may_predate_it_and_does_not_end_the_concealment():
    """The decoder holds up to 16 frames between a packet and its output: a key frame output fewer than 16
    frames after a loss may have been decoded before it, so the frames after it still lean on the lost data
    and the concealment lasts to the next key frame; one output 16 frames or more after the loss ends it.
    Lines that say no loss (the program's deprecation warning, stream info) conceal nothing."""
    start = ["[warning] -vsync is deprecated. Use -fps_mode", "[info] Stream mapping:"]
    loss = ["[hevc @ 0x55c] [error] Could not find ref with POC 25"]
    lines = start + [_frame_line(0, True)] + loss + [_frame_line(n, n == 5) for n in range(1, 40)]
    lines[lines.index(_frame_line(30, False))] = _frame_line(30, True)
    assert _verdicts(lines) == [False] + [True] * 29 + [False] * 10
    lossy_link = ["[mpegts @ 0x55b] [warning] Packet corrupt (stream = 0, dts = 205200)."]
    assert _verdicts([_frame_line(0, True)] + lossy_link + [_frame_line(1, False)]) == [False, True]


def test_a_join_between_key_frames_is_no_loss_and_a_loss_after_it_still_is():
    """A (re)connect joins the stream between key frames: the decoder's complaints of the packets before the
    first key frame (H.264: "non-existing PPS 0 referenced", "no frame!") and the pictures it makes up before it
    are the join's, not a loss: those pictures are 'before_key_frame', and the first key frame, though output
    right after the complaints, and its interval are whole. Taken as a loss, that interval (25 frames) was
    counted 'concealed' at every reconnect. A loss after the first key frame is one, as before."""
    join = ["[h264 @ 0x55c] [error] non-existing PPS 0 referenced", "[h264 @ 0x55c] [error] no frame!"]
    rule = ffmpeg_live.Concealment()
    lines = join + [_frame_line(0, False), _frame_line(1, False)] + join + [_frame_line(n, n in (2, 27))
                                                                            for n in range(2, 30)]
    verdicts = [v for v in (rule.frame_verdict(*rule.parse(line)) for line in lines) if v is not None]
    assert verdicts == ["before_key_frame"] * 2 + [""] * 28
    loss = ["[hevc @ 0x55c] [error] Could not find ref with POC 25"]
    assert _verdicts(join + [_frame_line(0, True)] + loss + [_frame_line(1, False)]) == [False, True]
