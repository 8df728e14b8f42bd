"""The join rule of a live MPEG-TS (segments played one after another restart the TS continuity count: a join, not
a loss; :class:`inspector.pipeline.ts_feed.TsJoins`) holds over every live transport that carries the TS as it was
sent, not only tcp:// and udp://: http:// and srt:// streams were read by the ffmpeg program itself, and rtp:// by its
RTP demuxer, whose TS demuxer flags the packet before each join "corrupt": the key-frame interval after every join
was counted 'concealed'. They are now relayed (:func:`inspector.pipeline.ffmpeg_live.relayed`), rtp:// unwrapped with
its sequence numbers as the loss signal (:class:`inspector.pipeline.ts_feed.RtpUnwrap`): a datagram lost just before
a join is still a loss. Real H.264 made by the real program, sent on loopback by real senders (Python's HTTP server,
the ffmpeg program as an SRT listener, RTP datagrams as an IPTV sender packs them: RFC 2250, 7 TS packets each).
Skipped where the ffmpeg program, its libx264 or (srt) its libsrt is missing."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.server
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from inspector.pipeline import ffmpeg_live, srt_relay
from inspector.pipeline.source_base import SourceError
from inspector.pipeline.sources import make_source
from net_faults import free_port
from source_support import in_background, read_until_it_ends
from tests.pipeline.test_live_ts_joins import FRAMES, TS_PACKET, _camera, _lose_packets_mid_key_frame, _parts

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")
FPS = 25.0


def _paced(segments: list[bytes]) -> float:
    """Bytes a second that send ``segments`` at about :data:`FPS` frames a second."""
    return sum(map(len, segments)) / (len(segments) * FRAMES / FPS)


def _read_live(url: str, count: int) -> list:
    source = make_source(_camera(url, mode="offline"))
    source.open()
    try:
        return [source.read() for _ in range(count)]
    finally:
        source.close()


def _judged_whole_at_joins(grabbed: list) -> None:
    """Only the frames before the first key frame after joining may come without an image: none concealed."""
    reasons = [g.reason for g in grabbed if g.image is None]
    assert "concealed" not in reasons and set(reasons) <= {"before_key_frame"}, reasons
    assert sum(g.image is not None for g in grabbed) >= len(grabbed) - 25


@contextlib.contextmanager
def _http_serving(data: bytes, user: str = ""):
    """An HTTP camera on 127.0.0.1 answering every GET with ``data`` whole as ``video/mp2t``, then closing;
    ``user`` ("name:password"): only a GET with that Basic authorization, others answered 401 with a challenge."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            if user and self.headers.get("Authorization") != "Basic " + base64.b64encode(user.encode()).decode():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Connection", "close")
            self.end_headers()
            with contextlib.suppress(OSError):  # a probe that hung up early
                self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_stream_of_joined_segments_is_inspected_whole_at_each_join(tmp_path):
    """Three segments played one after another over http:// (a, b, a: two joins), read whole: all 150 frames
    inspected (were 2 key-frame intervals counted concealed); the same stream with 3 TS packets lost mid key frame:
    that loss is still counted."""
    a, b, _ = _parts(tmp_path)
    with _http_serving(a + b + a) as port:
        grabbed = read_until_it_ends(_camera(f"http://127.0.0.1:{port}/live.ts", mode="offline"))
    assert [g.reason for g in grabbed if g.image is None] == [] and len(grabbed) == 3 * FRAMES, \
        [g.reason for g in grabbed if g.image is None]
    with _http_serving(_lose_packets_mid_key_frame(a + b + a, tmp_path, 2)) as port:
        grabbed = read_until_it_ends(_camera(f"http://127.0.0.1:{port}/live.ts", mode="offline"))
    assert sum(g.reason == "concealed" for g in grabbed) >= 5, [g.reason for g in grabbed if g.image is None]


def test_an_http_stream_behind_a_password_is_inspected_whole_at_each_join(tmp_path):
    """The same three joined segments from a camera asking for a password (http://user:password@…): all 150 frames
    inspected, the password on no command line. Was read by the decoding program itself (the ffmpeg relay takes its URL
    on its command line only): both joins counted losses, their key-frame intervals never inspected."""
    a, b, _ = _parts(tmp_path)
    with _http_serving(a + b + a, user="op:s3cr%t") as port:
        grabbed = read_until_it_ends(_camera(f"http://op:s3cr%25t@127.0.0.1:{port}/live.ts", mode="offline"))
    assert [g.reason for g in grabbed if g.image is None] == [] and len(grabbed) == 3 * FRAMES, \
        [g.reason for g in grabbed if g.image is None]


