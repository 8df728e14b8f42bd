"""A live camera reconfigured mid-stream (binning, ROI, another profile): its H.264 stream over tcp:// goes on at
another frame size or pixel format, the new sequence header in band, as an IP camera's MPEG-TS does. Read by the
ffmpeg program (``live_decoder: ffmpeg``), the program used to scale every frame to the first size (its
auto-inserted scaler, ``-s``): 128x96 frames reached the model as 64x48 ones, and nothing was said. Now each frame
comes at its own size (``-autoscale 0``, framed by its showinfo line) and the change is said as for every other
source (state 'changed', ``size_changes`` / ``format_changes``). Real FFmpeg encoder, program and capture worker;
skipped where the ffmpeg program or its libx264 is missing."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from inspector.pipeline import ffmpeg_live
from inspector.pipeline.config import CameraSection, ReconnectSection
from source_support import decoded
from tests.pipeline.test_format_changes import _capture

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")



def _ports() -> range | list[int]:
    """Where the camera may listen: ``INSPECTOR_TEST_PORTS`` ("27500-27599") on a shared machine, else a port
    the system picks (tests/net_faults.free_port's rule; a fixed range here collided with other sessions)."""
    span = os.environ.get("INSPECTOR_TEST_PORTS", "")
    if not span:
        return [0]
    low, high = (int(p) for p in span.split("-"))
    return range(low, high + 1)


def _h264(path: Path, size: str, pix_fmt: str = "yuv420p", frames: int = 10) -> Path:
    """``frames`` moving frames of 8-bit H.264 at ``size`` in MPEG-TS, a key frame every 5."""
    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=10", "-frames:v",
                    str(frames), "-c:v", "libx264", "-pix_fmt", pix_fmt, "-g", "5", "-f", "mpegts", str(path)],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)
    return path


def _hevc(tmp_path: Path, size: str, pix_fmt: str) -> Path:
    """Ten frames of 10-bit-capable HEVC (``pix_fmt``) at ``size`` in an MPEG-TS file, a key frame every five;
    skips the test where this ffmpeg has no libx265."""
    if "libx265" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx265")
    path = tmp_path / f"{size}-{pix_fmt}.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=10", "-frames:v", "10",
                    "-c:v", "libx265", "-pix_fmt", pix_fmt, "-x265-params", "log-level=error:keyint=5",
                    "-f", "mpegts", str(path)], check=True, stdin=subprocess.DEVNULL, timeout=60)
    return path


def _joined(tmp_path: Path, *parts: Path) -> bytes:
    """``parts`` played one after the other as one transport stream (FFmpeg's concat demuxer, packets copied):
    what the camera sends across its reconfiguration."""
    listing = tmp_path / "parts.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    out = tmp_path / "joined.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    "-f", "mpegts", str(out)], check=True, stdin=subprocess.DEVNULL, timeout=60)
    return out.read_bytes()


def _camera_serving(data: bytes, connections: int = 2):
    """A camera on 127.0.0.1 sending ``data`` whole to each of its first ``connections`` (OpenCV's probe, then
    the program), then refusing more: the stream ends for good once played."""
    return _camera_serving_each([data] * connections)


def _camera(port: int, live_decoder: str = "ffmpeg") -> CameraSection:
    # offline: every frame waits to be taken, so each one of the stream is seen; one reconnect, refused: the end
    return CameraSection(name="cam", source=f"tcp://127.0.0.1:{port}", mode="offline", open_timeout_s=10,
                         read_timeout_s=5, live_decoder=live_decoder,
                         reconnect=ReconnectSection(initial_s=0.05, max_s=0.1, max_attempts=1))


def test_a_live_stream_whose_frame_size_changes_gives_each_frame_at_its_size_and_says_so(tmp_path):
    small, large = _h264(tmp_path / "small.ts", "64x48"), _h264(tmp_path / "large.ts", "128x96")
    with _camera_serving(_joined(tmp_path, small, large)) as port:
        cam = _camera(port)
        frames, states, counters = _capture(cam)
    shapes = [f.image.shape for f in frames]
    assert shapes == [(48, 64, 3)] * 10 + [(96, 128, 3)] * 10, shapes  # none lost, none rescaled
    truth = decoded(small) + decoded(large)  # each part's frames as OpenCV decodes that part alone
    diffs = [int(np.abs(f.image.astype(np.int16) - t.astype(np.int16)).max()) for f, t in zip(frames, truth)]
    assert max(diffs) <= 2, diffs
    changed = [r for s, r in states if s == "changed"]
    assert changed == [f"url {cam.source}: frame size 64x48 → 128x96: parts appear at another scale than the "
                       "model was calibrated on"], states
    assert counters.get("cam.size_changes") == 1 and counters.get("cam.format_changes") == 0
    assert counters.get("cam.captured") == 20


