"""The daemon's configuration (``inspector run --config inspector.yaml``).

Frozen dataclasses loaded with :func:`inspector.config.from_dict` (unknown keys
rejected with a "did you mean"). ``inspector.example.yaml`` at the repository
root documents every key; a test keeps the two in step. Relative paths are
resolved against the directory of the config file (:func:`resolve_paths`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from inspector.config import (apply_overrides, bounded, expanded_path, from_dict, from_file, from_file_dict, load_yaml,
                              refuse_empty, refuse_unread, suggest, tcp_port_problem)
from inspector.errors import ConfigError, InspectorError
from inspector.pipeline.srt_options import srt_url_problem
from inspector.pipeline.integration_config import (DashboardSection, GenicamSection, MetricsSection, MqttSection,
                                                   url_address_problem)

_CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: '$' would let "cam\n" through
_MIN_FPS = 1 / 86400  # a paced camera delivers at least one frame a day
# URL schemes FFmpeg opens as inputs (its protocols, libavformat/protocols.c, and the RTSP/MMS demuxers'),
# lower case; a camera URL with another scheme can never open: it was retried for ever
_URL_SCHEMES = frozenset("""async bluray cache concat concatf crypto data file ftp gopher gophers hls http https
    httpproxy icecast ipfs ipns mms mmsh mmst pipe prompeg rist rtmp rtmpe rtmps rtmpt rtmpte rtmpts rtp rtsp rtsps
    sctp sftp smb srt srtp subfile tcp tls udp udplite unix zmq""".split())
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# Schemes whose sources are live by nature: a sender that never waits for its reader (RTP/RTSP, RTMP, MMS,
# UDP/SRT/RIST transports, Icecast). http(s) and tcp may as well carry a recording: decided when opened.
_LIVE_SCHEMES = frozenset("""icecast mms mmsh mmst prompeg rist rtmp rtmpe rtmps rtmpt rtmpte rtmpts rtp rtsp rtsps
    srt srtp udp udplite""".split())
# GStreamer elements that capture from a live camera or network sender (a pipeline with one is live)
_LIVE_GST_ELEMENTS = re.compile(r"(^|[!\s])(rtspsrc|v4l2src|udpsrc|srtsrc|ristsrc|rtmpsrc|rtmp2src|libcamerasrc|"
                                r"nvarguscamerasrc|nvv4l2camerasrc|aravissrc|pylonsrc|ksvideosrc|mfvideosrc|"
                                r"avfvideosrc|souphttpsrc\b[^!]*is-live=(true|1))\b")
# A scheme a camera URL starts with, then a separator that is not '://' ('rtsp//cam', 'http:/cam', 'rtsp:cam',
# 'http:\\cam'): such a source was taken for a file path, and told "no such file or folder" with its '//' folded
_MALFORMED_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)(?::/?(?!/)|//|\\\\)")
_CAMERA_URL_SCHEMES = _LIVE_SCHEMES | {"http", "https", "tcp"}
SOURCE_TYPES = ("auto", "file", "folder", "device", "url", "gstreamer", "synthetic", "genicam")


def _malformed_url_start(source: str) -> str | None:
    """The scheme and separator ``source`` starts with ('rtsp//') when it is a camera URL whose '://' is mistyped
    (:data:`_MALFORMED_URL`), else None. Only that much is told: the rest may carry a password."""
    m = _MALFORMED_URL.match(source)
    return m.group(0) if m and m.group(1).lower() in _CAMERA_URL_SCHEMES else None


# A run folder (no extension: runs/x, or an export's base name export/x) or a checkpoint given as model.path: the
# daemon runs the exported graph, and the line said only what the path is not
_RUN_SUFFIXES = ("", ".pt", ".pth", ".ckpt")
_EXPORT_FIRST = ("; the daemon runs an exported graph: give export/NAME.onnx, made from a run by "
                 "'inspector export RUN --out export/NAME'")


@dataclass(frozen=True)
class ModelSection:
    path: str = ""
    backend: Literal["auto", "onnxruntime", "tensorrt"] = "auto"
    # Thread budget (issue 17, docs/PERFORMANCE.md): ONNX Runtime intra-op threads (None: every usable core;
    # more than the usable cores: the cores, with a warning) and whether its idle threads busy-wait. Spinning is
    # on by default but stops when a run returns (spin_after_run false): inside a run it keeps the fast hand-offs
    # between operators (~10 % faster on 2 cores), between runs it would take CPU from the pipeline's own threads
    # (preprocessing, publishing).
    threads: int | None = bounded(None, ge=1, le=1024)
    spinning: bool = True
    # With spinning on: how long an idle intra-op thread spins before it sleeps (ONNX Runtime >= 1.26,
    # session.intra_op.spin_duration_us). A bounded spin keeps the fast hand-offs between a run's operators
    # and stops burning a core between runs, which the pipeline's threads need. None: ONNX Runtime's own.
    spin_us: int | None = bounded(None, ge=1, le=1_000_000)
    # With spinning on: whether idle intra-op threads go on spinning after a run returns (true: ONNX Runtime's
    # own behaviour) or stop at once until the next run (false: session.force_spinning_stop), leaving the cores
    # to the pipeline's threads between runs.
    spin_after_run: bool = False
    # Data parallelism on the CPU (issue 17, docs/PERFORMANCE.md): a batch of at least this many frames is split
    # into as many chunks, each run by its own ONNX Runtime session on its share of the threads, at the same time;
    # smaller batches run whole. One barrier per batch instead of one per operator, so the pipeline's own threads
    # taking a core for a moment no longer stall every operator. None: one per core `threads` allows (all usable
    # cores when threads is None), at most batching.max_batch; 1: off; more than the usable cores: the cores.
    # Ignored by TensorRT and the CUDA provider.
    replicas: int | None = bounded(None, ge=1, le=256)
    # Inference runs per batch size before the daemon reports ready (0: none). ONNX Runtime allocates its arena
    # and plans memory per input shape on the first two runs at that shape, each ~1.5x a steady run (measured
    # at 256 px, batch 8); warming up moves that out of the first frames of a shift (infer.py).
    warmup_runs: int = bounded(2, ge=0, le=10)
    verify: bool = True  # check the graph's sha256 against its sidecar
    cuda: Literal["cuda-python", "pycuda"] = "cuda-python"  # TensorRT: CUDA binding
    cuda_graphs: bool = False  # TensorRT: replay captured CUDA graphs per batch size
    device: int = bounded(0, ge=0, le=63)  # TensorRT: GPU index

    def validate(self, where: str) -> None:
        if not self.path:
            raise ConfigError(f"{where}.path: required (an exported .onnx or a TensorRT .plan)")
        suffix = Path(self.path).suffix.lower()
        if suffix not in (".onnx", ".plan", ".engine"):  # its card is found by name: another file's was "not found"
            raise ConfigError(f"{where}.path: {self.path} is not an exported .onnx or a TensorRT .plan/.engine "
                              f"('{suffix or 'no extension'}'){_EXPORT_FIRST if suffix in _RUN_SUFFIXES else ''}")
        self._refuse_other_backends_settings(where)

    def _refuse_other_backends_settings(self, where: str) -> None:
        """ConfigError for a setting changed from its default that the backend running this model never reads
        (the daemon hands ONNX Runtime its thread settings and TensorRT its CUDA ones, ``Daemon._default_backend``):
        ``cuda_graphs: true`` on an .onnx graph, ``threads`` on a TensorRT engine, ``spin_us`` with spinning off."""
        from inspector.backends import READ_BY, backend_name

        backend = backend_name(self.path, self.backend)  # the suffix is one of .onnx, .plan, .engine here
        why = {"tensorrt": "on a TensorRT engine (an ONNX Runtime setting)",
               "onnxruntime": "on ONNX Runtime (a TensorRT engine's setting; the model is an ONNX graph)"}[backend]
        unread = {name: why for name, readers in READ_BY.items() if backend not in readers}
        if backend == "onnxruntime" and not self.spinning:
            unread.update({name: "with spinning: false (it tunes the spinning)"
                           for name in ("spin_us", "spin_after_run")})
        refuse_unread(where, self, unread)


@dataclass(frozen=True)
class ThresholdSection:
    calibration: str | None = None  # calibration/<model>.yaml made by 'inspector calibrate'
    image: float | None = bounded(None)  # explicit image threshold: required without a calibration file, overrides it
    pixel: float | None = bounded(None)  # map threshold for defect regions (default: the image threshold)
    uncertain_band: tuple[float, float] | None = bounded(None)  # scores in [lo, hi) → "uncertain"

    def validate(self, where: str) -> None:
        refuse_empty(where, self, ("calibration",))


@dataclass(frozen=True)
class ReconnectSection:
    initial_s: float = bounded(0.5, gt=0, le=3600)
    max_s: float = bounded(30.0, gt=0, le=86400)
    factor: float = bounded(2.0, ge=1, le=100)
    jitter: float = bounded(0.2, ge=0, le=0.99)  # ± fraction of each delay
    max_attempts: int = bounded(0, ge=0, le=10**9)  # 0 = retry forever

    def validate(self, where: str) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ConfigError(f"{where}: need 0 < initial_s ≤ max_s, factor ≥ 1, 0 ≤ jitter < 1")


@dataclass(frozen=True)
class SyntheticSection:
    texture: str = "brick"  # brick | grass | gravel (scikit-image photos), a folder of images, or procedural
    size: int = bounded(256, ge=16, le=4096)  # frames are size × size
    defect_rate: float = bounded(0.1, ge=0, le=1)  # probability that a frame carries an injected defect
    kinds: tuple[str, ...] = ()  # defect kinds (empty: all kinds the generator has)
    pool: int = bounded(32, ge=1, le=4096)  # distinct good frames (and as many defective ones), each made when first drawn
    seed: int = bounded(0, ge=0, le=2**32 - 1)

    def validate(self, where: str) -> None:
        if self.texture == "":
            raise ConfigError(f"{where}.texture: empty; give brick, grass, gravel, procedural or a folder of images")
        if not 0 <= self.defect_rate <= 1:
            raise ConfigError(f"{where}.defect_rate: must be in [0, 1]")
        if self.size < 16 or self.pool < 1:
            raise ConfigError(f"{where}: size must be ≥ 16 and pool ≥ 1")
        frames_mib = 2 * self.pool * self.size * self.size * 3 / 2**20  # good + defective frames, kept once made
        if frames_mib > 1024:
            raise ConfigError(f"{where}: pool {self.pool} × {self.size}² frames would take {frames_mib:.0f} MiB "
                              f"(at most 1024 MiB); lower pool or size")


# camera settings read by some source types only: (the types, what they are said to be for)
_KIND_ONLY_SETTINGS = {"synthetic": (("synthetic",), "source: synthetic"),
                       "genicam": (("genicam",), "genicam:// cameras"),
                       "live_decoder": (("url",), "live URL cameras"),
                       "stale_after_s": (("http",), "http(s) snapshot URL cameras")}  # http: an http(s):// url


@dataclass(frozen=True)
class CameraSection:
    name: str
    source: str | int = bounded(ge=0, le=1023)  # path, folder, device index, rtsp://…, GStreamer pipeline, genicam://<id>, or "synthetic"
    type: Literal["auto", "file", "folder", "device", "url", "gstreamer", "synthetic", "genicam"] = "auto"
    mode: Literal["auto", "offline", "live"] = "auto"  # offline: block, lose nothing; live: keep newest
    loop: bool = False  # replay files/folders forever
    fps: float = bounded(0.0, ge=0, le=1000)  # pace files/folders/synthetic (0 = as fast as the pipeline takes them)
    max_frames: int = bounded(0, ge=0, le=10**12)  # stop this camera after N frames (0 = no limit; synthetic needs it offline)
    open_timeout_s: float = bounded(10.0, gt=0, le=3600)
    read_timeout_s: float = bounded(5.0, gt=0, le=3600)
    watchdog_s: float = bounded(10.0, gt=0, le=86400)  # a frame this late (after 1/fps when paced) → state 'stalled'
    # an http(s) snapshot camera answering its last picture again (304, or the same bytes) this long → state 'stale'
    stale_after_s: float = bounded(10.0, gt=0, le=86400)
    # significant bits of 16-bit frames/files that do not declare them (PNG sBIT / TIFF BitsPerSample win);
    # None: the model's setting (sidecar input.bit_depth), else the container's depth
    bit_depth: int | None = bounded(None, ge=1, le=16)
    # an 8-bit inter-coded live URL (H.264, HEVC, MPEG-4 …): 'ffmpeg' reads it through the ffmpeg program, whose
    # log tells the frames its decoder makes up after lost data (counted 'concealed', never inspected); 'opencv'
    # (one connection, a measured lag_ms, a faster open) hands them on unmarked. Wider streams: always the program
    # (why opencv stays the default, measured: docs/PERFORMANCE.md, "Live decoder")
    live_decoder: Literal["opencv", "ffmpeg"] = "opencv"
    reconnect: ReconnectSection = field(default_factory=ReconnectSection)
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)
    genicam: GenicamSection = field(default_factory=GenicamSection)  # GenICam feature settings (genicam://)

    def validate(self, where: str) -> None:
        if not _CAMERA_NAME.match(self.name):
            raise ConfigError(f"{where}.name: '{self.name}' must be 1-64 letters, digits, '_', '-' or '.'")
        if self.source == "":  # Path('') is '.': the config's own folder was read as a folder camera
            raise ConfigError(f"{where}.source: empty; give a file, folder, device index, URL, GStreamer "
                              f"pipeline, genicam://<id> or synthetic")
        if self.fps < 0 or self.max_frames < 0:
            raise ConfigError(f"{where}: fps and max_frames must be ≥ 0")
        if 0 < self.fps < _MIN_FPS:  # e.g. 1e-9: one frame in 30 years, a typo rather than a pace
            raise ConfigError(f"{where}.fps: {self.fps:g} is below one frame a day ({_MIN_FPS:.3g}); "
                              f"use 0 for no pacing")
        if min(self.open_timeout_s, self.read_timeout_s, self.watchdog_s, self.stale_after_s) <= 0:
            raise ConfigError(f"{where}: timeouts must be > 0")
        self._check_url_scheme(where)
        self._check_offline_live(where)
        self._refuse_settings_of_other_kinds(where)
        if self.bit_depth is not None and self.bit_depth not in (8, 10, 12, 14, 16):
            raise ConfigError(f"{where}.bit_depth: must be one of 8, 10, 12, 14, 16 or null, got {self.bit_depth}")

    def named_kind(self) -> str | None:
        """The camera's type where its ``type`` or ``source`` names it without asking the file system ('synthetic',
        'genicam', 'url', …, as :func:`inspector.pipeline.sources.source_type` guesses them), else None (a file,
        folder or device, told apart at start)."""
        src = str(self.source)
        if self.type != "auto":
            return self.type
        if src == "synthetic" or src.startswith("synthetic:"):
            return "synthetic"
        if src.startswith("genicam://"):
            return "genicam"
        return "url" if "://" in src and " ! " not in src else None

    def _refuse_settings_of_other_kinds(self, where: str) -> None:
        """ConfigError for a setting changed from its default that this camera's kind never reads: a ``genicam``
        exposure on a folder camera, a ``synthetic`` size on a video file, ``live_decoder: ffmpeg`` on a device.
        Each was ignored without a word while ``run --check`` said "configuration OK"."""
        kind = self.named_kind()
        scheme = str(self.source).split("://", 1)[0].lower() if kind == "url" else ""
        kinds = {kind, "http"} if scheme in ("http", "https") else {kind}  # a snapshot camera is an http(s) one
        source = f"an {scheme}:// URL" if scheme else f"of type {kind}" if kind else "a file, folder or device"
        refuse_unread(where, self, {name: f"on camera '{self.name}', whose source is {source}; it is for {what} only"
                                    for name, (read_by, what) in _KIND_ONLY_SETTINGS.items()
                                    if not kinds & set(read_by)})

    def live_by_nature(self) -> str | None:
        """What makes this camera a live sender that never waits for its reader (a device, a live URL scheme,
        a GStreamer pipeline with a live capture element), or None when its address does not say."""
        src, kind = self.source, self.type
        text = str(src)
        if kind == "device" or (kind == "auto" and (isinstance(src, int) or text.isdigit()
                                                     or text.startswith("/dev/video"))):
            return "a capture device"
        m = _URL_SCHEME.match(text)
        if kind in ("auto", "url") and m and " ! " not in text and m.group(1).lower() in _LIVE_SCHEMES:
            return f"a live stream ({m.group(1).lower()}://)"
        if kind in ("auto", "gstreamer") and "!" in text:
            element = _LIVE_GST_ELEMENTS.search(text)
            if element:
                return f"a GStreamer pipeline capturing with {element.group(2).split()[0]}"
        return None

    def _check_offline_live(self, where: str) -> None:
        """``mode: offline`` (block, lose nothing) on a live sender is refused: the camera does not wait for
        inspection, so frames back up in its, the kernel's and FFmpeg's buffers and are inspected seconds
        late while stamped as taken when read; when those buffers fill, the sender drops frames anyway.
        Nothing is gained over ``live`` and the staleness is invisible. (GenICam cameras are accepted:
        their buffers carry the host's receive time, and a triggered camera makes only the frames asked for.)"""
        what = self.live_by_nature() if self.mode == "offline" else None
        if what:
            raise ConfigError(f"{where}.mode: offline on {what}, which does not wait to be read: its frames "
                              f"would back up and be inspected late while stamped fresh; use mode: live (or auto)")

    def _check_url_scheme(self, where: str) -> None:
        """A URL camera's scheme must be one FFmpeg opens ('htp://cam/x', 'rstp://…' never open). Only the
        scheme is named: the URL may carry a password."""
        src = self.source
        if self.type in ("auto", "url") and isinstance(src, str) and (typed := _malformed_url_start(src)):
            scheme = typed.rstrip(":/\\").lower()
            raise ConfigError(f"{where}.source: '{typed}…' is a URL with a mistyped '://' (it was taken for a file "
                              f"path); write {scheme}://host/…")
        if self.type not in ("auto", "url") or not isinstance(src, str) or "://" not in src or " ! " in src \
                or src.startswith(("synthetic", "genicam://")):
            return
        m = _URL_SCHEME.match(src)
        scheme = m.group(1).lower() if m else src.split("://", 1)[0][:20]
        if not m or scheme not in _URL_SCHEMES:
            raise ConfigError(f"{where}.source: '{scheme}://' is not a URL scheme FFmpeg opens (rtsp, http, "
                              f"https, rtmp, udp, srt, …){suggest(scheme, sorted(_URL_SCHEMES))}")
        why = url_address_problem(src)
        if why:
            raise ConfigError(f"{where}.source: the {scheme}:// address: {why}")
        if scheme == "srt" and (why := srt_url_problem(src)):  # libsrt refuses it at every open: never retried
            raise ConfigError(f"{where}.source: the srt:// address's {why}")


@dataclass(frozen=True)
class BatchingSection:
    max_batch: int = bounded(8, ge=1, le=1024)
    max_wait_ms: float = bounded(5.0, ge=0, le=10_000)  # wait this long after the first frame for a fuller batch
    queue_size: int = bounded(8, ge=1, le=10_000)  # frames buffered per camera (offline sources block when full)
    # OpenCV threads (process-wide cv2.setNumThreads; 0: OpenCV's default). Preprocessing already overlaps
    # inference on its own thread, so OpenCV's pool would only compete with the backend's threads (issue 17).
    opencv_threads: int = bounded(1, ge=0, le=256)

    def validate(self, where: str) -> None:
        if self.max_batch < 1 or self.max_wait_ms < 0 or self.queue_size < 1:
            raise ConfigError(f"{where}: need max_batch ≥ 1, max_wait_ms ≥ 0, queue_size ≥ 1")


@dataclass(frozen=True)
class ThumbnailSection:
    enabled: bool = True
    max_side: int = bounded(320, ge=16, le=8192)
    quality: int = bounded(80, ge=0, le=100)  # JPEG quality


@dataclass(frozen=True)
class PostprocessSection:
    min_region_area: int = bounded(4, ge=0, le=10**8)  # in map pixels
    max_regions: int = bounded(16, ge=1, le=10_000)  # largest-peak regions kept per frame
    thumbnail: ThumbnailSection = field(default_factory=ThumbnailSection)
    heatmap: bool = True  # attach the anomaly map as an 8-bit PNG
    payloads_on_results: bool = False  # also attach payloads to v1/result events (OK frames)


@dataclass(frozen=True)
class CurveSection:
    enabled: bool = False
    server_secret_key: str = ""  # zmq certificate file with the server's secret key (zmq.auth.create_certificates)
    allowed_clients_dir: str | None = None  # folder of client public certificates; None: any client with the server key

    def validate(self, where: str) -> None:
        refuse_empty(where, self, ("allowed_clients_dir",))
        if not self.enabled and (self.server_secret_key or self.allowed_clients_dir is not None):
            # ignored without a word, the events went out in the clear to anyone while the user believed otherwise
            set_ = "server_secret_key" if self.server_secret_key else "allowed_clients_dir"
            raise ConfigError(f"{where}.{set_} is set but {where}.enabled is false, so events would go out "
                              f"unencrypted to any subscriber; set enabled: true, or leave the keys out")


@dataclass(frozen=True)
class PublishSection:
    endpoint: str = "tcp://127.0.0.1:5556"
    results: bool = False  # publish every frame on v1/result/<camera>
    sndhwm: int = bounded(1000, ge=1, le=1_000_000)  # ZeroMQ send high-water mark (messages queued per subscriber before dropping)
    queue_size: int = bounded(1024, ge=1, le=1_000_000)  # frames waiting for the publisher thread, whatever the batch size (FrameQueue; full → the batch dropped, counted)
    stats_interval_s: float = bounded(1.0, ge=0.01, le=3600)
    # ZMTP heartbeat: a subscriber's connection silent for 3 of these (a pulled cable, a switch that forgot it)
    # is dropped, its queue freed and its topics unsubscribed; 0 = off (ZeroMQ's default)
    heartbeat_s: float = bounded(5.0, ge=0, le=600)
    # before the first frame, wait until this many subscribers have subscribed (ZeroMQ drops what is published
    # before a subscription arrives, so an offline batch run would lose its first events); 0 = don't wait
    wait_for_subscribers: int = bounded(0, ge=0, le=1000)
    wait_for_subscribers_timeout_s: float = bounded(30.0, gt=0, le=86400)  # then start anyway, with a warning
    # on stop, how long the daemon waits for events still queued for a slow subscriber to leave (ZMQ_LINGER);
    # then it gives up and says so in one line. 0 = drop them at once
    drain_s: float = bounded(5.0, ge=0, le=600)
    curve: CurveSection = field(default_factory=CurveSection)
    mqtt: MqttSection = field(default_factory=MqttSection)  # bridge to the plant's MQTT broker (off by default)

    def validate(self, where: str) -> None:
        if not re.match(r"^(tcp|ipc|inproc)://.+", self.endpoint):
            raise ConfigError(f"{where}.endpoint: '{self.endpoint}' is not a ZeroMQ endpoint (tcp://host:port, ipc://path)")
        port_problem = tcp_port_problem(self.endpoint, bind=True)
        if port_problem:
            raise ConfigError(f"{where}.endpoint: '{self.endpoint}': {port_problem}")
        if self.sndhwm < 1 or self.queue_size < 1 or self.stats_interval_s <= 0:
            raise ConfigError(f"{where}: sndhwm and queue_size must be ≥ 1, stats_interval_s > 0")
        if not self.wait_for_subscribers:
            refuse_unread(where, self, {"wait_for_subscribers_timeout_s": "with wait_for_subscribers: 0 "
                                                                          "(no subscriber is waited for)"})


@dataclass(frozen=True)
class RecorderSection:
    _switch = ("enabled", "enabled: true")  # off by default (config._refuse_switched_off)
    enabled: bool = False
    dir: str = "runs/recordings"
    queue_size: int = bounded(32, ge=1, le=100_000)
    max_events: int = bounded(10000, ge=0, le=10**9)  # retention: oldest recordings deleted beyond this many events (0 = no limit)
    # … or beyond this many bytes (0 = no limit; the newest always stays; below smallest_recording_bytes: refused;
    # below one recording of a camera's first frame: a run --check warning, Daemon._check_recording_size)
    max_bytes: int = bounded(2_000_000_000, ge=0, le=10**16)
    # skip recording while the disk has less free space (more than the disk holds: refused by run --check/start)
    min_free_bytes: int = bounded(500_000_000, ge=0, le=10**16)

    def validate(self, where: str) -> None:
        refuse_empty(where, self, ("dir",))
        floor = smallest_recording_bytes()
        if 0 < self.max_bytes < floor:
            raise ConfigError(f"{where}.max_bytes: {self.max_bytes} is below the smallest recording ({floor} bytes: "
                              f"a 1-pixel PNG and the event header), so only the newest would ever be kept; "
                              f"raise it, or 0 for no limit")


def smallest_recording_bytes() -> int:
    """Bytes no recording can be below (the recorder, :mod:`inspector.pipeline.recorder`, writes a PNG frame and
    the event's JSON header): the smallest PNG (signature, IHDR, one IDAT, IEND of one pixel: 67 bytes, PNG
    spec) plus the header of an event with every field at its least (``json.dumps(…, indent=1)``, as written)."""
    import json

    from inspector.events import InspectionEvent, header_dict

    least = InspectionEvent(type="defect", camera="c", seq=0, frame_id=0, event_id="", decision="NG", score=0.0,
                            threshold=0.0, capture={}, latency_ms={}, model={})
    return SMALLEST_PNG_BYTES + len(json.dumps(header_dict(least), indent=1).encode())


SMALLEST_PNG_BYTES = 67  # a 1-pixel PNG: signature, IHDR, one IDAT, IEND (PNG spec)


@dataclass(frozen=True)
class DriftSection:
    enabled: bool = True  # needs score_stats from a calibration file
    window: int = bounded(500, ge=1, le=1_000_000)  # OK scores per camera in the rolling window
    min_samples: int = bounded(50, ge=1, le=1_000_000)
    max_shift_std: float = bounded(3.0, gt=0, le=1000)  # flag when |rolling mean − calibration mean| > this × calibration std

    def validate(self, where: str) -> None:
        if self.min_samples > self.window:
            raise ConfigError(f"{where}.min_samples: {self.min_samples} exceeds window {self.window}")


@dataclass(frozen=True)
class DaemonConfig:
    model: ModelSection
    cameras: tuple[CameraSection, ...]
    thresholds: ThresholdSection = field(default_factory=ThresholdSection)
    batching: BatchingSection = field(default_factory=BatchingSection)
    postprocess: PostprocessSection = field(default_factory=PostprocessSection)
    publish: PublishSection = field(default_factory=PublishSection)
    recorder: RecorderSection = field(default_factory=RecorderSection)
    drift: DriftSection = field(default_factory=DriftSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)  # Prometheus endpoint (off by default)
    dashboard: DashboardSection = field(default_factory=DashboardSection)  # live web page (off by default)
    summary_json: str | None = None  # write the final stats summary here on shutdown
    # Per-stage join timeout on shutdown, [1, 3600] s. At the end of an offline run each stage finishes the batch
    # in hand within it; below a second that fails on an ordinary model (a run takes up to a second on a small
    # CPU), so every run ended 'inference did not stop' with its queued frames uninspected (1e-9: 0 of 9).
    shutdown_timeout_s: float = bounded(10.0, ge=1, le=3600)

    def validate(self, where: str) -> None:
        refuse_empty(where, self, ("summary_json",))
        if not self.cameras:
            raise ConfigError(f"{where}.cameras: at least one camera is required")
        names = [c.name for c in self.cameras]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"{where}.cameras: duplicate camera name(s) {dup}")
        _refuse_shared_folders(names, f"{where}.cameras")
        if not self.publish.results:  # OK frames then send no event at all, on any transport
            refuse_unread(f"{where}.postprocess", self.postprocess,
                          {"payloads_on_results": "with publish.results: false (no v1/result event is sent)"})
        if self.drift.enabled and self.thresholds.calibration is None:  # it compares with the calibration's
            refuse_unread(f"{where}.drift", self.drift, {name: "without thresholds.calibration (drift compares "
                                                                "the scores with its good-score statistics)"
                                                         for name in ("window", "min_samples", "max_shift_std")})


