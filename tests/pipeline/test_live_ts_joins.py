"""A live MPEG-TS stream made of segments played one after another (an NVR's recordings, a playlist, ``cat``), read by
the ffmpeg program (``live_decoder: ffmpeg``): each segment restarts the TS continuity count, which the program's
demuxer takes for lost packets. A file's joins were told from losses (the break falls on a packet starting a PES
flagged a random access point: :class:`inspector.pipeline.ts_feed.TsJoins`); a live stream's were not, since the
program read the URL itself and logs the break only at debug level: the key-frame interval after every join was
counted 'concealed' (29 of 100 frames of two 50-frame segments over tcp://). A tcp:// or udp:// stream's bytes are now
relayed by a program of their own and scanned on the way (:func:`inspector.pipeline.ffmpeg_live.relay_command`,
:class:`inspector.pipeline.ts_feed.StreamFeed`): every frame of every segment is inspected, and packets lost mid key
frame are still a loss. Real H.264 made by the real program, served on loopback. Skipped where the ffmpeg program
or its libx264 is missing."""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from inspector.pipeline import ffmpeg_live, ts_feed
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.sources import make_source
from source_support import decoded, in_background, read_until_it_ends
from tests.pipeline.test_live_concealment import TS_PACKET, serving

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")
FRAMES = 50


def _segment(path: Path, pattern: str, size: str = "64x48", bounded: bool = False) -> bytes:
    """50 moving frames (``pattern``, ``size``, 25 fps) of 8-bit H.264 with 2 B-frames, a key frame every 25, in
    MPEG-TS; ``bounded``: each video PES's header declares its size (as cameras' muxers write it; FFmpeg's omits it)."""
    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=s={size}:r=25", "-frames:v",
                    str(FRAMES), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "2", "-threads", "1",
                    "-x264-params", "keyint=25:min-keyint=25:scenecut=0", "-omit_video_pes_length", str(int(not bounded)),
                    "-f", "mpegts", str(path)],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)
    return path.read_bytes()


def _parts(tmp_path: Path) -> tuple[bytes, bytes, list[np.ndarray]]:
    """Two segments of other pictures (the bytes of each) and the frames of both, in order, as OpenCV decodes them."""
    a, b = _segment(tmp_path / "a.ts", "testsrc2"), _segment(tmp_path / "b.ts", "testsrc")
    return a, b, decoded(tmp_path / "a.ts") + decoded(tmp_path / "b.ts")