def test_a_live_stream_switched_to_another_pixel_format_says_so(tmp_path):
    """4:2:0 then 4:4:4 chroma (another encoder profile): both come out of the program as the same 8-bit BGR
    arrays, so only the decoder's own format (its showinfo line) tells them apart."""
    first, second = _h264(tmp_path / "a.ts", "64x48"), _h264(tmp_path / "b.ts", "64x48", "yuv444p")
    with _camera_serving(_joined(tmp_path, first, second)) as port:
        cam = _camera(port)
        frames, states, counters = _capture(cam)
    assert len(frames) == 20 and {f.image.shape for f in frames} == {(48, 64, 3)}
    changed = [r for s, r in states if s == "changed"]
    assert changed == [f"url {cam.source}: frames changed from 64x48 colour uint8 (yuv420p) to 64x48 colour uint8 "
                       "(yuv444p): still inspected (made 8-bit RGB and resized like every frame), but the model "
                       "was calibrated on the former"], states
    assert counters.get("cam.format_changes") == 1 and counters.get("cam.size_changes") == 0


def test_a_wide_live_stream_whose_frame_size_changes_gives_each_frame_at_its_size_and_says_so(tmp_path):
    """10-bit HEVC (read by the program at full depth whatever ``live_decoder`` says): the same rule, each
    size's samples decoded by the recordings' rule at that size."""
    parts = [_hevc(tmp_path, size, "yuv420p10le") for size in ("64x48", "128x96")]
    with _camera_serving(_joined(tmp_path, *parts)) as port:
        cam = _camera(port, live_decoder="opencv")
        frames, states, counters = _capture(cam)
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * 10 + [(96, 128, 3)] * 10
    changed = [r for s, r in states if s == "changed"]
    assert changed == [f"url {cam.source}: frame size 64x48 → 128x96: parts appear at another scale than the "
                       "model was calibrated on"], states


def test_a_wide_live_stream_switched_from_grey_to_colour_says_so_naming_the_decoders_samples(tmp_path):
    """10-bit HEVC, monochrome (4:0:0) then (the camera switched to colour) 4:2:0, in one transport stream: the
    program turns both into the same grey 16-bit output the stream opened with, so only its decoder's format
    tells them apart, said as a file's key frames are (10-bit grey → 10-bit colour)."""
    parts = [_hevc(tmp_path, "64x48", fmt) for fmt in ("gray10le", "yuv420p10le")]
    with _camera_serving(_joined(tmp_path, *parts)) as port:
        frames, states, counters = _capture(_camera(port, live_decoder="opencv"))
    assert len(frames) == 20
    changed = [r for s, r in states if s == "changed"]
    assert len(changed) == 1 and "from 64x48 grey uint16 (10-bit) (gray10le) to 64x48 colour uint16 (10-bit) " \
        "(yuv420p10le)" in changed[0], states
    assert counters.get("cam.format_changes") == 1 and counters.get("cam.size_changes") == 0


def test_the_program_is_told_not_to_rescale(tmp_path):
    """The command itself: ``-autoscale 0`` (FFmpeg ≥ 4.4) and no ``-s`` (which, with autoscale on, is what
    scaled later frames to the first's size)."""
    cmd = ffmpeg_live.live_command(False, 0.5, eight_bit=True)
    assert cmd[cmd.index("-autoscale") + 1] == "0" and "-s" not in cmd
    assert "autoscale" in subprocess.run(["ffmpeg", "-hide_banner", "-h", "full"], capture_output=True,
                                         text=True).stdout


def test_an_opencv_read_inter_coded_url_says_once_that_a_size_change_is_rescaled(tmp_path, caplog):
    """``live_decoder: opencv`` (the default): OpenCV's FFmpeg backend scales every frame to the size it probed
    and its CAP_PROP_FRAME_WIDTH keeps it (measured, OpenCV 5.1: 128x96 frames given as 64x48), so no change can
    be seen on that path until the next reconnect: the startup warning says so, and how to have it seen."""
    caplog.set_level(logging.WARNING, logger="inspector.pipeline.sources")
    small, large = _h264(tmp_path / "small.ts", "64x48"), _h264(tmp_path / "large.ts", "128x96")
    with _camera_serving(_joined(tmp_path, small, large), connections=1) as port:
        cam = CameraSection(name="cv", source=f"tcp://127.0.0.1:{port}", mode="offline", open_timeout_s=10,
                            read_timeout_s=5, reconnect=ReconnectSection(initial_s=0.05, max_s=0.1, max_attempts=1))
        frames, states, _ = _capture(cam)
    assert {f.image.shape for f in frames} == {(48, 64, 3)}, "OpenCV no longer rescales: say nothing of it"
    lines = [r.getMessage() for r in caplog.records if "frame size" in r.getMessage()]
    assert len(lines) == 1 and "camera 'cv'" in lines[0] and "live_decoder: ffmpeg" in lines[0], lines


