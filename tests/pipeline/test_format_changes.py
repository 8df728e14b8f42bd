"""A source whose frames start coming out otherwise (size, grey or colour, depth, pixel format) mid-stream: a camera
reconfigured (binning, ROI, pixel format). Every frame is still inspected, and the change is said once, naming the
source and old → new (state 'changed', counters ``size_changes`` / ``format_changes``), whatever the source kind:
a video file whose decoder rescales the change away, a folder of pictures switching to grey or to 16 bits, a
GenICam camera switching Mono12 → Mono16 (the same uint16 arrays). Real files, real OpenCV and FFmpeg, the
daemon's real capture worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source
from inspector.pipeline.telemetry import Counters
from source_support import decoded

_NEEDS_FFMPEG = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                   reason="needs the ffmpeg and ffprobe programs")


def _capture(cam: CameraSection, source=None) -> tuple[list, list[tuple[str, str]], Counters]:
    """Run the daemon's capture worker on ``cam`` to the source's end: (frames delivered, (state, reason) said,
    counters)."""
    counters, hub, states = Counters(), FrameHub(Counters()), []
    worker = CaptureWorker(cam, source or make_source(cam), hub, threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=64)
    worker.start()
    frames = []
    while worker.is_alive() or hub.pending():
        frames += hub.take(64, 0.02)
    worker.join(30)
    return frames, states, counters


def _segment(path: Path, size: str, frames: int = 5, codec: str = "mpeg2video") -> bytes:
    """``frames`` frames of FFmpeg's test pattern at ``size`` as MPEG-2 (``codec``) in MPEG-TS, one GOP (H.264:
    with B-frames): the bytes."""
    if codec == "libx264" and "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"],
                                                              capture_output=True, text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=10",
                    "-frames:v", str(frames), "-c:v", codec, "-g", str(frames),
                    *(["-bf", "2"] if codec == "libx264" else []), "-f", "mpegts", str(path)],
                   check=True, timeout=60)
    return path.read_bytes()


def _one_recording(parts: list[Path], out: Path) -> list[int]:
    """The MPEG-TS files ``parts`` as one recording at ``out``, as one recorder's muxer writes it (FFmpeg's concat
    demuxer, the stream copied): its TS packets counted on across each join. Bytes joined as they are restart the
    count, which FFmpeg's demuxer takes for lost packets ("Packet corrupt"): the frames after such a join are
    skipped as made up (counted 'concealed', ffmpeg_live.Concealment). The byte offset of each key frame (of each
    part, for parts of one GOP)."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{part}'\n" for part in parts))
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    "-f", "mpegts", str(out)], check=True, timeout=60)
    packets = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pos,flags",
                              "-of", "csv=p=0", str(out)], capture_output=True, text=True, check=True).stdout
    return [int(row.split(",")[0]) for row in packets.split() if row.split(",")[1].startswith("K")]


