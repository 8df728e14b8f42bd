"""GenICam source against Aravis's simulated GigE Vision camera (arv-fake-gv-camera-0.8) on loopback.

Marked ``genicam``; skipped only where Aravis (gir1.2-aravis-0.8, aravis-tools) or PyGObject is absent.
The fake camera listens on 127.0.0.1's GVCP port, so a file lock serialises its use across test runs.
"""

from __future__ import annotations

import dataclasses

import fcntl
import re
import shutil
import subprocess
import time
import uuid

import cv2
import numpy as np
import pytest

from inspector.errors import ConfigError, SourceError
from inspector.integrations import require
from inspector.integrations.pixel_formats import align_bits, decode_pixels, declared_bits

FAKE = shutil.which("arv-fake-gv-camera-0.8")


def _aravis():
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis

        return Aravis
    except (ImportError, ValueError):
        return None


Aravis = _aravis()
requires_aravis = pytest.mark.skipif(FAKE is None or Aravis is None,
                                     reason="needs aravis-tools + gir1.2-aravis-0.8 and PyGObject ('genicam' extra)")


# -- decoding (no camera needed) -----------------------------------------------------------------
def test_decode_honours_format_and_bit_depth():
    mono12 = np.array([[0, 4095], [2048, 5000]], dtype="<u2")  # 5000: out of range for 12 bits → clipped
    raw = decode_pixels(mono12.tobytes(), "Mono12", 2, 2)
    assert raw.dtype == np.uint16 and raw.tolist() == mono12.tolist()  # values as sent
    assert declared_bits("Mono12") == 12 and declared_bits("Mono16") is None
    # Mono12's declared depth wins: made what the preprocessor assumes (16-bit container or bit_depth), widened
    # by bit replication (4095 → 65535, 2048 → 32776), out-of-range values clipped
    assert align_bits(raw, 12, None).tolist() == [[0, 65535], [32776, 65535]]
    assert align_bits(raw, 12, 12).tolist() == mono12.tolist()
    assert align_bits(raw, 12, 10).tolist() == [[0, 1021], [512, 1021]]  # the smallest 10-bit values of 255, 128
    # and then the one decoding path maps it to 8 bits: full scale stays full scale
    from inspector.data.images import to_uint8

    assert to_uint8(align_bits(raw, 12, None), "test").tolist() == [[0, 255], [128, 255]]
    assert to_uint8(raw, "test", bit_depth=12).tolist() == [[0, 255], [128, 255]]
    ten_in_16 = np.array([[1023, 512]], dtype="<u2")
    assert decode_pixels(ten_in_16.tobytes(), "Mono16", 2, 1).tolist() == [[1023, 512]]
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB order
    assert decode_pixels(rgb.tobytes(), "RGB8", 4, 4)[1, 1].tolist() == [0, 0, 200]  # BGR
    mosaic = np.zeros((8, 8), np.uint8)
    mosaic[0::2, 0::2] = 200  # RGGB: red at (0, 0) → a red image
    assert decode_pixels(mosaic.tobytes(), "BayerRG8", 8, 8)[4, 4].tolist() == [0, 0, 200]
    mono8 = bytes(range(16))
    assert decode_pixels(mono8, "Mono8", 4, 4).base is not None  # a view on the buffer, no copy
    with pytest.raises(SourceError, match="needs 32 bytes, buffer has 16"):
        decode_pixels(mono8, "Mono16", 4, 4)
    with pytest.raises(SourceError, match="not supported"):
        decode_pixels(mono8, "YUV422_8", 4, 4)


@pytest.mark.parametrize("fmt, sites", [("BayerRG8", "RGGB"), ("BayerBG8", "BGGR"), ("BayerGB8", "GBRG"),
                                        ("BayerGR8", "GRBG")])
