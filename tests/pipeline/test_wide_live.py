"""Live streams wider than 8 bits (FFV1 gray12le / gbrp16le, 10-bit HEVC) from a real ``ffmpeg`` sender on
loopback TCP, read at full depth by the ffmpeg program (:mod:`inspector.pipeline.ffmpeg_live`): the same model
input as the same frame decoded as a 16-bit PNG, the newest frame when read slower than the stream plays, and
a camera that recovers when the sender restarts. Skipped where the ffmpeg program is missing."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.backends.base import InputSpec
from inspector.data.images import read_image, resize_image
from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.preprocess import Preprocessor
from inspector.pipeline.sources import make_source
from inspector.pipeline.telemetry import Counters
from picture_support import twelve_bit_picture

SPEC = InputSpec(height=40, width=56, resize="square")
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")




class Sender:
    """A live camera on 127.0.0.1:``port``: each connection gets its own ``ffmpeg -re <args> pipe:1`` (real time).
    :meth:`stop` kills the senders and stops listening (the camera went away); :meth:`start` listens again on
    the same port."""

    def __init__(self, args: list[str]) -> None:
        self.args, self.procs, self.port = args, [], 0
        self.start()

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, args=(self.server,), daemon=True).start()

    def _serve(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            self.procs.append(subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", *self.args, "pipe:1"],
                                               stdout=conn.fileno(), stderr=subprocess.DEVNULL))
            conn.close()

    def stop(self) -> None:
        self.server.close()
        for proc in self.procs:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def sending(args: list[str]):
    sender = Sender(args)
    try:
        yield sender
    finally:
        sender.stop()


HEVC_LOSSLESS = ["-c:v", "libx265", "-pix_fmt", "yuv444p10le", "-x265-params", "lossless=1:log-level=error:bframes=0"]


def _encode(tmp_path: Path, grey: bool, codec: list[str], fmt: str) -> Path:
    """The 12-bit picture, 10 frames encoded by ``codec`` into a ``fmt`` file (streamed in a loop by the sender)."""
    picture = twelve_bit_picture()[:, :, 2] if grey else twelve_bit_picture()
    out = tmp_path / f"enc.{fmt}"
    if codec[1] == "libx265":  # a 10-bit format is the 12 bits' top 10: fed as full-scale 16-bit samples
        picture = (picture << 4) | (picture >> 8)
    (tmp_path / "frame.raw").write_bytes(picture.astype("<u2").tobytes())
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray12le" if grey else "bgr48le",
                    "-s", "32x24", "-framerate", "10", "-stream_loop", "9", "-i", str(tmp_path / "frame.raw"),
                    *codec, "-f", fmt, str(out)], check=True, stdin=subprocess.DEVNULL)
    return out


def _has_libx265() -> bool:
    return "libx265" in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def test_the_senders_looped_clips_decode_the_same_at_every_seam(tmp_path):
    """The sender loops a 10-frame clip by stream copy; a reader behind the stream reaches the seams, so every
    frame of three loops must decode as the clip's first. With x265's default B-frames the copy lost the second
    loop's key frame: 30 frames of 50 came out, 4 of them grey-blended (16,772 of 65,535 off)."""
    if not _has_libx265():
        pytest.skip("this ffmpeg has no libx265")
    encoded = _encode(tmp_path, False, HEVC_LOSSLESS, "mpegts")
    looped = tmp_path / "looped.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "2", "-i", str(encoded), "-c", "copy", "-f",
                    "mpegts", str(looped)], check=True, stdin=subprocess.DEVNULL, capture_output=True)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(looped), "-vsync", "passthrough", "-f", "rawvideo",
                          "-pix_fmt", "bgr48le", "pipe:1"], capture_output=True, stdin=subprocess.DEVNULL).stdout
    frames = np.frombuffer(raw, "<u2").reshape(-1, 24, 32, 3)
    assert len(frames) == 30, len(frames)
    assert all(np.array_equal(frame, frames[0]) for frame in frames)


def _png_of(tmp_path: Path, encoded: Path, grey: bool) -> Path:
    """The encoded stream's first frame decoded at full depth by the ffmpeg program, as a 16-bit PNG."""
    png = tmp_path / "decoded.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(encoded), "-frames:v", "1", "-pix_fmt",
                    "gray16be" if grey else "rgb48be", str(png)], check=True, stdin=subprocess.DEVNULL)
    return png