@_NEEDS_FFMPEG
@pytest.mark.parametrize("codec, small", [("mpeg2video", 5), ("libx264", 5)])
def test_a_video_whose_resolution_changes_mid_file_gives_each_frame_at_its_size_and_says_so(tmp_path, codec, small):
    """An MPEG-TS recording of 64x48 frames, then (the camera reconfigured) 128x96: a transport stream carries
    the new sequence header in band, as a camera's RTSP/TS output does. OpenCV's FFmpeg backend gives every
    frame at 64x48 (CAP_PROP_FRAME_WIDTH stays 64): the daemon said the change but fed the model the later
    parts squeezed to the first size ('the decoder rescales them to 64x48'). Now such a file is read by the
    ffmpeg program as a live stream is: each frame at its own size, the change said with its first frame.
    (``small``: every frame of the first part. FFmpeg's MPEG-2 decoder loses the frame it holds at a sequence change,
    OpenCV's read as well, and the program's lost it (4) until its feed was cut before the new sequence, the old
    decoder flushed, a new one started there: ts_feed.)"""
    video = tmp_path / "reconfigured.ts"
    _segment(tmp_path / "a.ts", "64x48", codec=codec), _segment(tmp_path / "b.ts", "128x96", codec=codec)
    _one_recording([tmp_path / "a.ts", tmp_path / "b.ts"], video)
    by_opencv = decoded(video)
    assert {f.shape for f in by_opencv} == {(48, 64, 3)}, "OpenCV no longer rescales: the program is needless"
    said_at = []  # (state, reason, frames delivered when said)
    counters, hub = Counters(), FrameHub(Counters())
    cam = CameraSection(name="line1", source=str(video))
    worker = CaptureWorker(cam, make_source(cam), hub, threading.Event(), counters,
                           lambda c, s, p, r, d: said_at.append((s, r, d["frames"])), capacity=64)
    worker.start()
    frames = []
    while worker.is_alive() or hub.pending():
        frames += hub.take(64, 0.02)
    worker.join(30)
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * small + [(96, 128, 3)] * 5  # none rescaled
    # none lost that OpenCV gives (the frame OpenCV's MPEG-2 decoder drops at the new sequence is read here)
    assert len(frames) >= len(by_opencv) and len(frames) == counters.get("line1.captured") == 10
    truth = decoded(tmp_path / "a.ts")[:small] + decoded(tmp_path / "b.ts")  # each part as OpenCV decodes it
    diffs = [int(np.abs(f.image.astype(np.int16) - t.astype(np.int16)).max()) for f, t in zip(frames, truth)]
    assert max(diffs) <= 2, diffs
    changed = [(r, n) for s, r, n in said_at if s == "changed"]
    assert changed == [(f"file {video}: frame size 64x48 → 128x96: parts appear at another scale than the model "
                        "was calibrated on", small + 1)], said_at  # said with the first frame at 128x96
    assert counters.get("line1.size_changes") == 1 and counters.get("line1.format_changes") == 0
    assert said_at[-1][0] == "ended"


@_NEEDS_FFMPEG
def test_a_video_that_keeps_its_format_says_nothing(tmp_path):
    video = tmp_path / "steady.ts"
    _segment(video, "64x48", frames=8)
    frames, states, counters = _capture(CameraSection(name="c", source=str(video)))
    assert len(frames) == 8 and [s for s, _ in states] == ["connecting", "online", "ended"], states
    assert counters.get("c.size_changes") == 0 and counters.get("c.format_changes") == 0


def test_a_folder_whose_pictures_switch_to_grey_or_to_16_bits_says_so_once_per_change(tmp_path):
    """Pictures of a camera that was switched from colour to Mono8 (then to 16-bit, 12 bits declared by sBIT
    being what many cameras write): the decoder makes every one uint8 (H, W, 3) BGR, so the arrays the daemon
    saw did not change and neither did anything it said."""
    import struct
    import zlib

    colour = np.dstack([np.full((48, 64), v, np.uint8) for v in (30, 120, 210)])
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), colour)
    for i in range(3, 5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), colour[:, :, 1])
    png = cv2.imencode(".png", np.full((48, 64), 1000 << 4, np.uint16))[1].tobytes()
    end = 8 + 12 + struct.unpack(">I", png[8:12])[0]  # sBIT (12 bits) right after IHDR
    (tmp_path / "5.png").write_bytes(png[:end] + struct.pack(">I", 1) + b"sBIT\x0c"
                                     + struct.pack(">I", zlib.crc32(b"sBIT\x0c")) + png[end:])
    frames, states, counters = _capture(CameraSection(name="dump", source=str(tmp_path)))
    assert len(frames) == 6  # still inspected
    changed = [r for s, r in states if s == "changed"]
    tail = ": still inspected (made 8-bit RGB and resized like every frame), but the model was calibrated on the former"
    assert changed == [f"folder {tmp_path}: frames changed from 64x48 colour uint8 to 64x48 grey uint8{tail}",
                       f"folder {tmp_path}: frames changed from 64x48 grey uint8 to 64x48 grey uint16 (12-bit){tail}"]
    assert counters.get("dump.format_changes") == 2 and counters.get("dump.size_changes") == 0