def test_a_stream_that_simply_ended_says_so_not_a_stray_log_line(tmp_path):
    """The reason said (logged, published) when the program's stream ends is what the program wrote after its
    last frame: nothing for a sender that finished, so its exit code. It was "[Parsed_showinfo_0 @ 0x…] [info]",
    a blank line of showinfo's (its level tag unread), or else the "-vsync is deprecated" line of the start."""
    from inspector.pipeline.source_base import SourceError
    from inspector.pipeline.sources import make_source

    with _camera_serving(_h264(tmp_path / "clip.ts", "64x48").read_bytes()) as port:
        source = make_source(_camera(port))
        source.open()
        try:
            with pytest.raises(SourceError) as ended:
                for _ in range(11):
                    source.read()
        finally:
            source.close()
    assert str(ended.value) == (f"camera 'cam': url tcp://127.0.0.1:{port}: the stream ended (the ffmpeg program "
                                "exited with code 0)")


def test_the_programs_lines_are_read_with_their_level_even_when_blank():
    assert ffmpeg_live.Concealment.parse("[Parsed_showinfo_0 @ 0x55bf349ee6c0] [info]") == ("info", "")
    assert ffmpeg_live.Concealment.parse("[error] tcp://x: Connection refused") == ("error",
                                                                                    "tcp://x: Connection refused")


@contextlib.contextmanager
def _camera_serving_each(sent: list[bytes]):
    """A camera on 127.0.0.1 sending its n-th connection ``sent[n]`` whole, then refusing more."""
    server = None
    for port in _ports():
        with contextlib.suppress(OSError):
            server = socket.create_server(("127.0.0.1", port))
            break
    if server is None:
        pytest.skip("no free test port")

    def serve() -> None:
        for data in sent:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(data)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize("encoding", [(), ("-bf", "2"), ("-flags", "+low_delay")], ids=["p", "b", "low_delay"])
def test_a_live_mpeg2_stream_switched_from_420_to_422_at_the_same_size_is_reopened_not_decoded_wrong(tmp_path,
                                                                                                    encoding):
    """MPEG-2 4:2:0, then (the camera reconfigured) 4:2:2 at the same size, read by the program. Its MPEG-2
    decoder keeps the first chroma format until the size changes: the 4:2:2 frames were handed on decoded as 4:2:0
    (18 to 23 levels off the source on average, up to 214; named yuv420p: nothing said). The stream's sequence
    extensions are traced: at the change the stream is reopened (state 'changed', ``source_changed``), the new
    decoder takes 4:2:2, the change of format is said, and every frame handed on is the source's picture within
    the codec's loss (mean ≤ 6 levels). Here the camera sends the 4:2:2 part alone after the reconnect. Whether
    the decoder outputs each picture on its own packet (``low_delay`` declared) or later (it reorders: P-frames
    alone, B-frames), which decides which frame is the new sequence's first (ChromaWatch)."""
    from tests.pipeline.test_format_changes import _mpeg2_parts, _nearest_mean

    video, truth = _mpeg2_parts(tmp_path, [("64x48", "yuv420p"), ("64x48", "yuv422p")], encoding)
    later = (tmp_path / "1.ts").read_bytes()  # the 4:2:2 part, as the camera sends it on after the reconnect
    with _camera_serving_each([video.read_bytes()] * 2 + [later] * 2) as port:  # OpenCV's probe, the program
        cam = _camera(port)
        frames, states, counters = _capture(cam)
    means = [round(_nearest_mean(f.image, truth), 1) for f in frames]
    assert len(frames) >= 9 and max(means) <= 6, means
    changed = [r for s, r in states if s == "changed"]
    assert "changed its chroma format" in changed[0] and "reopening" in changed[0], states
    assert "frames changed from 64x48 colour uint8 (yuv420p) to 64x48 colour uint8 (yuv422p)" in changed[1], states
    assert counters.get("cam.source_changed") == 1 and counters.get("cam.format_changes") == 1


@pytest.mark.parametrize("encoding", [(), ("-bf", "2")], ids=["p", "b"])
def test_a_live_mpeg2_stream_whose_chroma_changes_with_its_size_is_not_reopened(tmp_path, encoding):
    """64x48 4:2:0 → 128x96 4:2:2: with a new size the decoder takes the new chroma format (measured, FFmpeg 5.1):
    one connection, every frame the source's within the codec's loss, both changes said at once. The decoder,
    which reorders (no ``-flags low_delay``: B-frame streams come in display order, test_live_bframes.py), drops
    the picture it holds at the new sequence, as OpenCV's read of the same file does (test_format_changes.py's
    ``small``): 9 of the 10 frames."""
    from tests.pipeline.test_format_changes import _mpeg2_parts, _nearest_mean

    video, truth = _mpeg2_parts(tmp_path, [("64x48", "yuv420p"), ("128x96", "yuv422p")], encoding)
    with _camera_serving_each([video.read_bytes()] * 2) as port:
        frames, states, counters = _capture(_camera(port))
    means = [round(_nearest_mean(f.image, truth), 1) for f in frames]
    assert len(frames) == 9 and max(means) <= 6, means
    changed = [r for s, r in states if s == "changed"]
    assert len(changed) == 1 and "64x48 → 128x96" in changed[0] and "(yuv422p)" in changed[0], states
    assert counters.get("cam.source_changed") == 0