def _model_input(image: np.ndarray, camera: str, bit_depth: int | None) -> np.ndarray:
    slot = np.empty((SPEC.height, SPEC.width, 3), np.uint8)
    Preprocessor(SPEC, "square", {camera: bit_depth}).into(image, slot, camera)
    return slot


@pytest.mark.parametrize("name, grey, codec, fmt, bit_depth, max_diff, mean_diff", [
    ("ffv1_gray12le", True, ["-c:v", "ffv1", "-pix_fmt", "gray12le"], "nut", None, 0, 0.0),
    ("ffv1_gbrp16le", False, ["-c:v", "ffv1", "-pix_fmt", "gbrp16le"], "nut", 12, 0, 0.0),
    # lossless HEVC of 10 of the 12 bits, RGB → YUV 4:4:4 → RGB: the picture's own rounding (measured max 1).
    # No B-frames, as a live camera's encoder: the sender's looped stream copy loses a B-frame clip's seam key
    # frame, and its B-frames decode against grey (half contrast, 65 off) — a broken sender, reached when the
    # reader falls behind (:func:`test_the_senders_looped_clips_decode_the_same_at_every_seam`)
    ("hevc_yuv444p10le", False, HEVC_LOSSLESS, "mpegts", None, 2, 0.5)])
def test_a_wide_live_stream_gives_the_model_what_its_frame_as_a_png_gives(tmp_path, name, grey, codec, fmt,
                                                                          bit_depth, max_diff, mean_diff):
    """12-bit camera data streamed live in a compressed wide format: the daemon's model input is bitwise what the
    same frame decoded at full depth as a 16-bit PNG gives ``predict``, and within the codec's rounding of the
    original picture. OpenCV cut these streams to 8 bits (gbrp16le 12-bit data 239 levels off; a 10-bit HEVC
    frame rounded); an FFV1 gray12le stream gave only 'corrupt' frames (its packets taken for raw samples)."""
    if codec[1] == "libx265" and not _has_libx265():
        pytest.skip("this ffmpeg has no libx265")
    encoded = _encode(tmp_path, grey, codec, fmt)
    want = resize_image(read_image(_png_of(tmp_path, encoded, grey), bit_depth=bit_depth), SPEC.height, SPEC.width,
                        "square")
    original = twelve_bit_picture()[:, :, 2] if grey else twelve_bit_picture()
    cv2.imwrite(str(tmp_path / "original.png"), original)
    want_original = resize_image(read_image(tmp_path / "original.png", bit_depth=12), SPEC.height, SPEC.width,
                                 "square")
    with sending(["-stream_loop", "-1", "-i", str(encoded), "-c", "copy", "-f", fmt]) as sender:
        camera = CameraSection(name="wide", source=f"tcp://127.0.0.1:{sender.port}", open_timeout_s=10,
                               read_timeout_s=5, bit_depth=bit_depth)
        source = make_source(camera)
        source.open()
        try:
            grabbed = [source.read() for _ in range(5)]
        finally:
            source.close()
    # OpenCV's probe, then the program: an FFV1 gray12le stream was reopened by OpenCV in between (3, 12.4 s)
    assert len(sender.procs) <= 2, len(sender.procs)
    for g in grabbed:
        assert g.image is not None, g.error
        slot = _model_input(g.image, "wide", source.bit_depth)
        assert np.array_equal(slot, want), f"{name}: max diff {np.abs(slot.astype(int) - want).max()}"
        diff = np.abs(slot.astype(int) - want_original)
        assert diff.max() <= max_diff and diff.mean() <= mean_diff, f"{name}: max {diff.max()} mean {diff.mean():.2f}"


def _frame_number(image: np.ndarray) -> int:
    """The sender's frame number mod 128 from a frame of ``geq=lum=mod(N,128)*32`` (12 bits → 8 bits)."""
    levels = np.round(np.arange(128) * 32 * 255 / 4095)
    return int(np.argmin(np.abs(levels - int(image[0, 0, 0]))))