def test_every_bayer_layout_is_demosaiced_by_its_top_left_block(fmt, sites):
    """PFNC names the mosaic by its 2×2 block at (0, 0): a mosaic lit only at the red sites of that layout is a red
    image, only at the blue sites a blue one, only at the green ones a green one (BGR out). Cameras sending
    BayerBG8 / BayerGB8 / BayerGR8 (as Aravis's fake camera can) used to give no frame at all ("not supported")."""
    where = {"R": [], "G": [], "B": []}
    for k, colour in enumerate(sites):
        where[colour].append((k // 2, k % 2))
    for colour, bgr in (("R", [0, 0, 200]), ("G", [0, 200, 0]), ("B", [200, 0, 0])):
        mosaic = np.zeros((16, 16), np.uint8)
        for y, x in where[colour]:
            mosaic[y::2, x::2] = 200
        got = decode_pixels(mosaic.tobytes(), fmt, 16, 16)
        assert got[4:12, 4:12].reshape(-1, 3).tolist() == [bgr] * 64, f"{fmt}: {colour} sites give {got[8, 8]}"


@pytest.mark.parametrize("bit_depth", [None, 10, 12, 14, 16])
def test_a_mono12_frame_gives_what_its_12_bit_png_gives_predict(tmp_path, bit_depth):
    """Every 12-bit value a Mono12 camera sends gives the model what the same frame saved as a 16-bit PNG with an
    sBIT chunk of 12 gives ``predict`` (the declared depth wins over the setting), whatever the camera's
    ``bit_depth``. Shifted into place, 120 of the 4096 values were 1 level off with no setting and low bits were
    lost with a narrower one (measured). The fake camera has no Mono12, so the buffer is made here and goes
    through the source's own decoding: a driver standing in for Aravis (:class:`CameraDriver`)."""
    import struct
    import zlib

    from inspector.contract import InputSpec
    from inspector.data.images import read_image, resize_image
    from inspector.integrations.genicam import GenicamSource, Popped
    from inspector.pipeline.preprocess import Preprocessor

    samples = np.arange(4096, dtype="<u2").reshape(64, 64)

    class Mono12Driver:
        def open(self, device_id, settings):
            return "Mono12 64x64"

        def pop(self, timeout_s, newest=False):
            return Popped(samples.tobytes(), "Mono12", 64, 64, True)

        def trigger(self):
            pass

        def stats(self):
            return {}

        def close(self):
            pass

    ok, png = cv2.imencode(".png", (samples << 4) | (samples >> 8))  # MSB-aligned as libpng writes sBIT data
    png = png.tobytes()
    end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    (tmp_path / "frame.png").write_bytes(png[:end] + struct.pack(">I", 1) + b"sBIT\x0c"
                                         + struct.pack(">I", zlib.crc32(b"sBIT\x0c")) + png[end:])
    spec = InputSpec(height=64, width=64)
    want = resize_image(read_image(tmp_path / "frame.png", bit_depth), 64, 64)
    assert np.array_equal(want[..., 0], ((samples.astype(int) * 255 + 2047) // 4095))
    source = GenicamSource(camera_section("genicam://stub"), Mono12Driver(), bit_depth)
    source.open()
    slot = np.empty((64, 64, 3), np.uint8)
    Preprocessor(spec, bit_depths={"gige": source.bit_depth}).into(source.read().image, slot, "gige")
    assert np.array_equal(slot, want), f"{int((slot != want).any(axis=2).sum())} pixels differ"


def test_missing_library_names_the_extra_and_package():
    with pytest.raises(ConfigError, match=r"genicam source: needs no_such_aravis_module .*apt-get install "
                                          r"gir1.2-aravis-0.8 .*pip install 'inspector\[genicam\]'"):
        require("no_such_aravis_module", "genicam", "genicam source", apt="gir1.2-aravis-0.8 (Debian)")


# -- the simulated camera -------------------------------------------------------------------------
class FakeCamera:
    def __init__(self, serial: str, *args: str) -> None:
        self.serial, self.args = serial, list(args)  # args: more of its options, e.g. "-r", "1000" (GVSP loss ‰)
        self.proc: subprocess.Popen | None = None

    @property
    def device_id(self) -> str:
        return f"Aravis-Fake-{self.serial}"

    def start(self) -> "FakeCamera":
        self.proc = subprocess.Popen([FAKE, "-i", "127.0.0.1", "-s", self.serial, *self.args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "arv-fake-gv-camera-0.8 exited (GVCP port 3956 busy?)"
            try:
                Aravis.Camera.new(self.device_id)
                return self
            except Exception:  # noqa: BLE001 - GLib.Error until it answers
                time.sleep(0.1)
        raise TimeoutError("fake camera did not answer")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def fake_camera(tmp_path_factory):
    with open("/tmp/inspector-arv-fake-gv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cam = FakeCamera("T" + uuid.uuid4().hex[:6].upper()).start()
        try:
            yield cam
        finally:
            cam.stop()


def camera_section(source: str, **genicam):
    from inspector.config import from_dict
    from inspector.pipeline.config import CameraSection

    return from_dict(CameraSection, {"name": "gige", "source": source, "read_timeout_s": 1.0,
                                     "reconnect": {"initial_s": 0.2, "max_s": 0.5}, "genicam": genicam})


@pytest.mark.parametrize("fmt,dtype,channels", [("Mono8", np.uint8, 1), ("Mono16", np.uint16, 1),
                                                ("BayerRG8", np.uint8, 3), ("BayerBG8", np.uint8, 3),
                                                ("BayerGB8", np.uint8, 3), ("BayerGR8", np.uint8, 3),
                                                ("RGB8", np.uint8, 3)])
@pytest.mark.genicam
@requires_aravis
def test_frames_arrive_in_the_configured_format(fake_camera, fmt, dtype, channels, tmp_path):
    from inspector.integrations.runtime import SOURCE_KINDS
    from inspector.pipeline.sources import make_source, source_type

    cam = camera_section(f"genicam://{fake_camera.device_id}", pixel_format=fmt, exposure_us=2500.0,
                         gain_db=2.0, frame_rate=40.0)
    assert source_type(cam) == "genicam"
    src = make_source(cam, kinds=SOURCE_KINDS)
    src.open()
    try:
        frames = [src.read() for _ in range(4)]
    finally:
        src.close()
    assert all(f.image is not None and f.meta["pixel_format"] == fmt for f in frames)
    img = frames[-1].image
    assert img.dtype == dtype and img.shape[:2] == (512, 512) and (img.ndim == 2) == (channels == 1)
    assert int(img.max()) > int(img.min())  # the fake camera's pattern, not a blank buffer
    if fmt == "Mono16":
        assert img.max() > 255  # 16-bit range kept for the preprocessor's 16→8-bit mapping
    _daemon_input_is_predicts_of_the_frame_saved(img, tmp_path)
    stamps = [f.t_ns for f in frames]
    assert stamps == sorted(stamps) and (stamps[-1] - stamps[0]) / 3 > 10e6  # ~40 fps, not a burst of stale frames
    # the features were written to the camera: read back over a fresh connection
    check = Aravis.Camera.new(fake_camera.device_id)
    assert check.get_pixel_format_as_string() == fmt
    assert check.get_exposure_time() == pytest.approx(2500.0, rel=0.01)
    assert check.get_gain() == pytest.approx(2.0, abs=0.01) and check.get_frame_rate() == pytest.approx(40.0, rel=0.01)
    assert src.stats() == {"lost": 0, "incomplete": 0}


def _daemon_input_is_predicts_of_the_frame_saved(img: np.ndarray, folder) -> None:
    """The preprocessor's input of a camera frame is bitwise ``predict``'s of the frame saved as a PNG
    (16-bit for Mono16; BGR as the recorder writes it): demosaicing and scaling happen once, at the source."""
    from inspector.contract import InputSpec
    from inspector.data.images import read_image, resize_image
    from inspector.pipeline.preprocess import Preprocessor

    cv2.imwrite(str(folder / "frame.png"), img)
    want = resize_image(read_image(folder / "frame.png", warn_key="test-genicam"), 200, 300, "letterbox")
    slot = np.empty((200, 300, 3), np.uint8)
    Preprocessor(InputSpec(height=200, width=300), "letterbox").into(img, slot, "gige")
    assert np.array_equal(slot, want), f"max diff {np.abs(slot.astype(int) - want).max()}"


@pytest.mark.parametrize("mode", ["live", "offline"])
@pytest.mark.genicam
@requires_aravis
def test_frames_queued_while_busy_are_stamped_when_received_and_live_keeps_the_newest(fake_camera, mode):
    """A second's stall of the reader leaves ~1 s of buffers queued in Aravis, oldest first. They used to be
    stamped when popped (a second old, reported as fresh) and a live camera inspected them in order, a second
    behind. Now each is stamped when the host received it, and live mode takes the newest, counting the rest."""
    from inspector.integrations.runtime import SOURCE_KINDS
    from inspector.pipeline.sources import make_source

    cam = camera_section(f"genicam://{fake_camera.device_id}", frame_rate=40.0, buffers=64)  # 1.6 s of frames
    cam = dataclasses.replace(cam, mode=mode)
    src = make_source(cam, kinds=SOURCE_KINDS)
    src.open()
    try:
        src.read()
        time.sleep(1.0)  # busy: the camera goes on filling buffers
        grabbed = src.read()
    finally:
        src.close()
    age_s = (time.monotonic_ns() - grabbed.t_ns) / 1e9
    assert abs(grabbed.t_utc - (time.time() - age_s)) < 0.05  # both clocks tell the same receive time
    if mode == "live":
        assert age_s < 0.3 and grabbed.meta["buffers_skipped"] >= 5
    else:  # offline loses nothing: the oldest queued frame, honestly stamped
        assert age_s > 0.5 and "buffers_skipped" not in grabbed.meta


def test_a_receive_stamp_is_the_buffer_age_however_old_or_says_it_is_unknown(monkeypatch):
    """A slow triggered camera's buffer received 90 s ago is 90 s old: it used to be stamped "now" past 60 s
    (a stale buffer called fresh). A stamp that cannot be right (none, in the future, before the stream was
    opened, or taken before a wall-clock step) is stamped when read and says its age is unknown."""
    from inspector.integrations.genicam import ReceiveClock

    opened = time.monotonic_ns() - 100 * 10**9  # a stream opened 100 s ago
    mono, utc, known = ReceiveClock(opened).stamp(time.time_ns() - 90 * 10**9)
    assert known and abs((time.monotonic_ns() - mono) / 1e9 - 90) < 0.05 and abs(time.time() - utc - 90) < 0.05
    mono, utc, known = ReceiveClock().stamp(time.time_ns() - 200_000_000)  # opened now: not before that
    assert not known
    for bad in (0, time.time_ns() + 10**9, time.time_ns() - 3600 * 10**9):  # unknown, future, before the stream
        mono, utc, known = ReceiveClock(opened).stamp(bad)
        assert not known and abs(utc - time.time()) < 0.05 and abs(mono - time.monotonic_ns()) < 5e7
    # the wall clock steps 30 s forward (NTP, an operator): a buffer received 1 s before the step would read 31 s
    clock = ReceiveClock(opened)
    received = time.time_ns() - 10**9
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 30 * 10**9)
    assert clock.stamp(received)[2] is False
    assert clock.stamp(time.time_ns() + 10**8)[2] is False  # future: refused
    time.sleep(0.05)
    mono, _, known = clock.stamp(time.time_ns() - 10**7)  # received after the step, on the new clock: 10 ms old
    assert known and abs((time.monotonic_ns() - mono) / 1e9 - 0.01) < 0.02


@pytest.mark.genicam
@requires_aravis
def test_software_trigger_and_missing_camera(fake_camera):
    from inspector.integrations.runtime import SOURCE_KINDS
    from inspector.pipeline.sources import make_source

    src = make_source(camera_section(f"genicam://{fake_camera.device_id}", trigger="software", pixel_format="Mono8"),
                      kinds=SOURCE_KINDS)
    src.open()
    try:
        got = [src.read() for _ in range(3)]
        assert all(g.image is not None for g in got)
        check = Aravis.Camera.new(fake_camera.device_id).get_device()
        assert check.get_string_feature_value("TriggerMode") == "On"
        assert check.get_string_feature_value("TriggerSource") == "Software"
    finally:
        src.close()
    missing = make_source(camera_section("genicam://No-Such-Camera-42"), kinds=SOURCE_KINDS)
    with pytest.raises(SourceError, match=r"camera 'gige': GenICam camera 'No-Such-Camera-42' not found"):
        missing.open()


@pytest.mark.genicam
@requires_aravis
def test_daemon_recovers_after_camera_restart(fake_camera, tiny_model, endpoint):
    from pipeline_support import base_config

    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon

    cam = {"name": "gige", "source": f"genicam://{fake_camera.device_id}", "read_timeout_s": 1.0,
           "reconnect": {"initial_s": 0.2, "max_s": 0.5, "jitter": 0.0},
           "genicam": {"pixel_format": "Mono8", "frame_rate": 20.0}}
    daemon = make_daemon(daemon_config(base_config(tiny_model, endpoint, [cam])))
    daemon.start()
    capture = daemon.captures[0]

    def wait(cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"{what}: state {capture.state}, {capture.frames} frames"
            time.sleep(0.05)
    try:
        wait(lambda: capture.frames >= 10, 15, "first frames")
        fake_camera.stop()  # the camera reboots
        wait(lambda: capture.state == "reconnecting", 10, "reconnecting")
        before = capture.frames
        time.sleep(0.5)
        fake_camera.start()
        wait(lambda: capture.state == "online" and capture.frames >= before + 10, 20, "recovered")
        assert daemon.counters.get("inferred_frames") > 0
    finally:
        daemon.request_stop()
        code = daemon.wait(timeout=20)
    assert code == 0, daemon.failures
    assert capture.reconnects >= 1



@pytest.mark.parametrize("other", ["Aravis-{serial}", "127.0.0.1", "localhost", "00:00:00:00:00:00"])
@pytest.mark.genicam
@requires_aravis
def test_one_camera_named_two_ways_is_refused_as_two_cameras_on_one_source(fake_camera, other, tiny_model,
                                                                           endpoint, tmp_path, capsys):
    """Aravis opens one camera by its device id, ``<vendor>-<serial>``, MAC or IP address (or a host name for
    it). Two entries naming it two ways were compared as text and passed: at start one camera opened it and
    the other failed or was retried for ever. The GenICam integration now tells the pipeline each name's
    device id (from Aravis's device list, pipeline.extensions.SourceNamer): --check refuses in one line."""
    import yaml

    from pipeline_support import base_config

    from inspector.cli import main

    cams = [{"name": "left", "source": f"genicam://{fake_camera.device_id}"},
            {"name": "right", "source": "genicam://" + other.format(serial=fake_camera.serial)}]
    path = tmp_path / "inspector.yaml"
    path.write_text(yaml.safe_dump(base_config(tiny_model, endpoint, cams)))
    code = main(["run", "--config", str(path), "--check"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "'left' and 'right' both read GenICam camera" in lines[0] and other.format(serial=fake_camera.serial) \
        in lines[0], lines[0]


@pytest.mark.genicam
@requires_aravis
def test_a_camera_held_by_another_application_is_told_at_once_and_taken_when_released(fake_camera):
    """GigE Vision gives one application control; a second daemon (or a viewer) asking for the same camera got
    it read-only, and every feature write timed out: "cannot set TriggerMode: write_register timeout" after ~8 s
    per attempt (capture blocked that long, shutdown too), as if the camera were gone. Now it is refused at once,
    naming the cause, the holder streams on undisturbed, and the camera opens once the holder lets it go."""
    from inspector.integrations.runtime import SOURCE_KINDS
    from inspector.pipeline.sources import make_source

    url = f"genicam://{fake_camera.device_id}"
    holder = make_source(camera_section(url, pixel_format="Mono8", frame_rate=20.0), kinds=SOURCE_KINDS)
    holder.open()
    try:
        for settings in ({}, {"pixel_format": "Mono8"}):  # with and without features of its own to write
            second = make_source(camera_section(url, **settings), kinds=SOURCE_KINDS)
            started = time.monotonic()
            with pytest.raises(SourceError, match="is controlled by another application"):
                second.open()
            assert time.monotonic() - started < 5.0  # was ~8.5 s: discovery 1 s + open 2.5 s now
            assert holder.read().image is not None
    finally:
        holder.close()
    second.open()
    try:
        assert second.read().image is not None
    finally:
        second.close()


@pytest.mark.parametrize("setting, said", [
    ({"pixel_format": "Mono12"}, r"pixel_format: PixelFormat Mono12 is not offered by this camera \(it offers .*Mono8.*"
                                 r"of those the daemon decodes .*Mono16"),
    ({"trigger": "line1"}, r"trigger: TriggerSource Line1 is not offered by this camera \(it offers Line0, Software\)"),
    # its declared ranges (Gain 0-10 dB, ExposureTime from 10 µs): the values were written as they were
    ({"gain_db": 40.0}, r"camera\.genicam\.gain_db: 40 is outside this camera's Gain range \[0, 10\]"),
    ({"exposure_us": 5.0},
     r"camera\.genicam\.exposure_us: 5 is outside this camera's ExposureTime range \[10, 1e\+07\]"),
])
@pytest.mark.genicam
@requires_aravis
def test_a_setting_the_camera_does_not_offer_fails_the_camera_in_one_line(fake_camera, setting, said, tiny_model,
                                                                           endpoint):
    """The fake camera offers Mono8, Mono16, RGB8 and the Bayer8 layouts, not Mono12, and triggers on Line0 and
    Software, not Line1, and declares Gain 0-10 dB and ExposureTime from 10 µs (settings the daemon takes). Writing
    one failed ("[PixelFormat] 'Mono12' not an entry"), retried with back-off for ever as if the camera could gain it;
    a gain or exposure out of range was written as it was (the fake camera read back gain 40). Now the camera fails at
    once, naming what it offers.
    The failed open gives the camera's control back: the daemon below opens it while that error is still held
    (its traceback held the camera, so the daemon was refused as "another application")."""
    from pipeline_support import base_config

    from inspector.integrations.runtime import SOURCE_KINDS, make_daemon
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.sources import make_source

    url = f"genicam://{fake_camera.device_id}"
    source = make_source(camera_section(url, **setting), kinds=SOURCE_KINDS)
    with pytest.raises(SourceError, match=said) as caught:
        source.open()
    assert caught.value.permanent and "\n" not in str(caught.value)
    cam = {"name": "gige", "source": url, "read_timeout_s": 1.0,
           "reconnect": {"initial_s": 0.2, "max_s": 0.5, "jitter": 0.0}, "genicam": setting}
    capture = _capture_once_failed(make_daemon(daemon_config(base_config(tiny_model, endpoint, [cam]))))
    assert capture.state == "failed" and re.search(said, capture.reason), capture.reason
    assert capture.reconnects == 0


def _capture_once_failed(daemon):
    """The daemon's first capture after it has failed (or 15 s), the daemon stopped again."""
    daemon.start()
    capture = daemon.captures[0]
    try:
        deadline = time.monotonic() + 15
        while capture.state != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
        return capture
    finally:
        daemon.request_stop()
        daemon.wait(timeout=20)


@pytest.mark.genicam
@requires_aravis
def test_a_camera_whose_stream_never_arrives_is_not_called_online(fake_camera, tiny_model, endpoint):
    """A camera that answers control but whose frames never arrive (``-r 1000``: the fake camera drops every
    stream packet, as a switch or firewall can, or acquisition stopped on the camera) was 'online' at each
    reconnect, then 'reconnecting' a read timeout later, two status events per attempt and a back-off that never
    grew. Now open waits for the first frame (``open_timeout_s``) as a network stream's does: the camera stays
    'reconnecting', saying why, with growing back-off, and comes online when its frames arrive."""
    from pipeline_support import base_config

    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    fake_camera.stop()
    lossy = FakeCamera(fake_camera.serial, "-r", "1000").start()
    cam = {"name": "gige", "source": f"genicam://{fake_camera.device_id}", "read_timeout_s": 1.0,
           "open_timeout_s": 1.0, "reconnect": {"initial_s": 0.2, "max_s": 2.0, "jitter": 0.0},
           "genicam": {"pixel_format": "Mono8", "frame_rate": 20.0}}
    daemon = make_daemon(daemon_config(base_config(tiny_model, endpoint, [cam])))
    daemon.start()
    capture, seen = daemon.captures[0], set()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            seen.add(capture.state)
            time.sleep(0.02)
        assert "online" not in seen and capture.frames == 0, seen
        assert capture.state == "reconnecting" and "sent no frame within 1 s" in capture.reason, capture.reason
        assert capture.backoff.attempt >= 2
        lossy.stop()
        fake_camera.start()  # its frames arrive again
        deadline = time.monotonic() + 20
        while capture.frames < 5:
            assert time.monotonic() < deadline, f"state {capture.state}: {capture.reason}"
            time.sleep(0.05)
    finally:
        lossy.stop()
        daemon.request_stop()
        code = daemon.wait(timeout=20)
    assert code == 0, daemon.failures


@pytest.mark.genicam
@requires_aravis
def test_a_camera_waiting_on_its_trigger_line_keeps_its_stream_until_it_stops_answering(fake_camera, tiny_model,
                                                                                          endpoint):
    """A camera on a hardware trigger line sends nothing while the line is idle (no parts; the fake camera's
    Line0 never fires). Each read_timeout_s without a frame reconnected it, stopping acquisition for ~2 s each
    time, so a part arriving then was never seen (and Line0, how FLIR/Teledyne number their first line, was
    refused by the config). Now a camera that still answers is waiting, not gone: no reconnect; one that stops
    answering is reconnected as before."""
    from pipeline_support import base_config

    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    cam = {"name": "gige", "source": f"genicam://{fake_camera.device_id}", "read_timeout_s": 0.5,
           "reconnect": {"initial_s": 0.2, "max_s": 0.5, "jitter": 0.0}, "genicam": {"trigger": "line0"}}
    daemon = make_daemon(daemon_config(base_config(tiny_model, endpoint, [cam])))
    daemon.start()
    capture, seen = daemon.captures[0], set()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen.add(capture.state)
            time.sleep(0.02)
        assert seen == {"connecting", "online"} and capture.reconnects == 0, (seen, capture.reason)
        check = Aravis.Camera.new(fake_camera.device_id).get_device()  # read-only: the daemon holds control
        assert check.get_string_feature_value("TriggerSource") == "Line0"
        fake_camera.stop()
        deadline = time.monotonic() + 15
        while capture.state != "reconnecting":
            assert time.monotonic() < deadline, f"state {capture.state}"
            time.sleep(0.05)
    finally:
        daemon.request_stop()
        code = daemon.wait(timeout=20)
    assert code == 0, daemon.failures


@pytest.mark.parametrize("value, name", [("MONO_10", "Mono10"), ("YUV_422_PACKED", "YUV422Packed"),
                                         ("BGR_8_PACKED", "BGR8")])
@pytest.mark.genicam
@requires_aravis
def test_a_camera_already_set_to_a_format_the_daemon_cannot_decode_fails_in_one_line(fake_camera, value, name,
                                                                                     tiny_model, endpoint):
    """A camera left (by its vendor's viewer, a previous application) in a pixel format the daemon does not decode,
    with ``camera.genicam.pixel_format`` unset so the daemon leaves it, opened fine and sent only frames it
    counted ``corrupt`` ("pixel format 0x01100003 is not supported"), was reopened after every ``read_timeout_s``
    for ever, a 'reconnecting' warning each time, as if the camera were faulty. No reopen can change it: the
    camera fails at once, in one line naming the format, what the daemon decodes and the key that sets it.
    The fake camera's PixelFormat enumeration has no such entry, so its register is written directly."""
    from pipeline_support import base_config

    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    setter = Aravis.Camera.new(fake_camera.device_id)
    setter.get_device().set_integer_feature_value("PixelFormatRegister", getattr(Aravis, f"PIXEL_FORMAT_{value}"))
    del setter  # control given back
    cam = {"name": "gige", "source": f"genicam://{fake_camera.device_id}", "read_timeout_s": 0.5,
           "reconnect": {"initial_s": 0.1, "max_s": 0.2, "jitter": 0.0}}
    capture = _capture_once_failed(make_daemon(daemon_config(base_config(tiny_model, endpoint, [cam]))))
    assert capture.state == "failed", (capture.state, capture.reason)
    reason = capture.reason
    assert f"PixelFormat {name}" in reason and "camera.genicam.pixel_format" in reason, reason
    assert "Mono8" in reason and "\n" not in reason, reason
    assert capture.reconnects == 0