def test_a_genicam_camera_switched_from_mono12_to_mono16_says_so(monkeypatch):
    """Mono12 and Mono16 both arrive as uint16 (H, W) arrays: only the camera's PixelFormat tells them apart, and
    the model's levels differ by 16x. A driver standing in for Aravis (the fake GigE camera has no Mono12, and
    cannot switch format while streaming): the source's own decoding, the daemon's capture worker."""
    from inspector.integrations.genicam import GenicamSource, Popped
    from inspector.pipeline.integration_config import GenicamSection

    samples = np.arange(64 * 64, dtype="<u2").reshape(64, 64) % 4096
    formats = ["Mono12"] * 3 + ["Mono16"] * 3

    class SwitchingDriver:
        def open(self, device_id, settings):
            return "Mono12 64x64"

        def pop(self, timeout_s, newest=False):
            if not formats:
                from inspector.errors import SourceError
                raise SourceError("camera gone", permanent=True)
            return Popped(samples.tobytes(), formats.pop(0), 64, 64, True)

        def trigger(self):
            pass

        def stats(self):
            return {}

        def close(self):
            pass

    cam = CameraSection(name="gige", source="genicam://stub", mode="offline", genicam=GenicamSection())
    frames, states, counters = _capture(cam, GenicamSource(cam, SwitchingDriver()))
    assert len(frames) == 6
    changed = [r for s, r in states if s == "changed"]
    assert len(changed) == 1 and "frames changed from 64x64 grey uint16 (12-bit) (Mono12) to 64x64 grey uint16 " \
        "(Mono16)" in changed[0], states
    assert counters.get("gige.format_changes") == 1


def _serve_colour_then_grey(server, per_kind: int = 4) -> None:
    """An MJPEG-over-HTTP camera switched from colour to grey JPEGs mid-stream (one connection)."""
    conn, _ = server.accept()
    with conn:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n")
        colour = cv2.imencode(".jpg", np.full((48, 64, 3), (40, 120, 200), np.uint8))[1].tobytes()
        grey = cv2.imencode(".jpg", np.full((48, 64), 120, np.uint8))[1].tobytes()
        for jpg in [colour] * per_kind + [grey] * per_kind:
            conn.sendall(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")
            time.sleep(0.05)


def test_an_mjpeg_stream_switched_to_grey_says_so():
    import socket

    from inspector.pipeline.config import ReconnectSection

    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve_colour_then_grey, args=(server,), daemon=True).start()
    cam = CameraSection(name="net", source=f"http://127.0.0.1:{server.getsockname()[1]}/v.mjpg", open_timeout_s=5,
                        read_timeout_s=1, reconnect=ReconnectSection(initial_s=0.05, max_s=0.1, max_attempts=1))
    frames, states, counters = _capture(cam)
    server.close()
    assert frames
    changed = [r for s, r in states if s == "changed"]
    assert len(changed) == 1 and changed[0].startswith(f"url {cam.source}: frames changed from 64x48 colour uint8 "
                                                       "to 64x48 grey uint8"), states
    assert counters.get("net.format_changes") == 1


def test_key_frame_layouts_are_trusted_only_when_each_key_packet_gave_its_frame():
    """ffprobe's listing read by the source: one decoded frame per key packet maps frame indices to layouts; a
    listing where a key frame's picture is missing (MPEG-2's decoder held one back without ``low_delay``) says
    nothing rather than pairing the wrong frames."""
    from inspector.pipeline.keyframe_layouts import parse

    listing = ("packet,0,0.000000,K_\npacket,1,0.100000,__\npacket,2,0.200000,K_\npacket,3,0.300000,__\n"
               "frame,64,48,yuv420p\nframe,64,48,gray12le\n")
    layouts = parse(listing)
    assert layouts.starts == [0, 2] and [layouts.at(i).describe() for i in range(4)] == [
        "64x48 colour uint8 (yuv420p)", "64x48 colour uint8 (yuv420p)", "64x48 grey uint16 (12-bit) (gray12le)",
        "64x48 grey uint16 (12-bit) (gray12le)"]
    assert parse("packet,0,0,K_\npacket,1,0.1,K_\npacket,2,0.2,K_\nframe,128,96,yuv420p\n") is None
    # the last key packet without its frame: cut short by the end of a file still being written, listed to it
    cut = parse("packet,0,0,K_\npacket,1,0.1,__\npacket,2,0.2,K_\nframe,64,48,yuv420p\n")
    assert cut.starts == [0] and cut.frames == 2 and cut.last_key == (0, "0")


