"""A relayed live stream (tcp://, udp://, http(s)://, srt://, rtp:// …: its bytes fed to the decoding program on
stdin, :func:`inspector.pipeline.ffmpeg_live.live_command`'s ``fed``) is decoded as its frames come, not from a backlog.

The program's probe of a fed MPEG-TS read ``open_timeout_s / 10`` (1 s) of stream before it let the first frame out:
FFmpeg's TS demuxer may add streams at any packet, so that probe never ends on having found the parameters, only at its
limit. Every relayed camera opened 1 s of stream later and read its first ~25 frames from that backlog, 1 s old
(docs/PERFORMANCE.md, benchmarks/bench_live_decoder.py). The camera here sends frame by frame, only as far as the test
says, so the check counts frames, never seconds: frame i must come out once frame i + :data:`LAG` - 1 was sent; the old
probe waited for 25 frames more than were ever sent and the camera did not open. Real H.264 made by the real program,
relayed by the real relays (the ffmpeg program, :mod:`inspector.pipeline.http_relay` for a URL with a password).
Skipped where the ffmpeg program or its libx264 is missing."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.pipeline import ffmpeg_live
from inspector.pipeline.config import CameraSection, ReconnectSection
from live_stream_support import LAG, SteppedCamera, numbered_clip

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")
READ = 10  # frames read in step with the camera


def _closest(image: np.ndarray, truth: list[np.ndarray]) -> int:
    """The index of the frame of ``truth`` that ``image`` is (the least mean difference)."""
    return int(np.argmin([np.abs(image.astype(np.int16) - frame).mean() for frame in truth]))


@pytest.mark.parametrize("scheme", ["tcp", "http", "http with a password"])
def test_a_relayed_streams_frames_come_out_as_they_are_sent_not_from_a_backlog(tmp_path, scheme):
    """Frames 0 … LAG - 1 sent, then nothing: the camera opens (the first frame out is frame 0, the key frame), and
    each next frame sent lets the next one out, in step: frame i read while frame i + LAG - 1 is the newest sent. Was:
    no frame until 1 s of stream (25 frames) had come, so the camera never opened here (no frame within open_timeout_s),
    and a live one opened 1 s late and read its first ~25 frames from a 1 s backlog."""
    clip, starts, truth = numbered_clip(tmp_path)
    user = "op:s3cret" if scheme == "http with a password" else ""
    camera = SteppedCamera(clip, starts, http=scheme != "tcp", user=user)
    url = (f"tcp://127.0.0.1:{camera.port}" if scheme == "tcp" else
           f"http://{user + '@' if user else ''}127.0.0.1:{camera.port}/live.ts")
    assert ffmpeg_live.relayed(url)
    section = CameraSection(name="stepped", source=url, live_decoder="ffmpeg", mode="offline", open_timeout_s=10,
                            read_timeout_s=10, reconnect=ReconnectSection(initial_s=0.5, max_s=1.0))
    source = ffmpeg_live.FullDepthStream(section, None, False, 8, 64, 48)
    seen = []
    try:
        camera.through(LAG)
        source.open()  # its first frame out: waited for up to open_timeout_s
        for i in range(READ):
            grabbed = source.read()
            assert grabbed.image is not None, grabbed.reason
            seen.append(_closest(grabbed.image, truth))
            camera.through(i + 1 + LAG)
    finally:
        source.close()
        camera.close()
    assert seen == list(range(READ)), seen


def test_a_fed_streams_probe_reads_no_backlog_whatever_the_open_timeout():
    """The decoding program's probe of a relayed stream (fed on stdin) ends on its first packets, whatever
    ``analyze_s`` (open_timeout_s / 10); FFmpeg's byte limit is left as it is (a sender's PMT may come seldom), and the
    probe drops nothing it read (no ``-fflags nobuffer``: a 10-bit HEVC stream lost its first key frame). A URL the
    program opens itself (its listing) keeps ``analyze_s``: that probe ends once its parameters are found."""
    for analyze_s in (0.5, 1.0, 360.0):
        cmd = ffmpeg_live.live_command(False, analyze_s, eight_bit=True, fed=True)
        inputs = cmd[:cmd.index("-i")]
        assert cmd[cmd.index("-i") + 1] == "pipe:0"
        assert "-analyzeduration" in inputs and 0 < int(inputs[inputs.index("-analyzeduration") + 1]) < 40_000, cmd
        assert "-probesize" not in inputs and "-fflags" not in cmd, cmd
        listed = ffmpeg_live.live_command(False, analyze_s, eight_bit=True, fed=False)
        assert listed[listed.index("-analyzeduration") + 1] == str(int(analyze_s * 1e6)), listed
