"""An rtsp:// camera read by the ffmpeg program (``live_decoder: ffmpeg``): a join is no loss, an RTP packet
lost after it is. RTSP carries H.264 in RTP, not in an MPEG-TS: its join is the decoder's (the frames before the
first key frame), and a loss a skipped RTP sequence number. Over TCP (the program's transport) FFmpeg's RTP
demuxer took every packet as it came and said nothing of a gap; the decoder concealed the lost frame silently and
the frames up to the next key frame, predicted from the wrong picture, were inspected as whole (0 of ~100 told).

A real RTSP camera (gst-rtsp-server, tests/pipeline/rtsp_server.py); the lost packet is dropped by a relay in
front of it (rtsp_support.RtpDropper): a real server cannot be made to lose one on demand.
"""

from __future__ import annotations

import collections
import time

import pytest

from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source

pytestmark = pytest.mark.rtsp


def _reasons(url: str, seconds: float) -> str:
    """One letter per frame read from ``url`` for ``seconds`` (o: inspected, c: concealed, b: before the first
    key frame), every frame kept (``mode: offline``)."""
    cam = CameraSection(name="ipcam", source=url, mode="offline", open_timeout_s=5, read_timeout_s=5,
                        live_decoder="ffmpeg")
    source = make_source(cam)
    source.open()
    seq, t_end = [], time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            grabbed = source.read()
            seq.append("o" if grabbed.image is not None else grabbed.reason[0])
    finally:
        source.close()
    return "".join(seq)


def test_an_rtsp_join_between_key_frames_is_no_loss_and_a_lost_rtp_packet_after_it_is():
    from rtsp_support import RtpDropper, RtspCamera

    with RtspCamera(codec="h264", fps=25) as server:
        holder = make_source(CameraSection(name="hold", source=server.url(), live_decoder="ffmpeg"))
        holder.open()  # keeps the camera's one stream running: the next clients join it between key frames
        relay = RtpDropper(server.port, drop=40)
        try:
            time.sleep(0.37)
            lossy = _reasons(relay.url(), 3.0)  # joined mid-interval, the 40th packet after the join lost
            relay.drop = 0
            time.sleep(0.29)
            joined = _reasons(relay.url(), 2.0)  # joined mid-interval again, nothing lost
        finally:
            relay.close()
            holder.close()
    assert len(relay.dropped) == 1
    counts = collections.Counter(lossy)
    # the frames from the loss up to a key frame decoded after it: told (were inspected: 0 'c')
    assert 10 <= counts["c"] <= 60 and lossy.startswith("o" * 10) and lossy.endswith("o" * 10), lossy
    assert set(joined) == {"o"} and len(joined) >= 40, joined  # a join: no frame concealed