@_NEEDS_FFMPEG
def test_a_wide_video_whose_resolution_changes_mid_file_gives_each_frame_at_its_size(tmp_path):
    """10-bit HEVC (decoded at full depth by the ffmpeg program, which also scaled every frame to its first
    size): the same rule, each size's samples decoded by the recordings' rule at that size."""
    if "libx265" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx265")
    video = tmp_path / "wide.ts"
    for size in ("64x48", "128x96"):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=10", "-frames:v",
                        "5", "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error:keyint=5",
                        "-f", "mpegts", str(tmp_path / f"{size}.ts")], check=True, stdin=subprocess.DEVNULL, timeout=60)
        with video.open("ab") as out:
            out.write((tmp_path / f"{size}.ts").read_bytes())
    frames, states, counters = _capture(CameraSection(name="w", source=str(video)))
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * 5 + [(96, 128, 3)] * 5
    changed = [r for s, r in states if s == "changed"]
    assert changed == [f"file {video}: frame size 64x48 → 128x96: parts appear at another scale than the model "
                       "was calibrated on"], states
    assert counters.get("w.size_changes") == 1 and counters.get("w.format_changes") == 0


@_NEEDS_FFMPEG
def test_a_looping_video_whose_resolution_changes_gives_each_pass_at_its_sizes(tmp_path):
    """The program's reader restarts at each loop (a seek is a restart that steps over frames): every pass gives
    the same frames at their own sizes, each change said (back to 64x48 at the wrap as well)."""
    video = tmp_path / "loop.ts"
    _segment(tmp_path / "a.ts", "64x48", codec="libx264"), _segment(tmp_path / "b.ts", "128x96", codec="libx264")
    _one_recording([tmp_path / "a.ts", tmp_path / "b.ts"], video)
    frames, states, counters = _capture(CameraSection(name="l", source=str(video), loop=True, max_frames=25))
    assert [f.image.shape[:2] for f in frames] == ([(48, 64)] * 5 + [(96, 128)] * 5) * 2 + [(48, 64)] * 5
    assert counters.get("l.size_changes") == 4 and counters.get("l.captured") == 25


def _part(path: Path, size: str, pix_fmt: str, codec: str, offset_s: float, frames: int = 5) -> bytes:
    """``frames`` frames of the test pattern at ``size`` / ``pix_fmt`` by ``codec`` in MPEG-TS, one GOP (H.264:
    no B-frames, an IP camera's usual profile), its timestamps from ``offset_s`` on: one part of a recording whose
    camera was reconfigured while it recorded."""
    if codec == "libx264" and "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"],
                                                              capture_output=True, text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10",
                    "-frames:v", str(frames), "-c:v", codec, "-g", str(frames), "-bf", "0", "-pix_fmt", pix_fmt,
                    "-output_ts_offset", str(offset_s), "-f", "mpegts", str(path)], check=True, timeout=60)
    return path.read_bytes()


@_NEEDS_FFMPEG
@pytest.mark.parametrize("codec, later, small", [("mpeg2video", ("128x96", "yuv420p"), 5),
                                                 ("libx264", ("64x48", "yuv444p"), 5)])