def _lose_packets_mid_key_frame(data: bytes, tmp_path: Path, key: int) -> bytes:
    """``data`` without 3 TS packets from the middle of its ``key``-th key frame (0-based): lost on the link."""
    (tmp_path / "lossy.ts").write_bytes(data)
    listing = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pos,flags",
                              "-of", "json", str(tmp_path / "lossy.ts")], capture_output=True, text=True,
                             check=True).stdout
    packets = [(int(p["pos"]), p["flags"].startswith("K")) for p in json.loads(listing)["packets"]]
    at = [i for i, (_, k) in enumerate(packets) if k][key]
    mid = packets[at][0] + ((packets[at + 1][0] - packets[at][0]) // TS_PACKET // 2) * TS_PACKET
    return data[:mid] + data[mid + 3 * TS_PACKET:]


def _camera(url: str, **more) -> CameraSection:
    return CameraSection(name="joined", source=url, live_decoder="ffmpeg", open_timeout_s=10, read_timeout_s=5,
                         reconnect=ReconnectSection(initial_s=0.5, max_s=1.0), **more)


def _lose_end_of_last_pes(data: bytes, count: int) -> bytes:
    """``data`` (one segment) without the last ``count`` TS packets of its video's last PES: lost on the link just
    before the next segment's first packet."""
    packets = [data[at:at + TS_PACKET] for at in range(0, len(data), TS_PACKET)]
    pid = [(p[1] & 0x1F) << 8 | p[2] for p in packets]
    video = next(pid[i] for i, p in enumerate(packets) if p[3] & 0x20 and p[4] and p[5] & 0x40)  # random access
    last = max(i for i, p in enumerate(packets) if pid[i] == video and p[1] & 0x40)
    lost = [i for i in range(last, len(packets)) if pid[i] == video][-count:]
    assert len(lost) == count and lost[0] > last, "the last PES is too short to lose its end"
    return b"".join(p for i, p in enumerate(packets) if i not in lost)


def test_a_tcp_stream_of_joined_segments_is_inspected_whole_at_each_join(tmp_path):
    """Three segments played one after another over tcp:// (a, b, a: two joins), read whole (offline): every frame of
    every segment handed on, in order, each its segment's own picture (within 2 levels: OpenCV's decoding of the
    segment), none counted concealed. The same stream with 3 TS packets lost mid key frame (the second segment's
    first): that loss is still counted."""
    a, b, truth = _parts(tmp_path)
    truth = truth + truth[:FRAMES]
    with serving(a + b + a) as port:
        grabbed = read_until_it_ends(_camera(f"tcp://127.0.0.1:{port}", mode="offline"))
    assert [g.reason for g in grabbed if g.image is None] == [] and len(grabbed) == 3 * FRAMES, \
        [g.reason for g in grabbed if g.image is None]
    off = [i for i, (g, t) in enumerate(zip(grabbed, truth))
           if int(np.abs(g.image.astype(np.int16) - t.astype(np.int16)).max()) > 2]
    assert not off, f"frames not their segment's own: {off}"
    with serving(_lose_packets_mid_key_frame(a + b + a, tmp_path, 2)) as port:
        grabbed = read_until_it_ends(_camera(f"tcp://127.0.0.1:{port}", mode="offline"))
    assert sum(g.reason == "concealed" for g in grabbed) >= 5, [g.reason for g in grabbed]


def test_packets_lost_just_before_a_segments_first_packet_are_still_a_loss(tmp_path):
    """A join's look: the count breaks on the next segment's first packet (a key frame's start). Packets lost at the
    end of the segment before it (its last PES cut short) were taken for a join (TsJoins excused the demuxer's
    "Packet corrupt" for that PES). Where the PES declares its size (PES_packet_length: cameras' muxers write it for
    video, FFmpeg when asked), a PES short of it is a loss. End to end the cut frame is counted concealed (the
    decoder's own complaint said so before too), and two segments joined whole over tcp:// are still read whole."""
    a, b = (_segment(tmp_path / f"{name}.ts", pattern, "320x240", bounded=True)
            for name, pattern in (("a", "testsrc2"), ("b", "testsrc")))
    cut = _lose_end_of_last_pes(a, 1) + b
    for data, joins in ((a + b, 1), (cut, 0)):
        told = ts_feed.TsJoins()
        told.scan(data)
        assert sum(told.dts.values()) == joins
    with serving(a + b) as port:
        grabbed = read_until_it_ends(_camera(f"tcp://127.0.0.1:{port}", mode="offline"))
    assert [g.reason for g in grabbed if g.image is None] == [] and len(grabbed) == 2 * FRAMES
    with serving(cut) as port:
        grabbed = read_until_it_ends(_camera(f"tcp://127.0.0.1:{port}", mode="offline"))
    assert "concealed" in [g.reason for g in grabbed], [g.reason for g in grabbed]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _sending_udp(data: bytes, port: int, fps: float = 25.0):
    """A camera sending ``data`` over and over to 127.0.0.1:``port`` in datagrams of 7 TS packets, at about ``fps``
    frames a second (its bytes spread evenly over the segment's frames), until the block ends."""
    datagram, per_s = 7 * TS_PACKET, len(data) / (2 * FRAMES / fps)

    def send(stop: threading.Event) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            started, sent = time.monotonic(), 0
            while not stop.is_set():
                for at in range(0, len(data), datagram):
                    if stop.is_set():
                        return
                    sender.sendto(data[at:at + datagram], ("127.0.0.1", port))
                    sent += datagram
                    stop.wait(max(0.0, started + sent / per_s - time.monotonic()))

    with in_background(send):
        yield


def test_a_udp_stream_of_joined_segments_is_inspected_whole_at_each_join(tmp_path):
    """Two segments played over and over as one udp:// stream (a join every 50 frames), read live for 160 frames (3
    joins at least): the frames before the first key frame after joining come 'before_key_frame', and from it on
    every one is inspected: none counted concealed at a join."""
    a, b, _ = _parts(tmp_path)
    port = _free_udp_port()
    with _sending_udp(a + b, port):
        source = make_source(_camera(f"udp://127.0.0.1:{port}", mode="offline"))
        source.open()
        try:
            grabbed = [source.read() for _ in range(160)]
        finally:
            source.close()
    reasons = [g.reason for g in grabbed if g.image is None]
    assert "concealed" not in reasons and set(reasons) <= {"before_key_frame"}, reasons
    assert sum(g.image is not None for g in grabbed) >= 160 - 25


def test_the_programs_line_for_a_joins_packet_is_excused_however_late_it_comes():
    """The demuxer's "Packet corrupt" for the packet before a join and the program's own "corrupt input packet" line
    for it come in that order, packet by packet, but other lines may come between: a probe at a (re)join reads the
    join ahead, and the join's complaints and 20 frames came between the two (the frames after counted concealed).
    The program's line for a lost packet's warning is still a loss, whichever came before."""
    from tests.pipeline.test_live_concealment import _frame_line

    def verdicts(lines: list[str]) -> list[str]:
        rule = ffmpeg_live.Concealment(joins=collections.Counter({302400: 1}))
        return [v for v in (rule.frame_verdict(*rule.parse(line), rule.context(line)) for line in lines)
                if v is not None]

    join = "[mpegts @ 0x55b] [warning] Packet corrupt (stream = 0, dts = 302400)."
    lost = "[mpegts @ 0x55b] [warning] Packet corrupt (stream = 0, dts = 205200)."
    program = "[warning] pipe:0: corrupt input packet in stream 0"
    complaints = ["[h264 @ 0x55c] [error] non-existing PPS 0 referenced", "[h264 @ 0x55c] [error] no frame!"]
    frames = [_frame_line(n, n in (0, 25)) for n in range(40)]
    assert verdicts([join] + complaints + frames[:21] + [program] + frames[21:]) == [""] * 40
    assert "concealed" in verdicts([join, lost] + frames[:21] + [program, program] + frames[21:])
    assert verdicts([lost, join] + frames[:21] + [program] + frames[21:])[21:25] == ["concealed"] * 4