def camera_folder_key(name: str) -> str:
    """The name of the recorder folder ``<recorder.dir>/<name>`` as a file system may store it.

    Case-insensitive file systems (exFAT, FAT, NTFS, SMB shares, macOS APFS/HFS+) ignore letter case, and FAT,
    exFAT (Linux by default) and Windows drop trailing dots: 'Cam', 'cam' and 'cam.' name one folder there.
    """
    return name.rstrip(".").casefold()


def _refuse_shared_folders(names: list[str], where: str) -> None:
    """ConfigError naming two cameras whose recorder folders are one on some file systems (their
    same-numbered recordings would collide there and one camera's evidence be lost)."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(camera_folder_key(name), name)
        if other != name:
            raise ConfigError(f"{where}: camera names '{other}' and '{name}' differ only in letter case or "
                              f"trailing dots, so they would share one recorder folder on case-insensitive "
                              f"disks (exFAT, SMB, macOS); rename one")


def load_daemon_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DaemonConfig:
    """Read, validate and resolve ``path`` (relative paths → against the config's folder).

    ``overrides`` are ``key.sub=value`` strings (``--set``) applied before validation.
    """
    path = Path(path)
    raw = load_yaml(path)
    other = other_kind_of_file(raw)
    if other:
        raise ConfigError(f"{path}: {other[0]}, not a daemon config: {other[1]} (start from inspector.example.yaml)")
    cfg = from_file_dict(DaemonConfig, apply_overrides(raw, overrides), path, overrides=overrides)
    resolved = resolve_paths(cfg, path.parent)
    # README "Paths": a path given on the command line is relative to the working directory, one in the file to the
    # file's folder; `run --config runs/demo/daemon.yaml --set model.path=runs/demo/x.onnx` looked for
    # runs/demo/runs/demo/x.onnx
    given = {item.split("=", 1)[0].strip() for item in overrides or () if "=" in item}
    from_cwd = resolve_paths(cfg, Path("."))
    for key in sorted(given & set(PATH_KEYS)):
        resolved = _with_dotted(resolved, key, _dotted(from_cwd, key))
    return resolved


def other_kind_of_file(raw) -> tuple[str, str] | None:
    """(what another of inspector's files given as the daemon config is, where it goes instead), None when it
    is none of them. ``run --config calibration/x.yaml`` said "unknown key 'schema_version' (did you mean
    'summary_json'?)", a run's config.yaml "unknown key 'data'": neither told the newcomer what was wrong."""
    if not isinstance(raw, dict) or "cameras" in raw:
        return None
    if "image_threshold" in raw:
        return "a calibration file (made by 'inspector calibrate')", "name it in one's thresholds.calibration"
    if "graphs" in raw or ("input" in raw and "outputs" in raw):
        return "a model card (made by 'inspector export')", "name its .onnx graph in one's model.path"
    if "train" in raw or "data" in raw:
        return "a training config", "the daemon runs the exported graph, named in one's model.path"
    return None


class settings_of:  # noqa: N801 - used as a context manager, like contextlib's
    """Errors raised inside about a setting of the daemon config ``path`` (``model.path: … not found``, raised by
    the daemon as it starts or checks) said of where the setting came from, as the loader says its own
    (:func:`inspector.config.from_file`): ``daemon.yaml: model.path: …``, or ``--set model.path: …`` for a value
    given with ``--set``. Without the file a plant with several configs (one per line) could not tell which one
    was wrong. The error keeps its class and ``field``; one about no setting (a camera that fails to open, a
    model file's own problem: ``export/x.onnx: …``) goes on as it is. Reusable: ``with`` it as often as needed."""

    def __init__(self, path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                 cameras: list[str] | tuple[str, ...] = ()) -> None:
        self.path, self.overrides, self.cameras = str(path), overrides, tuple(cameras)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, InspectorError):
            told = said_of_file(str(exc), self.path, self.overrides, self.cameras)
            if told is not None:
                InspectorError.__init__(exc, told, field=exc.field)
        return False  # the error goes on, told of its file