def test_a_recording_reconfigured_while_it_is_read_on_gives_each_frame_its_own_layout(tmp_path, codec, later, small):
    """A recording still being written (MPEG-TS, 64x48 yuv420p) read to the end of what is there; then the camera
    is reconfigured and its next part appended (128x96, or 4:4:4 at the same size), then a third part as the
    second. Its key frames were listed at open only: the appended ones kept the first layout, nothing was said,
    and the 128x96 frames came rescaled to 64x48. Now every frame has its own size and layout (which the capture
    worker compares to say the change). (``small``: every frame of the first part: read on as it grows through a
    pipe (ts_feed), cut before the new sequence so that the MPEG-2 decoder flushes the frame it holds there.)"""
    video = tmp_path / "recording.ts"
    _part(tmp_path / "a.ts", "64x48", "yuv420p", codec, 0.0)
    _part(tmp_path / "b.ts", *later, codec, 0.6), _part(tmp_path / "c.ts", *later, codec, 1.2)
    whole = tmp_path / "whole.ts"  # what the recorder writes, its parts' bytes appended one by one
    starts = _one_recording([tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "c.ts"], whole)[1:]
    assert len(starts) == 2, starts
    data = whole.read_bytes()
    video.write_bytes(data[:starts[0]])
    rest = [data[starts[0]:starts[1]], data[starts[1]:]]

    def append_a_part() -> None:
        if rest:
            with video.open("ab") as out:
                out.write(rest.pop(0))
        else:  # written long ago: its end is its end
            os.utime(video, (time.time() - 60, time.time() - 60))

    cam = CameraSection(name="rec", source=str(video))
    source = make_source(cam)
    source.open()
    shapes, layouts = [], []
    try:
        for _ in range(400):
            grabbed = source.read()
            if grabbed is None:
                break
            if grabbed.image is None:
                assert grabbed.reason == "growing", grabbed.error
                append_a_part()
                continue
            shapes.append(grabbed.image.shape[:2])
            layouts.append(grabbed.layout.describe())
    finally:
        source.close()
    width, height = map(int, later[0].split("x"))
    assert shapes == [(48, 64)] * small + [(height, width)] * 10, shapes
    assert layouts == ["64x48 colour uint8 (yuv420p)"] * small + [f"{later[0]} colour uint8 ({later[1]})"] * 10


@_NEEDS_FFMPEG
def test_a_grown_recording_is_listed_on_from_its_last_key_frame_as_a_whole_listing_would_list_it(tmp_path):
    """The rescan of a grown recording lists it from the last key frame listed before (a seek: a long recording
    is not decoded whole at every rescan), found again by its pts: joined, the same starts, layouts and frame
    count as a listing of the whole file."""
    from inspector.pipeline import keyframe_layouts

    video = tmp_path / "recording.ts"
    parts = [("a.ts", "64x48", 0.0), ("b.ts", "64x48", 0.6), ("c.ts", "128x96", 1.2), ("d.ts", "64x48", 1.8)]
    parts = [_part(tmp_path / name, size, "yuv420p", "mpeg2video", offset) for name, size, offset in parts]
    video.write_bytes(b"".join(parts[:2]))
    before = keyframe_layouts.probe(str(video), "rec")
    with video.open("ab") as out:
        out.write(b"".join(parts[2:]))
    tail = keyframe_layouts._listing(str(video), "rec", 20.0, before.key_times[-2][1])
    joined = keyframe_layouts.probe(str(video), "rec", after=before)
    whole = keyframe_layouts._listing(str(video), "rec", 20.0)
    assert tail.frames < whole.frames and keyframe_layouts._joined(before, tail) is not None  # from the seek
    assert (joined.starts, joined.layouts, joined.frames, joined.key_times) == (
        whole.starts, whole.layouts, whole.frames, whole.key_times) and len(whole.starts) == 4