def test_an_http_stream_refusing_the_password_says_so_without_it():
    """A wrong password: the camera cannot be opened, the error says the camera's answer (401) and never the
    password."""
    with _http_serving(b"", user="op:right") as port:
        source = make_source(_camera(f"http://op:wrong1234@127.0.0.1:{port}/live.ts", mode="live"))
        with pytest.raises(SourceError) as caught:
            source.open()
    assert "wrong1234" not in str(caught.value) and "401" in str(caught.value), str(caught.value)


def _has_srt() -> bool:
    protocols = subprocess.run(["ffmpeg", "-hide_banner", "-protocols"], capture_output=True, text=True).stdout
    return " srt" in protocols.replace("\n", " ")


@contextlib.contextmanager
def _srt_listening(segments: list[bytes], port: int, passphrase: str = "", mode: str = "listener"):
    """An SRT camera: the ffmpeg program listening on 127.0.0.1:``port``, sending the bytes of ``segments`` over and
    over as they are (``-f data``: no remuxing, the segments' own continuity counts) at about :data:`FPS` frames a
    second to whoever connects, encrypted with ``passphrase`` when given; a new listener after each caller left (the
    probe, then the reader). ``mode="caller"``: the camera calls 127.0.0.1:``port`` instead, again and again until
    a listener answers."""
    data, per_s = b"".join(segments), _paced(segments)
    secret = f"&passphrase={passphrase}" if passphrase else ""

    def one_caller(stop: threading.Event) -> None:
        proc = subprocess.Popen(["ffmpeg", "-v", "error", "-f", "data", "-i", "pipe:0", "-map", "0", "-c", "copy",
                                 "-f", "data", f"srt://127.0.0.1:{port}?mode={mode}&pkt_size=1316{secret}"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started, sent = time.monotonic(), 0
        try:
            while not stop.is_set() and proc.poll() is None:
                for at in range(0, len(data), 7 * TS_PACKET):
                    proc.stdin.write(data[at:at + 7 * TS_PACKET])
                    proc.stdin.flush()
                    sent += 7 * TS_PACKET
                    if stop.wait(max(0.0, started + sent / per_s - time.monotonic())):
                        break
        except OSError:  # the caller left: the listener ended
            pass
        finally:
            proc.kill()
            proc.wait()

    def serve(stop: threading.Event) -> None:
        while not stop.is_set():
            one_caller(stop)
            stop.wait(0.1 if mode == "caller" else 0)  # no listener yet: call again shortly

    with in_background(serve, join_s=10):
        yield


def _srt_frames(url: str, n: int) -> list:
    """``n`` reads of an 8-bit H.264 64x48 srt:// stream through the program's own source
    (:class:`ffmpeg_live.FullDepthStream`, as :class:`ffmpeg_live.FullDepthUrl` makes it once OpenCV's probe found one)."""
    source = ffmpeg_live.FullDepthStream(_camera(url, mode="offline"), None, False, 8, 64, 48,
                                         int.from_bytes(b"H264", "little"))
    source.open()
    try:
        return [source.read() for _ in range(n)]
    finally:
        source.close()


@pytest.mark.skipif(not _has_srt(), reason="this ffmpeg has no libsrt")
def test_an_srt_stream_behind_a_passphrase_is_inspected_whole_at_each_join(tmp_path):
    """The same two segments over srt:// encrypted (``passphrase``), read for 160 frames: none counted concealed at a
    join, relayed by srt_relay (libsrt, the URL on its stdin). Was read by the decoding program itself (the ffmpeg
    relay takes its URL on its command line only): the key-frame interval after every join counted concealed."""
    a, b, _ = _parts(tmp_path)
    port, phrase = free_port(), "0123456789secret"
    url = f"srt://127.0.0.1:{port}?mode=caller&passphrase={phrase}&latency=120000"
    assert ffmpeg_live.relayed(url)
    with _srt_listening([a, b], port, phrase):
        grabbed = _srt_frames(url, 160)
    _judged_whole_at_joins(grabbed)


@pytest.mark.skipif(not _has_srt() or srt_relay._library_name() is None, reason="this ffmpeg or Python has no libsrt")
def test_an_srt_listener_behind_a_passphrase_is_relayed_and_inspected_whole_at_each_join(tmp_path):
    """The daemon listening (``srt://:PORT?mode=listener&passphrase=…``: any address) for a camera that calls it, the
    same two segments encrypted, read for 160 frames: none counted concealed at a join, relayed by srt_relay. A
    listener was never relayed (srt_relay spoke caller only): read by the decoding program itself, the key-frame
    interval after every join counted concealed, as a caller's was before srt_relay."""
    a, b, _ = _parts(tmp_path)
    port, phrase = free_port(), "0123456789secret"
    url = f"srt://:{port}?mode=listener&passphrase={phrase}&latency=120000"
    assert ffmpeg_live.relayed(url)
    with _srt_listening([a, b], port, phrase, mode="caller"):
        grabbed = _srt_frames(url, 160)
    _judged_whole_at_joins(grabbed)


def test_an_srt_listener_no_sender_calls_ends_its_relay_within_its_timeout():
    """A listener no camera calls: the relay says so in one line within its timeout (a transient failure, retried
    with back-off by the capture worker), not a wait for ever (libsrt's own accept waits for ever)."""
    if srt_relay._library_name() is None:
        pytest.skip("no libsrt")
    port = free_port()
    started = time.monotonic()
    done = subprocess.run(srt_relay.command(1.0), input=f"srt://:{port}?mode=listener&passphrase=0123456789ab\n",
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 1 and time.monotonic() - started < 10
    assert "no sender called within 1 s" in done.stderr and "0123456789ab" not in done.stderr, done.stderr


@pytest.mark.skipif(not _has_srt(), reason="this ffmpeg has no libsrt")
def test_an_srt_camera_refusing_the_passphrase_says_so_without_it(tmp_path):
    """A wrong passphrase: the camera cannot be opened; the error says what libsrt met, never the passphrase."""
    a, b, _ = _parts(tmp_path)
    port = free_port()
    with _srt_listening([a, b], port, "0123456789right"):
        source = ffmpeg_live.FullDepthStream(
            _camera(f"srt://127.0.0.1:{port}?mode=caller&passphrase=0123456789wrong", mode="live"), None, False, 8,
            64, 48)
        with pytest.raises(SourceError) as caught:
            source.open()
    message = str(caught.value)
    assert "0123456789wrong" not in message and "\n" not in message and "passphrase=***" in message, message


@pytest.mark.skipif(not _has_srt(), reason="this ffmpeg has no libsrt")
def test_an_srt_stream_of_joined_segments_is_inspected_whole_at_each_join(tmp_path):
    """Two segments played over and over as one srt:// stream (a join every 50 frames), read for 160 frames: none
    counted concealed at a join (were the key-frame interval after each). Read by the program's source itself
    (:class:`ffmpeg_live.FullDepthStream`, as :class:`ffmpeg_live.FullDepthUrl` makes it once OpenCV's probe found an
    8-bit H.264 stream of 64x48): the FFmpeg inside the OpenCV wheels has no libsrt, so its probe cannot open an
    srt:// URL at all."""
    a, b, _ = _parts(tmp_path)
    port = free_port()
    with _srt_listening([a, b], port):
        grabbed = _srt_frames(f"srt://127.0.0.1:{port}?mode=caller", 160)
    _judged_whole_at_joins(grabbed)


def _rtp_port() -> int:
    """An even port P of ``INSPECTOR_TEST_PORTS`` (else one the system picks) with P and P + 1 (RTCP) free for UDP."""
    span = os.environ.get("INSPECTOR_TEST_PORTS", "")
    low, high = (int(p) for p in span.split("-")) if span else (40000, 60000)
    for port in range(low + low % 2, high, 2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp:
            try:
                rtp.bind(("127.0.0.1", port))
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise OSError(f"no free pair of UDP ports in {low}-{high}")


@contextlib.contextmanager
def _sending_rtp(segments: list[bytes], port: int, drop_last_of: int | None = None):
    """An RTP camera sending ``segments`` over and over to 127.0.0.1:``port``, each in datagrams of up to 7 TS
    packets behind a 12-byte RTP header (payload type 33, one sequence number a datagram: RFC 2250), at about
    :data:`FPS` frames a second. ``drop_last_of``: the last datagram of that segment is lost on the link each
    time (its sequence number skipped)."""
    per_s = _paced(segments)

    def send(stop: threading.Event) -> None:
        seq, sent, started = 0, 0, time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while not stop.is_set():
                for index, data in enumerate(segments):
                    for at in range(0, len(data), 7 * TS_PACKET):
                        if stop.is_set():
                            return
                        payload = data[at:at + 7 * TS_PACKET]
                        if not (index == drop_last_of and at + len(payload) == len(data)):
                            stamp = int(sent / per_s * 90000) & 0xFFFFFFFF
                            sender.sendto(struct.pack("!BBHII", 0x80, 33, seq, stamp, 0x5EED) + payload,
                                          ("127.0.0.1", port))
                        seq, sent = (seq + 1) & 0xFFFF, sent + len(payload)
                        stop.wait(max(0.0, started + sent / per_s - time.monotonic()))

    with in_background(send):
        yield


def test_an_rtp_stream_of_joined_segments_is_inspected_whole_at_each_join(tmp_path):
    """Two segments played over and over as one rtp:// stream (one RTP session, its sequence numbers unbroken; the TS
    continuity count restarting every 50 frames), read for 160 frames: none counted concealed at a join (were the
    key-frame interval after each)."""
    a, b, _ = _parts(tmp_path)
    port = _rtp_port()
    with _sending_rtp([a, b], port):
        grabbed = _read_live(f"rtp://127.0.0.1:{port}", 160)
    _judged_whole_at_joins(grabbed)


def test_an_rtp_datagram_lost_just_before_a_join_is_still_a_loss(tmp_path):
    """The last datagram of each first segment lost on the link: in the TS the next packet is the second segment's
    first, a join's look; its skipped sequence number makes it a loss: frames counted concealed there."""
    a, b, _ = _parts(tmp_path)
    port = _rtp_port()
    with _sending_rtp([a, b], port, drop_last_of=0):
        grabbed = _read_live(f"rtp://127.0.0.1:{port}", 160)
    assert sum(g.reason == "concealed" for g in grabbed) >= 1, [g.reason for g in grabbed if g.image is None]


def test_a_url_holding_a_secret_is_never_relayed():
    """The relay takes its URL on its command line, which every local user reads (/proc/PID/cmdline): a URL with a
    user part or a secret parameter (an SRT passphrase among them, now masked in logs too) is read by the decoding
    program, its URL in a pipe, as before; rtsp:// (an RTP session) and rtmp:// (FLV) are never relayed."""
    assert ffmpeg_live.relayed("http://127.0.0.1:8080/live.ts") and ffmpeg_live.relayed("rtp://127.0.0.1:5004")
    assert ffmpeg_live.relayed("srt://127.0.0.1:9000?mode=caller&latency=200")
    # an srt one holding a passphrase or a stream id is relayed too, by srt_relay (its URL on stdin), where libsrt loads
    assert ffmpeg_live.relayed("srt://127.0.0.1:9000?mode=caller&passphrase=0123456789abc") == \
        (srt_relay._library_name() is not None)
    # an http(s) URL holding a secret is relayed too, by http_relay (its URL on stdin)
    assert ffmpeg_live.relayed("http://user:pw@127.0.0.1/live.ts")
    assert ffmpeg_live.relayed("https://127.0.0.1/live.ts?token=abc")
    assert ffmpeg_live.relayed("srt://:9000?mode=listener&passphrase=0123456789abc") == \
        (srt_relay._library_name() is not None)  # a listener too
    for url in ("srt://127.0.0.1:9000?mode=rendezvous&passphrase=0123456789abc", "http://127.0.0.1/a\nb.ts",
                "rtsp://127.0.0.1/cam", "rtmp://127.0.0.1/live/cam"):
        assert not ffmpeg_live.relayed(url), url


def test_rtp_headers_of_every_length_are_taken_off_and_a_skipped_sequence_number_is_a_loss():
    """RFC 3550 §5.1 / §5.3.1 headers: plain, with a contributing source and a header extension; the relay's bytes cut
    anywhere (a pipe read ends where it ends): the TS packets come out whole and in order, and the run after the
    skipped number 4 is marked lost; bytes of another payload type are skipped, a loss too."""
    from inspector.pipeline.ts_feed import RtpUnwrap, TsJoins

    def ts(n: int) -> bytes:
        return bytes([0x47, 0x01, 0x00, 0x10 | n % 16]) + bytes([n]) * (TS_PACKET - 4)

    plain = struct.pack("!BBHII", 0x80, 33, 1, 0, 7) + ts(1) + ts(2)
    extended = struct.pack("!BBHII", 0x91, 33, 2, 0, 7) + struct.pack("!I", 9) + struct.pack("!HH", 0xBEDE, 1) \
        + b"\0" * 4 + ts(3)
    after_gap = struct.pack("!BBHII", 0x80, 33, 4, 0, 7) + ts(4)
    other = struct.pack("!BBHII", 0x80, 96, 5, 0, 7) + b"\x01" * 40
    resumed = struct.pack("!BBHII", 0x80, 33, 6, 0, 7) + ts(5)
    data = plain + extended + after_gap + other + resumed
    for cut in (1, 7, 13, 188, 200, len(data)):
        unwrap, runs = RtpUnwrap(TsJoins()), []
        for at in range(0, len(data), cut):
            runs += unwrap.take(data[at:at + cut])
        merged: list[tuple[bool, bytes]] = []
        for lost, packets in runs:
            if merged and not lost:
                merged[-1] = (merged[-1][0], merged[-1][1] + bytes(packets))
            else:
                merged.append((lost, bytes(packets)))
        assert [lost for lost, _ in merged] == [False, True, True], cut
        assert b"".join(p for _, p in merged) == ts(1) + ts(2) + ts(3) + ts(4) + ts(5), cut


@pytest.mark.skipif(not _has_srt(), reason="this ffmpeg has no libsrt")
def test_an_srt_camera_is_read_by_the_daemons_own_source(tmp_path):
    """An srt:// camera as the daemon makes it (make_source): read by the ffmpeg program, its stream probed by ffprobe
    (ffmpeg_live.probe_stream). Was never opened: OpenCV's FFmpeg has no srt protocol, its probe failed at once and
    the camera was retried for ever under 'cannot open … within open_timeout_s 10 s'."""
    a, b, _ = _parts(tmp_path)
    port = free_port()
    with _srt_listening([a, b], port):
        # the default live_decoder (opencv): the program is the only reader of srt:// here
        camera = dataclasses.replace(_camera(f"srt://127.0.0.1:{port}?mode=caller", mode="offline"),
                                     live_decoder="opencv")
        source = make_source(camera)
        source.open()
        try:
            grabbed = [source.read() for _ in range(80)]
        finally:
            source.close()
    _judged_whole_at_joins(grabbed)
    assert {g.image.shape for g in grabbed if g.image is not None} == {(48, 64, 3)}


def test_an_srt_camera_without_a_program_that_reads_it_is_one_permanent_line(tmp_path, monkeypatch):
    """No ffmpeg program on PATH: an srt:// camera cannot be read at all, said once as a permanent error naming the
    camera, its URL (password masked) and what to install; was retried for ever as a timeout."""
    monkeypatch.setenv("PATH", str(tmp_path))
    source = make_source(_camera("srt://127.0.0.1:9?mode=caller&passphrase=0123456789abc", mode="live"))
    with pytest.raises(SourceError) as caught:
        source.open()
    message = str(caught.value)
    assert caught.value.permanent and "0123456789abc" not in message and "\n" not in message, message
    assert message.startswith("camera 'joined': ") and "passphrase=" in message, message
    assert "srt://" in message and "ffmpeg" in message and "no srt protocol" in message, message


@pytest.mark.skipif(not _has_srt(), reason="this ffmpeg has no libsrt")
def test_an_srt_camera_not_answering_is_retried_with_the_reason():
    """Nobody listening: a transient error (the capture worker retries with back-off) saying what ffprobe met."""
    source = make_source(_camera(f"srt://127.0.0.1:{free_port()}?mode=caller", mode="live"))
    with pytest.raises(SourceError) as caught:
        source.open()
    assert not caught.value.permanent and "failed" in str(caught.value), str(caught.value)