def said_of_file(message: str, path: str, overrides: list[str] | tuple[str, ...] = (),
                 cameras: list[str] | tuple[str, ...] = ()) -> str | None:
    """``message`` about a setting of the daemon config ``path`` said of where the setting came from (None: it is
    about no setting, or already says where): one that starts with a key path (``recorder.dir: …``) as
    :func:`inspector.config.from_file` says it (``daemon.yaml: recorder.dir: …``, ``--set recorder.dir: …``);
    one that starts ``camera 'NAME': `` of camera ``cameras[i]`` as ``daemon.yaml: cameras[i], camera 'NAME': …``
    (its source, its reconnect settings are there; ``camera 'NAME':`` kept, so a search for its lines finds them)."""
    if message.startswith((f"{path}: ", "--set ")):
        return None
    camera = re.match(r"camera '([^']*)': ", message)
    if camera and camera[1] in cameras:
        message = f"cameras[{cameras.index(camera[1])}], camera '{camera[1]}': {message[camera.end():]}"
    elif not _names_a_setting(message):
        return None
    return from_file(message, path, overrides)


class config_named_records(logging.Filter):  # noqa: N801 - used as a context manager, like settings_of
    """While ``with``-ed: each warning or error the daemon logs about a setting of the config ``path`` names the
    file first, as its start-up errors do (:class:`settings_of`): ``daemon.yaml: recorder.dir: cannot use …``,
    ``daemon.yaml: cameras[1], camera 'b': reconnecting (…)``, ``--set metrics.listen: …`` for a value given
    with ``--set``. With three daemons on one box (a config per line) their log lines said ``recorder.dir:`` or
    ``camera 'a':`` alone, and the engineer could not tell which file to fix. A record is about a setting when
    its message starts with a key path of the daemon config (``recorder.min_free_bytes: …``, ``recorder: …``)
    or with ``camera 'NAME':`` of a configured camera (:func:`said_of_file`). A handler filter of the root
    logger's handlers (every line written goes through one), so the record stays one line; inspector's records
    only, warning and up."""

    def __init__(self, path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                 cameras: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__()
        self.path, self.overrides, self.cameras = str(path), tuple(overrides), tuple(cameras)
        self._handlers: list[logging.Handler] = []

    def __enter__(self) -> "config_named_records":
        self._handlers = [h for h in logging.getLogger().handlers if self not in h.filters]
        for handler in self._handlers:
            handler.addFilter(self)
        return self

    def __exit__(self, *exc) -> bool:
        for handler in self._handlers:
            handler.removeFilter(self)
        return False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and record.name.split(".", 1)[0] == "inspector":
            told = said_of_file(record.getMessage(), self.path, self.overrides, self.cameras)
            if told is not None:
                record.msg, record.args = told, None
        return True


_SETTINGS = frozenset(f.name for f in dataclasses.fields(DaemonConfig))


def _names_a_setting(message: str) -> bool:
    """Whether ``message`` starts with a key path of the daemon config (``publish.mqtt.box: …``, ``cameras: …``)."""
    key = message.split(": ", 1)[0]
    return re.split(r"[.\[]", key, maxsplit=1)[0] in _SETTINGS and " " not in key


# the settings resolve_paths resolves (cameras' sources are in a list, which --set cannot reach)
PATH_KEYS = ("model.path", "thresholds.calibration", "publish.curve.server_secret_key",
             "publish.curve.allowed_clients_dir", "publish.mqtt.password_file", "publish.mqtt.ca_file",
             "publish.mqtt.state_file", "dashboard.token_file", "metrics.token_file", "recorder.dir", "summary_json")


def _dotted(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _with_dotted(cfg, key: str, value):
    head, _, rest = key.partition(".")
    return dataclasses.replace(cfg, **{head: _with_dotted(getattr(cfg, head), rest, value) if rest else value})


def daemon_config(data: dict, base_dir: str | Path = ".", where: str = "config") -> DaemonConfig:
    """Build a config from a dict (tests, benchmarks, the demo)."""
    return resolve_paths(from_dict(DaemonConfig, data, where=where), Path(base_dir))


def _resolve(base: Path, value: str | None, key: str) -> str | None:
    if value is None or value == "":
        return value
    p = expanded_path(value, key)
    return str(p if p.is_absolute() else base / p)


def _looks_like_path(cam: CameraSection) -> bool:
    if cam.type in ("file", "folder"):
        return True
    if cam.type != "auto" or not isinstance(cam.source, str):
        return False
    s = cam.source
    return not (s.isdigit() or "://" in s or "!" in s or s.startswith("synthetic"))


def resolve_paths(cfg: DaemonConfig, base: Path) -> DaemonConfig:
    rep = dataclasses.replace

    def at(value: str | None, key: str) -> str | None:
        return _resolve(base, value, key)

    cams = tuple(rep(c, source=at(c.source, f"camera {c.name!r} source")) if _looks_like_path(c) else c
                 for c in cfg.cameras)
    curve, mqtt = cfg.publish.curve, cfg.publish.mqtt
    curve = rep(curve, server_secret_key=at(curve.server_secret_key, "publish.curve.server_secret_key"),
                allowed_clients_dir=at(curve.allowed_clients_dir, "publish.curve.allowed_clients_dir"))
    mqtt = rep(mqtt, password_file=at(mqtt.password_file, "publish.mqtt.password_file"),
               ca_file=at(mqtt.ca_file, "publish.mqtt.ca_file"), state_file=at(mqtt.state_file, "publish.mqtt.state_file"))
    return rep(
        cfg,
        model=rep(cfg.model, path=at(cfg.model.path, "model.path")),
        thresholds=rep(cfg.thresholds, calibration=at(cfg.thresholds.calibration, "thresholds.calibration")),
        cameras=cams,
        publish=rep(cfg.publish, curve=curve, mqtt=mqtt),
        dashboard=rep(cfg.dashboard, token_file=at(cfg.dashboard.token_file, "dashboard.token_file")),
        metrics=rep(cfg.metrics, token_file=at(cfg.metrics.token_file, "metrics.token_file")),
        recorder=rep(cfg.recorder, dir=at(cfg.recorder.dir, "recorder.dir")),
        summary_json=at(cfg.summary_json, "summary_json"),
    )