@_NEEDS_FFMPEG
def test_a_grown_mpeg2_recording_has_its_chroma_formats_read_on_from_the_last_scan(tmp_path, monkeypatch):
    """An MPEG-2 recording growing from 4:2:0 parts to a 4:2:2 one at the same size: the rescan reads the sequence
    headers on from the last key frame scanned (a seek: -ss), not from the file's start (it re-read the whole file
    at every rescan of a growing recording), and tells each key frame's chroma format as a scan of the whole file
    does (the 4:2:2 key frame said yuv422p)."""
    from inspector.pipeline import keyframe_layouts

    video = tmp_path / "recording.ts"
    parts = [("a.ts", "yuv420p", 0.0), ("b.ts", "yuv420p", 0.6), ("c.ts", "yuv420p", 1.2), ("d.ts", "yuv422p", 1.8),
             ("e.ts", "yuv422p", 2.4)]
    parts = [_part(tmp_path / name, "64x48", pix_fmt, "mpeg2video", offset) for name, pix_fmt, offset in parts]
    video.write_bytes(b"".join(parts[:3]))
    before = keyframe_layouts.probe(str(video), "rec")
    with video.open("ab") as out:
        out.write(b"".join(parts[3:]))
    copies, popen = [], subprocess.Popen

    def watched(cmd, *args, **kwargs):  # the real program, its command noted
        if cmd[0] == "ffmpeg" and "copy" in cmd:
            copies.append(cmd)
        return popen(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", watched)
    joined = keyframe_layouts.probe(str(video), "rec", after=before)
    # once, from the second key frame (the last scanned but one), 0.5 s after the start: not the whole file
    assert len(copies) == 1 and "-ss" in copies[0] and float(copies[0][copies[0].index("-ss") + 1]) > 0.4, copies
    monkeypatch.setattr(subprocess, "Popen", popen)
    whole = keyframe_layouts.probe(str(video), "rec")
    assert [k.pixel_format for k in whole.layouts] == ["yuv420p"] * 3 + ["yuv422p"] * 2, whole.layouts
    assert (joined.starts, joined.layouts) == (whole.starts, whole.layouts)


def _mpeg2_parts(tmp_path: Path, parts: list[tuple[str, str]], encoding: tuple[str, ...] = ()) -> tuple[Path, np.ndarray]:
    """A recording of MPEG-2 parts (size, pix_fmt), 5 frames each, joined by FFmpeg's concat demuxer (the
    stream copied: each part's sequence header in band, timestamps continued), and its source pixels: the test
    pattern's BGR frames, uint8 (H, W, 3) each, at their part's size. ``encoding``: more encoder options (the
    last of an option given twice wins: ``-bf 2`` for B-frames)."""
    listing, truth = tmp_path / "parts.txt", []
    for n, (size, pix_fmt) in enumerate(parts):
        pattern = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-vf", f"trim=start_frame={5 * n}:"
                   f"end_frame={5 * n + 5},setpts=PTS-STARTPTS"]
        subprocess.run(["ffmpeg", "-y", "-v", "error", *pattern, "-c:v", "mpeg2video", "-q:v", "2", "-g", "5",
                        "-bf", "0", *encoding, "-pix_fmt", pix_fmt, "-f", "mpegts", str(tmp_path / f"{n}.ts")], check=True,
                       timeout=60)
        raw = subprocess.run(["ffmpeg", "-v", "error", *pattern, "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                             check=True, capture_output=True, timeout=60).stdout
        width, height = map(int, size.split("x"))
        truth += list(np.frombuffer(raw, np.uint8).reshape(5, height, width, 3))
    listing.write_text("".join(f"file '{tmp_path / f'{n}.ts'}'\n" for n in range(len(parts))))
    video = tmp_path / "recording.ts"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    "-f", "mpegts", str(video)], check=True, timeout=60)
    os.utime(video, (time.time() - 60, time.time() - 60))  # written long ago: its end is its end
    return video, truth


def _nearest_mean(image: np.ndarray, truth: list[np.ndarray]) -> float:
    """The mean difference (levels) to the nearest source frame of the same size."""
    return min(float(np.abs(image.astype(np.int16) - t.astype(np.int16)).mean()) for t in truth
               if t.shape == image.shape)


@_NEEDS_FFMPEG
def test_an_mpeg2_recording_switched_from_420_to_422_mid_file_says_so_and_decodes_each_part_right(tmp_path):
    """MPEG-2 4:2:0, then (the camera reconfigured) 4:2:2 at the same size. FFmpeg's MPEG-2 decoder keeps the
    first sequence's chroma format and names every frame yuv420p (FFmpeg 5.1: the ffprobe listing of key frames
    saw no change, nothing was said; the program decoded the 4:2:2 frames 214 levels off). Now the sequence
    headers tell each key frame's chroma format: the change is said once, with the first 4:2:2 frame, and every
    frame is the source's picture within the codec's loss (mean ≤ 6 levels; measured 1.3 at 4:2:0, 3.7 at
    4:2:2, where a 4:2:2 frame read as 4:2:0 is over 30 off)."""
    video, truth = _mpeg2_parts(tmp_path, [("64x48", "yuv420p"), ("64x48", "yuv422p")])
    frames, states, counters = _capture(CameraSection(name="m2", source=str(video)))
    assert len(frames) >= 9  # the decoder drops the frame it holds at the new sequence header
    means = [_nearest_mean(f.image, truth) for f in frames]
    assert max(means) <= 6, means
    changed = [r for s, r in states if s == "changed"]
    assert changed == [f"file {video}: frames changed from 64x48 colour uint8 (yuv420p) to 64x48 colour uint8 "
                       "(yuv422p): still inspected (made 8-bit RGB and resized like every frame), but the model was "
                       "calibrated on the former"], states
    assert counters.get("m2.format_changes") == 1 and counters.get("m2.size_changes") == 0
    # each frame's layout is its own part's (by its time: the decoder's dropped frame shifts the count by one)
    source = make_source(CameraSection(name="m2", source=str(video)))
    source.open()
    grabbed = [source.read() for _ in frames]
    source.close()
    part = ["yuv422p" if _nearest_mean(g.image, truth[5:]) < _nearest_mean(g.image, truth[:5]) else "yuv420p"
            for g in grabbed]
    assert [g.layout.pixel_format for g in grabbed] == part and part.count("yuv420p") == 4, part


