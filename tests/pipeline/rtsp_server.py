#!/usr/bin/env python3
"""A real RTSP camera on loopback for the tests: GStreamer's gst-rtsp-server (Debian gstreamer1.0-rtsp,
gir1.2-gst-rtsp-server-1.0, python3-gi), the server most embedded IP cameras' firmware is built on.

Run by Debian's own python3 (PyGObject with GStreamer's typelibs; the project's venv need not have them)::

    /usr/bin/python3 tests/pipeline/rtsp_server.py --port 8554 --path /cam --codec h264 --fps 25 \\
        [--user op --password secret]

It serves ``rtsp://127.0.0.1:PORT/PATH`` (RTP over TCP or UDP, as the client asks) and prints ``ready PORT``
once it listens. Every frame carries the camera's wall clock in its pixels when it was made (the stamp of
:mod:`inspector.testing.clock_stamp`: 32 black/white 8x8 squares, two rows of 16, bit i of the low 32 bits of
``time.time()`` in ms), so a test can tell how old an inspected frame is. Pure Python (no numpy): Debian's
python3 has none. Stop it with SIGTERM/SIGKILL; start it again on the same port for "the camera came back".
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

BLOCK = 8  # pixels per stamp square (inspector.testing.clock_stamp.BLOCK)
ENCODERS = {
    # zerolatency: no frame held back for B-frames or look-ahead (what an IP camera's encoder does)
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast quantizer=16 key-int-max={fps} "
            "! rtph264pay name=pay0 pt=96 config-interval=1",
    "mjpeg": "jpegenc quality=95 ! rtpjpegpay name=pay0 pt=26",
}


def stamped(width: int, height: int, ms: int, base: int = 90) -> bytes:
    """A GRAY8 frame (``height`` rows of ``width`` bytes) of grey ``base`` with ``ms`` stamped top-left."""
    frame = bytearray([base]) * (width * height)
    for bit in range(32):
        r, c = divmod(bit, 16)
        square = bytes([255 if (ms >> bit) & 1 else 0]) * BLOCK
        for y in range(r * BLOCK, (r + 1) * BLOCK):
            frame[y * width + c * BLOCK:y * width + (c + 1) * BLOCK] = square
    return bytes(frame)


def feed(appsrc, width: int, height: int, fps: float, stopped: threading.Event) -> None:
    """Push a freshly stamped frame every 1/fps s while the media plays; its PTS is the pipeline's running
    time at the push (appsrc's do-timestamp rule, but no frame before the pipeline has a clock)."""
    period, due = 1.0 / fps, time.monotonic()
    while not stopped.is_set():
        due += period
        time.sleep(max(0.0, due - time.monotonic()))
        clock = appsrc.get_clock()
        if clock is None:  # not playing yet: a camera sends nothing before PLAY
            due = time.monotonic()
            continue
        buf = Gst.Buffer.new_wrapped(stamped(width, height, int(time.time() * 1000) & 0xFFFFFFFF))
        buf.pts = clock.get_time() - appsrc.get_base_time()
        buf.duration = int(period * Gst.SECOND)
        if appsrc.emit("push-buffer", buf) not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
            return


def factory_for(args) -> GstRtspServer.RTSPMediaFactory:
    caps = f"video/x-raw,format=GRAY8,width={args.width},height={args.height},framerate={args.fps}/1"
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( appsrc name=src is-live=true format=time max-buffers=2 leaky-type=downstream "
                       f"caps={caps} ! videoconvert ! video/x-raw,format=I420 ! "
                       f"{ENCODERS[args.codec].format(fps=args.fps)} )")
    factory.set_shared(True)

    def configure(_factory, media) -> None:
        stopped = threading.Event()
        appsrc = media.get_element().get_by_name("src")
        media.connect("unprepared", lambda *_: stopped.set())
        threading.Thread(target=feed, args=(appsrc, args.width, args.height, args.fps, stopped),
                         daemon=True).start()

    factory.connect("media-configure", configure)
    return factory


def protect(server, factory, user: str, password: str) -> None:
    """Basic authentication: ``user``/``password`` may play the stream, anybody else gets 401."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    factory.add_role_from_structure(Gst.Structure.new_from_string(
        "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = factory_for(args)
    if args.user:
        protect(server, factory, args.user, args.password)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 2
    print(f"ready {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
