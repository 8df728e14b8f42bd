"""GenICam cameras (GigE Vision, USB3 Vision): ``source: genicam://<id>`` through Aravis (PyGObject).

``<id>`` is what Aravis matches: the device id (``<vendor>-<model>-<serial>``, as
``arv-camera-test-0.8 -l`` lists), ``<vendor>-<serial>``, or the camera's IP
address; empty (``genicam://``) takes the first camera found. The camera's
settings come from ``camera.genicam`` and are written as standard features
(SFNC) on every (re)connect: PixelFormat, ExposureTime, Gain,
AcquisitionFrameRate, TriggerMode/TriggerSource, GevSCPSPacketSize.

Acquisition: ``buffers`` stream buffers circulate between Aravis and us; each
popped buffer is copied once (PyGObject hands its bytes out as a ``bytes``),
decoded by :func:`~inspector.integrations.pixel_formats.decode_pixels` (no
further copy for Mono8/Mono16) and pushed straight back. 16-bit frames go to
the preprocessor as sent, scaled there by the camera's ``bit_depth``; Mono12's
declared 12 bits win over that setting. Incomplete buffers (missing
packets, timeouts inside the frame) come back as corrupt frames (counted as
``corrupt`` by the capture worker); frames the camera sent while no buffer was
free are counted in :meth:`GenicamSource.stats` as ``lost``. A camera that stops
answering (reboot, cable) makes ``read`` time out after ``read_timeout_s`` → the
capture worker reconnects with back-off (one on a hardware trigger line that still answers is
waiting for parts: kept open), and ``open`` rewrites the settings. ``open`` waits
``open_timeout_s`` for the first frame (not on a hardware trigger line), so a camera that answers but
whose stream never arrives is not called online. A camera held by another application (GigE Vision
control privilege), lacking a configured setting or its range, or left in a pixel format the daemon does not
decode while ``pixel_format`` is unset, is told so in one line (all but the first fail the camera).

Other GenTL producers (vendor ``.cti`` files through ``harvesters``) fit behind
the same :class:`CameraDriver` protocol; only Aravis is implemented here.
Needs the ``genicam`` extra (PyGObject) and Debian ``gir1.2-aravis-0.8``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote

from inspector.data.images import FrameLayout
from inspector.errors import SourceError
from inspector.integrations import require
from inspector.pipeline.integration_config import GenicamSection
from inspector.integrations.pixel_formats import LAYOUT, align_bits, decode_pixels, declared_bits
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import Grabbed, Source

log = logging.getLogger("inspector.genicam")
_APT = "gir1.2-aravis-0.8 (Debian)"
# Aravis constant suffix → PFNC name, for pixel formats cameras commonly offer that the daemon does not decode
_UNDECODED_NAMES = {"MONO_10": "Mono10", "MONO_10_PACKED": "Mono10Packed", "MONO_12_PACKED": "Mono12Packed",
                    "MONO_14": "Mono14", "BGR_8_PACKED": "BGR8", "RGBA_8_PACKED": "RGBa8", "BGRA_8_PACKED": "BGRa8",
                    "YUV_422_PACKED": "YUV422Packed", "YUV_422_YUYV_PACKED": "YUV422_YUYVPacked",
                    **{f"BAYER_{c}_{b}": f"Bayer{c}{b}" for c in ("RG", "BG", "GB", "GR") for b in (10, 12, 16)}}
_TRIGGER_SOURCES = {"software": "Software", "line0": "Line0", "line1": "Line1", "line2": "Line2",
                    "line3": "Line3"}


class Popped(NamedTuple):
    """One buffer from the camera: ``data`` bytes-like, ``fmt`` the PFNC pixel format name, ``received_ns``
    when the host received it (CLOCK_REALTIME ns, Aravis ``arv_buffer_get_system_timestamp``; 0: unknown),
    ``skipped`` older filled buffers handed back unread for this one (a live camera keeps the newest)."""

    data: Any
    fmt: str
    width: int
    height: int
    complete: bool
    received_ns: int = 0
    skipped: int = 0


class CameraDriver(Protocol):
    """What :class:`GenicamSource` needs from a GenICam library (Aravis here; harvesters/GenTL would fit)."""

    def open(self, device_id: str | None, settings: GenicamSection) -> str:
        """Connect, write the settings, start acquiring; return a description. Raise SourceError."""

    def pop(self, timeout_s: float, newest: bool = False) -> Popped | None:
        """The next filled buffer (``newest``: the newest one queued, the older ones handed back and counted
        in ``skipped``); None on timeout."""

    def trigger(self) -> None:
        """Fire a software trigger."""

    def answers(self) -> bool:
        """Whether the open camera still answers control (one feature read)."""

    def stats(self) -> dict[str, int]:
        """Cumulative {'lost': frames dropped for want of a buffer, 'incomplete': …} since open."""

    def close(self) -> None:
        """Stop acquiring and disconnect (idempotent)."""


class AravisDriver:
    """:class:`CameraDriver` over Aravis 0.8 (GObject introspection)."""

    def __init__(self) -> None:
        gi = require("gi", "genicam", "genicam source", apt=_APT)
        try:
            gi.require_version("Aravis", "0.8")
        except ValueError as exc:
            from inspector.errors import ConfigError

            raise ConfigError(f"genicam source: Aravis 0.8 typelib missing ({exc}); apt-get install {_APT}") \
                from None
        from gi.repository import Aravis, GLib

        self.Aravis, self.GLib = Aravis, GLib
        self.formats = {Aravis.PIXEL_FORMAT_MONO_8: "Mono8", Aravis.PIXEL_FORMAT_MONO_12: "Mono12",
                        Aravis.PIXEL_FORMAT_MONO_16: "Mono16", Aravis.PIXEL_FORMAT_BAYER_RG_8: "BayerRG8",
                        Aravis.PIXEL_FORMAT_BAYER_BG_8: "BayerBG8", Aravis.PIXEL_FORMAT_BAYER_GB_8: "BayerGB8",
                        Aravis.PIXEL_FORMAT_BAYER_GR_8: "BayerGR8",
                        Aravis.PIXEL_FORMAT_RGB_8_PACKED: "RGB8"}
        # formats the daemon does not decode, by their PFNC names, so that a camera set to one is told by name
        # (Aravis names only those the camera's own XML lists: it gave None, and frames said "0x01100003")
        self.formats |= {getattr(Aravis, f"PIXEL_FORMAT_{a}"): name for a, name in _UNDECODED_NAMES.items()}
        self.cam = self.stream = None
        self._base_stats = (0, 0, 0)
        self._lost = False

    def open(self, device_id: str | None, s: GenicamSection) -> str:
        A = self.Aravis
        try:
            A.update_device_list()
            cam = A.Camera.new(device_id)
        except self.GLib.Error as exc:
            raise SourceError(f"GenICam camera '{device_id or 'first found'}' not found ({exc.message})") from None
        name = device_id or cam.get_device_id()
        if _held_elsewhere(cam):
            failure = SourceError(f"GenICam camera '{name}' is controlled by another application (GigE Vision "
                                  "control privilege: another daemon or a viewer has it open)")
        else:
            failure = self._start(cam, s, name)
        if failure is not None:
            held = [cam]
            del cam  # the failure holds no frame that holds it: dropped by the helper thread, control given back
            # off this thread: releasing waits out the camera's own write timeouts (~2.5 s when not in control)
            threading.Thread(target=held.clear, name="genicam-release", daemon=True).start()
            raise failure
        _, _, width, height = self.cam.get_region()
        return f"{self.cam.get_device_id()} {self.pixel_format(self.cam.get_pixel_format())} {width}x{height}"

    def _start(self, cam, s: GenicamSection, name: str) -> SourceError | None:
        """Write the settings, queue the buffers and start acquiring; the failure, if any (not raised: a raised
        one's traceback would hold ``cam``, and with it the camera's control, until the error is dropped)."""
        A = self.Aravis
        try:
            self._configure(cam, s)
            stream = cam.create_stream(None, None)
            payload = cam.get_payload()
            for _ in range(s.buffers):
                stream.push_buffer(A.Buffer.new_allocate(payload))
            cam.set_acquisition_mode(A.AcquisitionMode.CONTINUOUS)
            cam.start_acquisition()
        except self.GLib.Error as exc:
            return SourceError(f"GenICam camera '{name}': {exc.message}")
        except SourceError as exc:
            return SourceError(f"GenICam camera '{name}': {exc}", exc.permanent)
        self.cam, self.stream = cam, stream
        self._base_stats = A.Stream.get_statistics(stream)
        return None

    def _configure(self, cam, s: GenicamSection) -> None:
        """Write the configured features; each failure names the feature."""
        steps = [
            ("PixelFormat", s.pixel_format, lambda: cam.set_pixel_format_from_string(s.pixel_format)),
            ("ExposureTime", s.exposure_us, lambda: (cam.set_exposure_time_auto(self.Aravis.Auto.OFF)
                                                     if cam.is_exposure_auto_available() else None,
                                                     cam.set_exposure_time(s.exposure_us))),
            ("Gain", s.gain_db, lambda: cam.set_gain(s.gain_db)),
            ("AcquisitionFrameRate", s.frame_rate, lambda: cam.set_frame_rate(s.frame_rate)),
            ("TriggerMode", True, lambda: cam.clear_triggers() if s.trigger == "off"
             else cam.set_trigger(_TRIGGER_SOURCES[s.trigger])),
            ("GevSCPSPacketSize", cam.is_gv_device(), lambda: cam.gv_set_packet_size(s.packet_size)
             if s.packet_size else cam.gv_auto_packet_size()),
        ]
        _check_offered(cam, s)
        self._check_decodable(cam, s)
        _check_ranges(cam, s, self.GLib.Error)
        for feature, wanted, write in steps:
            if wanted is None or wanted == "" or wanted is False:
                continue
            try:
                write()
            except self.GLib.Error as exc:
                raise SourceError(f"cannot set {feature}: {exc.message}") from None

    def pixel_format(self, value: int) -> str:
        """The PFNC name of an Aravis pixel format value (hex where it has none here)."""
        return self.formats.get(value, f"0x{value:08x}")

    def _check_decodable(self, cam, s: GenicamSection) -> None:
        """Raise a permanent SourceError when ``pixel_format`` is unset (the camera's own setting is kept) and the
        camera is set to a pixel format the daemon does not decode (:data:`LAYOUT`).

        Such a camera (left in Mono10 or YUV422Packed by its vendor's viewer) opened fine and sent only frames
        counted ``corrupt``, reopened every ``read_timeout_s`` for ever (measured with arv-fake-gv-camera-0.8, its
        PixelFormat register written): no reopen changes the camera's setting, only the configuration can.
        """
        if s.pixel_format:
            return  # written below; the config takes decodable ones only, _check_offered those the camera has
        current = self.pixel_format(cam.get_pixel_format())
        if current in LAYOUT:
            return
        device = cam.get_device()
        offered = list(device.dup_available_enumeration_feature_values_as_strings("PixelFormat") or []) \
            if device.is_feature_available("PixelFormat") else []
        usable = [f for f in offered if f in LAYOUT]
        raise SourceError(f"camera.genicam.pixel_format: the camera is set to PixelFormat {current}, which the "
                          f"daemon does not decode (it decodes {', '.join(LAYOUT)}"
                          + (f"; this camera offers {', '.join(usable) or 'none of them'}" if offered else "")
                          + "): set camera.genicam.pixel_format to one of them (the daemon writes it at every "
                            "connect)", permanent=True)

    def pop(self, timeout_s: float, newest: bool = False) -> Popped | None:
        buf = self.stream.timeout_pop_buffer(int(timeout_s * 1e6))
        if buf is None:
            self._lost = True
            return None
        skipped = 0
        while newest:  # buffers filled while we were busy wait in order: the oldest comes out first
            later = self.stream.try_pop_buffer()
            if later is None:
                break
            self.stream.push_buffer(buf)
            buf, skipped = later, skipped + 1
        try:
            complete = buf.get_status() == self.Aravis.BufferStatus.SUCCESS
            fmt = self.pixel_format(buf.get_image_pixel_format())
            data = buf.get_image_data() if complete else b""  # the one copy
            return Popped(data, fmt, buf.get_image_width(), buf.get_image_height(), complete,
                          buf.get_system_timestamp(), skipped)
        finally:
            self.stream.push_buffer(buf)  # straight back to the camera's queue

    def trigger(self) -> None:
        self.cam.software_trigger()

    def answers(self) -> bool:
        try:
            self.cam.get_device().get_string_feature_value("TriggerMode")  # read from the camera (no cache)
        except self.GLib.Error:
            return False
        self._lost = False  # only waiting: closing need not wait out a gone camera's timeouts
        return True

    def stats(self) -> dict[str, int]:
        if self.stream is None:
            return {"lost": 0, "incomplete": 0}
        done, failures, underruns = self.Aravis.Stream.get_statistics(self.stream)
        return {"lost": underruns - self._base_stats[2], "incomplete": failures - self._base_stats[1]}

    def close(self) -> None:
        cam, stream, lost = self.cam, self.stream, self._lost
        self.cam = self.stream = None
        self._lost = False
        if cam is None:
            return
        if lost:  # a camera that stopped answering: GVCP retries make stop/release take ~10 s, so let
            # a helper thread wait for them while capture goes on reconnecting
            threading.Thread(target=self._release, args=(cam, stream), name="genicam-release", daemon=True).start()
        else:
            self._release(cam, stream)

    def _release(self, cam, stream) -> None:
        try:
            cam.stop_acquisition()
        except self.GLib.Error:
            pass  # the camera may be gone already (that is why we are closing)
        del stream, cam  # dropping the last references disconnects


def _check_offered(cam, s: GenicamSection) -> None:
    """Raise a permanent SourceError when the camera does not offer a configured enumeration value.

    Writing one failed with "[PixelFormat] 'Mono12' not an entry" or "[TriggerSource] 'Line1' not an entry"
    (measured with arv-fake-gv-camera-0.8: Mono8, Mono16, RGB8 and four Bayer8 layouts; triggers Line0, Software),
    retried with back-off for ever as if the camera might gain the value; the camera fails at once instead, in
    one line naming what it offers (pixel formats: those of them the daemon decodes, :data:`LAYOUT`).
    """
    wanted = [("pixel_format", "PixelFormat", s.pixel_format),
              ("trigger", "TriggerSource", _TRIGGER_SOURCES.get(s.trigger, ""))]
    device = cam.get_device()
    for key, feature, value in wanted:
        if not value or not device.is_feature_available(feature):
            continue
        offered = list(device.dup_available_enumeration_feature_values_as_strings(feature) or [])
        if offered and value not in offered:
            usable = [f for f in offered if f in LAYOUT] if feature == "PixelFormat" else offered
            raise SourceError(f"camera.genicam.{key}: {feature} {value} is not offered by this camera (it offers "
                              f"{', '.join(offered)}" + (f"; of those the daemon decodes {', '.join(usable) or 'none'}"
                                                         if feature == "PixelFormat" else "") + ")", permanent=True)


def _check_ranges(cam, s: GenicamSection, glib_error: type[Exception]) -> None:
    """Raise a permanent SourceError when a configured Gain lies outside the range the camera declares, or an
    ExposureTime below its minimum (the feature's Min/Max; one it cannot read is left to the write to judge).

    Such a value was written as it was: one the camera refused failed the write at every reconnect ("cannot set
    Gain: …"), retried with back-off for ever, and one it took unchecked ran the camera outside its declared range
    (gain_db 40 on arv-fake-gv-camera-0.8, which declares Gain 0-10 dB, read back 40: measured). No reconnect changes a
    camera's range: the camera fails at once, in one line naming the key, the value and the range.
    """
    # (key, feature, value, bounds, whether its maximum holds whatever else is written): ExposureTime's maximum
    # follows the current frame period on some cameras, and AcquisitionFrameRate's the exposure and ROI about to be
    # written, so read before the writes they could refuse a value the new settings allow (frame rate: not checked)
    wanted = [("exposure_us", "ExposureTime", s.exposure_us, cam.get_exposure_time_bounds, False),
              ("gain_db", "Gain", s.gain_db, cam.get_gain_bounds, True)]
    for key, feature, value, bounds, fixed_max in wanted:
        if value is None:
            continue
        try:
            low, high = bounds()
        except glib_error:
            continue
        if low < high and (value < low or (fixed_max and value > high)):
            raise SourceError(f"camera.genicam.{key}: {value:g} is outside this camera's {feature} range "
                              f"[{low:g}, {high:g}]", permanent=True)


def _held_elsewhere(cam) -> bool:
    """True when a GigE Vision camera's control channel is held by another application.

    GigE Vision (GVCP CCP register) gives one application write access; Aravis opens a camera held
    elsewhere read-only (``arv_gv_device_is_controller`` False) and then every feature write times out:
    a second daemon or a viewer on the same camera was told "cannot set TriggerMode: write_register timeout"
    after ~8.5 s per attempt (measured with arv-fake-gv-camera-0.8), as if the camera were gone.
    USB3 Vision has no such privilege (not a GV device: nothing to check).
    """
    return bool(cam.is_gv_device()) and not cam.get_device().is_controller()


_STEP_TOLERANCE_NS = 20_000_000  # wall vs monotonic clock moving apart by more than this between reads: a step
_SLEW_PPM = 500  # the most NTP slews the wall clock (adjtimex: 500 ppm): drift, not a step


class ReceiveClock:
    """Turns a buffer's host receive stamp (CLOCK_REALTIME ns) into (monotonic ns, UTC s, known) honestly.

    The stamp is the buffer's real capture time however old it is: a slow triggered camera's buffer received
    90 s ago is 90 s old (calling it "now" past 60 s, as before, called a stale buffer fresh). It is unknown
    (``known`` False, stamped when read) only when it cannot be right: 0 (no host stamp), after now, before the
    stream was opened, or possibly taken on the wall clock before a step that this clock saw between two reads
    (NTP, an operator): a buffer received before a step of D forward reads D too old, one before a step back
    reads up to D too young, so stamps that fall before the step (plus D, for a step back) are ambiguous.
    """

    def __init__(self, opened_mono_ns: int | None = None) -> None:
        mono, real = time.monotonic_ns(), time.time_ns()
        self._floor_ns = mono if opened_mono_ns is None else opened_mono_ns  # no trustworthy stamp before this
        self._offset_ns = real - mono  # wall minus monotonic at the last look
        self._seen_ns = mono

    def _look(self) -> tuple[int, int]:
        """(monotonic ns, wall-minus-monotonic ns) now; a step since the last look moves the floor."""
        mono, real = time.monotonic_ns(), time.time_ns()
        offset = real - mono
        step = offset - self._offset_ns
        if abs(step) > _STEP_TOLERANCE_NS + (mono - self._seen_ns) * _SLEW_PPM // 1_000_000:
            self._floor_ns = mono + max(0, -step)
        self._offset_ns, self._seen_ns = offset, mono
        return mono, offset

    def stamp(self, received_ns: int) -> tuple[int, float, bool]:
        """(monotonic ns, UTC s, known) of a buffer received at ``received_ns`` (CLOCK_REALTIME ns, 0: unknown)."""
        mono, offset = self._look()
        at = received_ns - offset
        if received_ns <= 0 or at > mono + _STEP_TOLERANCE_NS or at < self._floor_ns - _STEP_TOLERANCE_NS:
            return mono, (mono + offset) / 1e9, False
        at = min(at, mono)
        return at, (at + offset) / 1e9, True


class GenicamSource(Source):
    """A live GenICam camera behind the pipeline's :class:`Source` interface."""

    kind = "genicam"
    one_size = True
    live = True
    finite = False

    def __init__(self, camera: CameraSection, driver: CameraDriver, bit_depth: int | None = None) -> None:
        super().__init__(camera, bit_depth)
        url = str(camera.source)
        self.device_id = unquote(url[len("genicam://"):]).strip("/") or None
        self.driver = driver
        self._desc = ""
        self._totals = {"lost": 0, "incomplete": 0}
        self._open = False
        self._first: Popped | None = None  # the frame open() waited for, given by the first read
        self._clock = ReceiveClock()

    def open(self) -> None:
        self.close()
        self._clock = ReceiveClock()  # no buffer of this connection was received before now
        try:
            self._desc = self.driver.open(self.device_id, self.camera.genicam)
        except SourceError as exc:
            self.driver.close()
            raise self._error(str(exc), exc.permanent) from None
        self._open = True
        if self.camera.genicam.trigger in ("off", "software"):
            self._await_first_frame()

    def _await_first_frame(self) -> None:
        """Keep the camera's first frame for the first read; a transient SourceError if none comes within
        ``open_timeout_s``: a camera that answers control but whose stream never arrives (acquisition stopped on
        it, its packets dropped by a switch or firewall) stays 'reconnecting' with growing back-off, as a network
        stream without a first frame does (pipeline.ffmpeg_live), instead of flapping 'online' → 'reconnecting'
        at every attempt (measured with arv-fake-gv-camera-0.8 -r 1000). A camera on a hardware trigger line
        sends its first frame with the first part, whenever that comes: not awaited."""
        if self.camera.genicam.trigger == "software":
            self.driver.trigger()
        self._first = self.driver.pop(self.camera.open_timeout_s)
        if self._first is None:
            self.close()
            raise self._error(f"{self.describe()} answers but sent no frame within {self.camera.open_timeout_s:g} s "
                              f"(open_timeout_s): its stream does not arrive (acquisition stopped on the camera, "
                              f"packets dropped on the way)")

    def read(self) -> Grabbed | None:
        if not self._open:
            raise self._error("source is not open")
        got, self._first = self._first, None
        if got is None:
            if self.camera.genicam.trigger == "software":
                self.driver.trigger()
            got = self.driver.pop(self.camera.read_timeout_s, newest=self.camera.mode != "offline")
        if got is None:
            return self._no_frame()
        t_ns, t_utc, known = self._clock.stamp(got.received_ns)
        data, fmt, width, height, complete = got[:5]
        meta = {"pixel_format": fmt} | ({"buffers_skipped": got.skipped} if got.skipped else {})
        if not known:  # stamped when read: how long it waited before is not known (sources: lag_ms)
            meta["lag_ms"] = None
        if not complete:
            return Grabbed(None, t_ns, t_utc, meta, error=f"incomplete buffer from {self.describe()}")
        try:
            image = decode_pixels(data, fmt, width, height)
        except SourceError as exc:
            return Grabbed(None, t_ns, t_utc, meta, error=str(exc))
        declared = declared_bits(fmt)
        # the camera's PixelFormat named: Mono12 and Mono16 give the same uint16 arrays
        layout = FrameLayout.of(image, (1 << declared) - 1 if declared else None, pixel_format=str(fmt))
        if declared is not None:  # the format's own depth wins over the setting (as PNG sBIT does)
            image = align_bits(image, declared, self.bit_depth)
        return Grabbed(image, t_ns, t_utc, meta, layout=layout)

    def _no_frame(self) -> Grabbed:
        """No frame for ``read_timeout_s``: a camera on a hardware trigger line that still answers is waiting for
        its next part (a Grabbed with no image, reason ``waiting``: not a fault, its acquisition kept going); else
        a transient SourceError (reconnect). An idle line used to be reconnected every ``read_timeout_s``, each
        reconnect stopping acquisition for ~2 s, so a part arriving then was never seen."""
        if self.camera.genicam.trigger.startswith("line") and self.driver.answers():
            now = time.monotonic_ns()
            return Grabbed(None, now, time.time(), {}, error=f"waiting for a trigger on {self.camera.genicam.trigger}",
                           reason="waiting")
        raise self._error(f"no frame from {self.describe()} within {self.camera.read_timeout_s:g} s")

    def stats(self) -> dict[str, int]:
        """Cumulative over reconnects: {'lost', 'incomplete'} buffers reported by the driver."""
        now = self.driver.stats() if self._open else {}
        return {k: self._totals[k] + now.get(k, 0) for k in self._totals}

    def close(self) -> None:
        if self._open:
            now = self.driver.stats()
            for k in self._totals:
                self._totals[k] += now.get(k, 0)
        self._open, self._first = False, None
        self.driver.close()

    def describe(self) -> str:
        return f"genicam {self.device_id or '(first camera)'}" + (f" [{self._desc}]" if self._desc else "")


def genicam_device_ids(cameras: list[CameraSection]) -> dict[str, str]:
    """{camera name: the listed device id of the camera its ``genicam://<name>`` opens}, for the cameras found.

    Aravis opens a camera by any of its names: the device id (``<vendor>-<model>-<serial>``),
    ``<vendor>-<serial>``, the MAC address (physical id) or the IP address, or a host name that resolves to
    it (measured on Aravis 0.8.26 with arv-fake-gv-camera-0.8: ``Aravis-Fake-X``, ``Aravis-X``,
    ``00:00:00:00:00:00``, ``127.0.0.1``, ``localhost`` open one camera). Two entries naming one camera two
    ways are told by one discovery (``arv_update_device_list``, ~1 s on GigE). A camera not found, or the
    library missing, is left out: :meth:`AravisDriver.open` says so when it opens. A DeviceUserID name is
    not in the device list without opening the camera (taking its control), so it is not told here.
    """
    try:
        Aravis = AravisDriver().Aravis
        Aravis.update_device_list()
        listed = [_listed_names(Aravis, i) for i in range(Aravis.get_n_devices())]
    except Exception as exc:  # noqa: BLE001 - a namer never raises (pipeline.extensions.SourceNamer)
        log.debug("GenICam device list: %r", exc)
        return {}
    found = {}
    for cam in cameras:
        name = unquote(str(cam.source)[len("genicam://"):]).strip("/")
        device = _match(name, listed) if name else None
        if device:
            found[cam.name] = device
    return found


def _listed_names(Aravis, i: int) -> tuple[str, set[str], str]:
    """(device id, its names casefolded, IP address) of the ``i``-th listed device."""
    device_id = Aravis.get_device_id(i) or ""
    names = {device_id, f"{Aravis.get_device_vendor(i)}-{Aravis.get_device_serial_nbr(i)}",
             Aravis.get_device_physical_id(i) or "", Aravis.get_device_address(i) or ""}
    return device_id, {n.casefold() for n in names if n}, Aravis.get_device_address(i) or ""


def _match(name: str, listed: list[tuple[str, set[str], str]]) -> str | None:
    """The device id ``name`` names: one of its listed names, else a host name or address of its IP."""
    for device_id, names, _ in listed:
        if name.casefold() in names:
            return device_id
    try:  # 127.000.000.001, a host name: resolved as Aravis resolves it (IPv4 only: GigE Vision is IPv4)
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
    except (OSError, UnicodeError):
        return None
    return next((device_id for device_id, _, address in listed if address in addresses), None)


def make_genicam_source(camera: CameraSection, bit_depth: int | None = None) -> GenicamSource:
    """The source for ``genicam://…`` (imports Aravis; one line naming what to install if it is absent).

    ``bit_depth``: the model's setting, used when the camera has none (see :class:`Source`).
    """
    return GenicamSource(camera, AravisDriver(), bit_depth)