@_NEEDS_FFMPEG
def test_an_mpeg2_recording_switched_to_422_while_it_is_read_on_gives_each_frame_right(tmp_path, monkeypatch):
    """The 4:2:0 → 4:2:2 recording above (same size) copied in 3 kB parts while read: all 10 frames, in order, each
    its own part's picture within the codec's loss (mean ≤ 6 levels). Read by OpenCV as it grew, frames were made
    up at the ends of what was there and real ones stepped over; read by the program through a pipe without a cut
    at the new sequence, the 4:2:2 part was decoded as 4:2:0 (20 levels off)."""
    from inspector.pipeline import sources
    from tests.pipeline.test_source_lifecycle import _copying, _read_recording

    monkeypatch.setattr(sources, "_GROWTH_POLL_S", 0.001)  # the wait between looks at the end: a pace only
    video, truth = _mpeg2_parts(tmp_path, [("64x48", "yuv420p"), ("64x48", "yuv422p")])
    copying, copy_a_part = _copying(video, tmp_path / "copying.ts", 3_000)
    images, reasons = _read_recording(copying, copy_a_part, limit=2000)
    assert set(reasons) == {"growing"} and len(images) == 10, (len(images), reasons[-3:])
    means = [_nearest_mean(image, truth[:5] if n < 5 else truth[5:]) for n, image in enumerate(images)]
    assert max(means) <= 6, means


@_NEEDS_FFMPEG
def test_an_mpeg2_recording_whose_chroma_changes_without_its_size_is_not_handed_to_the_program(tmp_path):
    """64x48 4:2:0, 128x96 4:2:0, then 128x96 4:2:2: the size change would have the file read by the ffmpeg program
    at its own sizes, whose MPEG-2 decoder reads the 4:2:2 part as 4:2:0 (no new size: no new chroma format;
    FFmpeg 5.1: 18 to 23 levels off on average, named yuv420p). OpenCV's decoder reads it right: the file stays
    with OpenCV, its later frames rescaled to the first size and said so, each part's pixels right (the 4:2:2
    part within 2 levels of the 4:2:0 one's rescaled frames' error to the source) and each frame's layout its own."""
    video, truth = _mpeg2_parts(tmp_path, [("64x48", "yuv420p"), ("128x96", "yuv420p"), ("128x96", "yuv422p")])
    frames, states, counters = _capture(CameraSection(name="m2", source=str(video)))
    assert {f.image.shape for f in frames} == {(48, 64, 3)} and len(frames) == 13, [f.image.shape for f in frames]
    shrunk = [cv2.resize(t, (64, 48), interpolation=cv2.INTER_AREA) for t in truth[5:]]
    means = [_nearest_mean(f.image, shrunk) for f in frames[4:]]
    assert max(means[4:]) <= max(means[:4]) + 2, means
    changed = [r for s, r in states if s == "changed"]
    assert len(changed) == 2 and "64x48 → 128x96" in changed[0] and "rescales them to 64x48" in changed[0], changed
    assert "(yuv420p) to 128x96 colour uint8 (yuv422p)" in changed[1], changed
