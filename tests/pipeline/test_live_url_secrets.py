"""A camera URL's secrets never stand on a child program's command line, which every local user reads (``ps``,
/proc/PID/cmdline), whatever the secret is called: the relays, the decoding program and ffprobe all get the URL through
a pipe unless it holds nothing but a transport's harmless options
(:data:`inspector.pipeline.ffmpeg_live.COMMAND_LINE_OPTIONS`).

Was: a URL went onto the ffmpeg relay's command line unless :func:`inspector.redact.redact` knew its secret by name, so
an http camera's ``?auth=…`` (a signed URL's ``sig=``, a token in any other name) and an srt camera's ``streamid``
(an access-control id carrying a user and a token) were on every local user's screen. Real programs, real cameras on
loopback, their command lines read from /proc. Skipped where the ffmpeg program, its libx264 or (srt) its libsrt is
missing."""

from __future__ import annotations

import pytest

from inspector.pipeline import ffmpeg_live, srt_relay
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.sources import make_source
from live_stream_support import LAG, ChildCommands, SteppedCamera, has_srt, numbered_clip, srt_listening
from net_faults import free_port

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")
SECRET = "S3cr3tT0ken42"


def _camera(url: str, **more) -> CameraSection:
    return CameraSection(name="secret", source=url, mode="offline", open_timeout_s=10, read_timeout_s=10,
                         reconnect=ReconnectSection(initial_s=0.5, max_s=1.0), **more)


@pytest.mark.parametrize("scheme", sorted(ffmpeg_live.RELAYED_SCHEMES))
def test_a_url_holding_anything_but_transport_options_is_on_no_relays_command_line(scheme):
    """Every relayed transport: a URL with a user part, a secret by any name, a bare parameter or a fragment is either
    read by the decoding program through a pipe (not relayed) or relayed by a relay told it on stdin (http_relay for
    http(s), srt_relay for srt); only one holding nothing but the transport's own options is relayed by the ffmpeg
    program with the URL on its command line."""
    host = f"{scheme}://127.0.0.1:9000"
    plain = f"{host}?timeout=5000000&pkt_size=1316"
    assert ffmpeg_live.relayed(plain)
    assert (plain in ffmpeg_live.relay_argv(plain, 10)) == (scheme not in ffmpeg_live.OWN_RELAY_SCHEMES)
    for url in (f"{scheme}://op:{SECRET}@127.0.0.1:9000", f"{host}?passphrase={SECRET}", f"{host}?streamid={SECRET}",
                f"{host}?auth={SECRET}", f"{host}?secret={SECRET}", f"{host}?{SECRET}", f"{host}?mode=caller#{SECRET}",
                f"{host}?Timeout=1&sig={SECRET}", f"{host}/{SECRET}/live.ts"):
        if ffmpeg_live.relayed(url) and (scheme != "unix" or "/" + SECRET not in url):
            assert not [arg for arg in ffmpeg_live.relay_argv(url, 10) if SECRET in arg], url
    srt = "srt://127.0.0.1:9000?mode=caller"
    for url in (f"{srt}&passphrase={SECRET}", f"{srt}&streamid={SECRET}&latency=120000",
                f"srt://:9000?mode=listener&passphrase={SECRET}"):
        assert ffmpeg_live.relayed(url) == (srt_relay._library_name() is not None), url
        if ffmpeg_live.relayed(url):
            assert not [arg for arg in ffmpeg_live.relay_argv(url, 10) if SECRET in arg], url
    # an option srt_relay does not set, or another mode: read by the decoding program (its joins counted as losses)
    for url in (f"{srt}&passphrase={SECRET}&packetfilter=fec",
                f"srt://127.0.0.1:9000?mode=rendezvous&passphrase={SECRET}"):
        assert not ffmpeg_live.relayed(url), url


def test_an_http_camera_with_a_secret_by_a_name_redact_does_not_know_is_on_no_command_line(tmp_path):
    """``http://…/live.ts?auth=<token>`` read through the relay: the camera opens and its frames come whole, and no
    child (http_relay, the decoding program) holds the token on its command line. Was: the ffmpeg relay's."""
    clip, starts, _ = numbered_clip(tmp_path)
    camera = SteppedCamera(clip, starts, http=True)
    source = ffmpeg_live.FullDepthStream(_camera(f"http://127.0.0.1:{camera.port}/live.ts?auth={SECRET}",
                                                 live_decoder="ffmpeg"), None, False, 8, 64, 48)
    try:
        with ChildCommands() as children:
            camera.through(LAG + 4)
            source.open()
            grabbed = [source.read() for _ in range(4)]
    finally:
        source.close()
        camera.close()
    assert all(g.image is not None for g in grabbed), [g.reason for g in grabbed]
    assert any("http_relay" in line for line in children.seen) and any(
        line.startswith("ffmpeg") for line in children.seen), children.seen
    assert not [line for line in children.seen if SECRET in line], children.seen


@pytest.mark.skipif(not has_srt(), reason="this ffmpeg has no libsrt")
@pytest.mark.parametrize("secret", ["streamid", "passphrase"])
def test_an_srt_camera_s_stream_id_or_passphrase_is_on_no_command_line(tmp_path, secret):
    """An srt:// camera as the daemon makes it (make_source: ffprobe finds its stream, the ffmpeg program reads it),
    its ``streamid`` or ``passphrase`` a secret: frames come whole, and neither ffprobe's nor any ffmpeg's command
    line holds it, nor srt_relay's (libsrt; it relays the stream where libsrt loads). Was: a ``streamid`` stood on the
    ffmpeg relay's (redact knew no such name)."""
    clip, _, _ = numbered_clip(tmp_path)
    (tmp_path / "clip.ts").write_bytes(clip)
    port = free_port()
    with srt_listening(tmp_path / "clip.ts", port, SECRET if secret == "passphrase" else "") as senders:
        source = make_source(_camera(f"srt://127.0.0.1:{port}?mode=caller&{secret}={SECRET}"))
        try:
            with ChildCommands(senders) as children:
                source.open()
                grabbed = [source.read() for _ in range(10)]
        finally:
            source.close()
    assert sum(g.image is not None for g in grabbed) >= 5, [g.reason for g in grabbed]
    assert any(line.startswith("ffprobe") for line in children.seen), children.seen
    assert any(line.startswith("ffmpeg") for line in children.seen), children.seen
    if srt_relay._library_name() is not None:  # relayed by srt_relay, the URL on its stdin
        assert any("srt_relay" in line for line in children.seen), children.seen
    assert not [line for line in children.seen if SECRET in line], children.seen