def test_a_wide_live_stream_read_slower_than_it_plays_gives_the_newest_frame_and_counts_the_rest():
    """A 25 fps FFV1 gray12le stream read every ~0.15 s: every frame is the newest, stamped when it arrived, and
    every frame sent is either inspected or counted in buffers_skipped; its lag is unknown (lag_ms None)."""
    with sending(["-f", "lavfi", "-i", "nullsrc=s=64x48:r=25,format=gray12le,geq=lum=mod(N\\,128)*32", "-c:v", "ffv1",
                  "-f", "nut"]) as sender:
        source = make_source(CameraSection(name="fresh", source=f"tcp://127.0.0.1:{sender.port}", open_timeout_s=10,
                                           read_timeout_s=5))
        source.open()
        reads = []
        try:
            t_end = time.monotonic() + 4.0
            while time.monotonic() < t_end:
                time.sleep(0.15)  # a reader slower than the stream (decoding, inference)
                g = source.read()
                reads.append((g, time.time()))
        finally:
            source.close()
    assert len(reads) >= 15 and all(g.image is not None for g, _ in reads), [g.error for g, _ in reads[:3]]
    assert all(g.meta["lag_ms"] is None for g, _ in reads)
    ages = [now - g.t_utc for g, now in reads[2:]]
    assert max(ages) <= 0.1, ages  # the newest: it arrived less than about a frame period before it was read
    numbers = [_frame_number(g.image) for g, _ in reads]
    steps = [(b - a) % 128 for a, b in zip(numbers, numbers[1:])]
    counted = [g.meta.get("buffers_skipped", 0) + 1 for g, _ in reads[1:]]
    assert steps == counted, (steps, counted)  # every frame sent: inspected or counted
    assert sum(steps) / len(steps) >= 3, steps  # ~0.15 s × 25 fps: never the oldest frame first


def test_a_wide_live_camera_recovers_after_its_sender_restarts_and_leaks_nothing(capfd):
    """The sender goes away (the stream ends) and comes back 2 s later on the same port: the camera reconnects
    with back-off and frames flow again at full depth. No ffmpeg program outlives its connection, and neither
    the address's password nor the program's own lines reach the daemon's stderr; nor is the password on
    the program's command line (readable by every local user)."""
    states, lock = [], threading.Lock()
    with sending(["-f", "lavfi", "-i", "nullsrc=s=64x48:r=25,format=gray12le,geq=lum=2048", "-c:v", "ffv1",
                  "-f", "nut"]) as sender:
        cam = CameraSection(name="back", source=f"tcp://op:secret@127.0.0.1:{sender.port}", open_timeout_s=10,
                            read_timeout_s=3, reconnect=ReconnectSection(initial_s=0.5, max_s=1.0))
        hub, stop, counters = FrameHub(Counters()), threading.Event(), Counters()

        def on_status(*args) -> None:
            with lock:
                states.append(" ".join(map(str, args)))

        worker = CaptureWorker(cam, make_source(cam), hub, stop, counters, on_status)
        worker.start()
        try:
            before = _frames_for(hub, worker, 10.0, until_one=True) + _frames_for(hub, worker, 0.5)
            pids = {_reader_pid(worker)}
            cmdline = Path(f"/proc/{_reader_pid(worker)}/cmdline").read_bytes()  # what `ps` shows every user
            sender.stop()
            _frames_for(hub, worker, 2.0)  # the frames left in the hub, and none while the sender is away
            t_back = time.time()
            sender.start()
            after = _frames_for(hub, worker, 20.0, until_one=True)
            pids.add(_reader_pid(worker))
        finally:
            stop.set()
            worker.join(10)
    assert before and after and after[0].capture_utc > t_back, states
    assert all(f.image[0, 0, 0] == round(2048 * 255 / 4095) for f in before + after)
    assert counters.get("back.reconnects") >= 1 and any("reconnecting" in s for s in states), states
    assert not any("secret" in s for s in states), states
    assert b"secret" not in cmdline and b"127.0.0.1" not in cmdline, cmdline  # frames came all the same
    for pid in pids:  # killed and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # the ffmpeg program's lines stay its own (OpenCV's in-process FFmpeg prints its failed connections itself)
    err = capfd.readouterr().err
    assert "Error while decoding" not in err and "[nut @" not in err, err


def _frames_for(hub: FrameHub, worker, seconds: float, until_one: bool = False) -> list:
    frames, t_end = [], time.monotonic() + seconds
    while time.monotonic() < t_end and not (until_one and frames):
        frames += hub.take(1, 0.2)
    return frames


def _reader_pid(worker) -> int:
    """The pid of the ffmpeg program now reading the worker's camera (its source is open: it gave a frame)."""
    return worker.source._chosen._frames.pid
