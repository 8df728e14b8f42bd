"""Frame sources: video files, image folders, V4L2 devices, RTSP/HTTP streams, GStreamer, synthetic.

A source is opened, read frame by frame, and closed, all from its camera's
capture thread. :meth:`Source.read` grabs, stamps ``time.monotonic_ns()`` right
after the grab, then decodes, and returns a :class:`Grabbed`; it returns
``None`` at the end of a finite source and raises :class:`SourceError` when a
live source fails (the capture worker then reconnects). A frame that cannot be
decoded comes back as a ``Grabbed`` with ``image=None`` and an ``error``: the
worker counts and skips it. Factory cameras (GenICam via harvesters, aravis,
pypylon …) fit the same small interface.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.errors import DataError, SourceError
from inspector.pipeline.config import CameraSection, SyntheticSection

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".mjpeg"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


@dataclass
class Grabbed:
    """One read from a source: the image (None if it could not be decoded) and its grab time."""

    image: np.ndarray | None
    t_ns: int
    t_utc: float
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Source:
    """Base class. ``live``: a real-time source (keep newest, reconnect); ``finite``: it can end."""

    kind = "source"
    live = False
    finite = False

    def __init__(self, camera: CameraSection) -> None:
        self.camera = camera

    def open(self) -> None:
        """Open (or re-open) the source; raise SourceError naming the camera on failure."""

    def read(self) -> Grabbed | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source (idempotent)."""

    def describe(self) -> str:
        return f"{self.kind} {self.camera.source}"

    def _error(self, what: str) -> SourceError:
        return SourceError(f"camera '{self.camera.name}': {what}")


def _stamp() -> tuple[int, float]:
    return time.monotonic_ns(), time.time()


# ------------------------------------------------------------------------------------------ OpenCV
class CvSource(Source):
    """Anything cv2.VideoCapture opens: files, devices, URLs (FFmpeg), GStreamer pipelines."""

    def __init__(self, camera: CameraSection, kind: str, target, api: int, live: bool, finite: bool) -> None:
        super().__init__(camera)
        self.kind, self._target, self._api, self.live, self.finite = kind, target, api, live, finite
        self._cap: cv2.VideoCapture | None = None
        self._index = 0

    def _params(self) -> list[int]:
        if self.kind not in ("url", "device"):
            return []
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.camera.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.camera.read_timeout_s * 1000)]

    def open(self) -> None:
        self.close()
        if self.kind == "url" and str(self._target).startswith("rtsp") \
                and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
        try:
            cap = cv2.VideoCapture(self._target, self._api, self._params())
        except cv2.error as exc:
            raise self._error(f"cannot open {self.describe()} ({str(exc).strip().splitlines()[-1]})") from None
        if not cap.isOpened():
            cap.release()
            raise self._error(f"cannot open {self.describe()}")
        self._cap = cap
        self._index = 0

    def read(self) -> Grabbed | None:
        if self._cap is None:
            raise self._error("source is not open")
        if not self._cap.grab():
            if self.finite:
                if not self.camera.loop:
                    return None
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._index = 0
                if not self._cap.grab():
                    self.open()  # some containers cannot seek: reopen
                    if not self._cap.grab():
                        return None
            else:
                raise self._error(f"no frame from {self.describe()} within {self.camera.read_timeout_s:g} s")
        t_ns, t_utc = _stamp()
        meta = {"index": self._index, "pos_msec": float(self._cap.get(cv2.CAP_PROP_POS_MSEC))}
        self._index += 1
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            return Grabbed(None, t_ns, t_utc, meta, error="frame could not be decoded")
        return Grabbed(image, t_ns, t_utc, meta)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


# ------------------------------------------------------------------------------------------ folders
class FolderSource(Source):
    """Image files of a folder in name order; unreadable files are reported as corrupt frames."""

    kind = "folder"
    finite = True

    def __init__(self, camera: CameraSection) -> None:
        super().__init__(camera)
        self._files: list[Path] = []
        self._pos = 0

    def open(self) -> None:
        folder = Path(str(self.camera.source))
        if not folder.is_dir():
            raise self._error(f"{folder}: folder not found")
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise self._error(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._pos = 0

    def read(self) -> Grabbed | None:
        if self._pos >= len(self._files):
            if not self.camera.loop:
                return None
            self._pos = 0
        path = self._files[self._pos]
        meta = {"index": self._pos, "file": path.name}
        self._pos += 1
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            t_ns, t_utc = _stamp()
            return Grabbed(None, t_ns, t_utc, meta, error=f"{path.name}: cannot read ({exc.strerror or exc})")
        t_ns, t_utc = _stamp()  # the "grab": the encoded frame is in memory
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if image is None:
            return Grabbed(None, t_ns, t_utc, meta, error=f"{path.name}: cannot decode image")
        return Grabbed(image, t_ns, t_utc, meta)


# ------------------------------------------------------------------------------------------ synthetic
class SyntheticSource(Source):
    """Texture frames with injected defects at ``defect_rate`` (for demos, tests and benchmarks).

    A pool of good and defective frames is generated once at open (real
    scikit-image textures and the defect generators of :mod:`inspector.data.synth`;
    a procedural texture when scikit-image is absent), then frames are drawn from
    it, so the source costs nothing per frame. ``meta["injected"]`` tells which
    frames carry a defect (the ground truth).
    """

    kind = "synthetic"

    def __init__(self, camera: CameraSection) -> None:
        super().__init__(camera)
        self.finite = camera.max_frames > 0
        self._good: list[np.ndarray] = []
        self._bad: list[tuple[np.ndarray, str]] = []
        self._index = 0
        self._rng = np.random.default_rng(camera.synthetic.seed)

    def open(self) -> None:
        if self._good:
            return
        self._good, self._bad = make_synthetic_pool(self.camera.synthetic, self.camera.name)

    def read(self) -> Grabbed | None:
        cfg = self.camera.synthetic
        if self._bad and self._rng.random() < cfg.defect_rate:
            image, kind = self._bad[int(self._rng.integers(len(self._bad)))]
        else:
            image, kind = self._good[int(self._rng.integers(len(self._good)))], None
        t_ns, t_utc = _stamp()
        meta = {"index": self._index, "injected": kind}
        self._index += 1
        return Grabbed(image, t_ns, t_utc, meta)

    def describe(self) -> str:
        s = self.camera.synthetic
        return f"synthetic {s.texture} {s.size}x{s.size} defect_rate {s.defect_rate:g}"


def procedural_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A woven/grainy grey texture (float32 0..255) that needs no scikit-image."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    weave = 18 * np.sin(xx / 3.1) * np.sin(yy / 3.7) + 10 * np.sin((xx + yy) / 11.0)
    grain = cv2.GaussianBlur(rng.normal(0, 12, (size, size)).astype(np.float32), (0, 0), 1.2)
    return np.clip(128 + weave + grain, 0, 255)


def make_synthetic_pool(cfg: SyntheticSection, camera: str) -> tuple[list[np.ndarray], list[tuple[np.ndarray, str]]]:
    """(good BGR frames, [(defective BGR frame, defect kind)]) for a synthetic camera."""
    from inspector.data import synth

    rng = np.random.default_rng(cfg.seed)
    kinds = tuple(cfg.kinds) or synth.DEFECT_KINDS
    bad_kinds = [k for k in kinds if k not in synth.DEFECT_KINDS]
    if bad_kinds:
        raise SourceError(f"camera '{camera}': unknown defect kind(s) {bad_kinds}; choose from {synth.DEFECT_KINDS}")
    sources = None
    if cfg.texture != "procedural":
        try:
            sources = synth.load_sources(cfg.texture)
        except DataError as exc:
            if cfg.texture not in synth.BUILTIN_TEXTURES:
                raise SourceError(f"camera '{camera}': {exc}") from None
            log.warning("camera '%s': %s; using a procedural texture instead", camera, exc)
    if sources is None:
        gray = procedural_texture(2 * cfg.size, rng)
        sources = [np.repeat(gray[:, :, None], 3, axis=2)]
    good = [synth.good_image(sources, cfg.size, rng) for _ in range(cfg.pool)]
    bad = []
    if cfg.defect_rate > 0:
        for i in range(cfg.pool):
            kind = kinds[i % len(kinds)]
            image, _mask = synth.make_defect(good[i], kind, rng)
            bad.append((cv2.cvtColor(image, cv2.COLOR_RGB2BGR), kind))
    return [cv2.cvtColor(g, cv2.COLOR_RGB2BGR) for g in good], bad


# ------------------------------------------------------------------------------------------ factory
def source_type(camera: CameraSection) -> str:
    """The source type of ``camera`` (explicit ``type`` or guessed from ``source``)."""
    if camera.type != "auto":
        return camera.type
    src = camera.source
    if isinstance(src, int) or (isinstance(src, str) and src.isdigit()) or str(src).startswith("/dev/video"):
        return "device"
    src = str(src)
    if src == "synthetic" or src.startswith("synthetic:"):
        return "synthetic"
    if "://" in src:
        return "url"
    if "!" in src:
        return "gstreamer"
    path = Path(src)
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        return "file"
    raise SourceError(f"camera '{camera.name}': cannot tell what source '{src}' is (no such file or folder; "
                      f"set type: file|folder|device|url|gstreamer|synthetic)")


def make_source(camera: CameraSection) -> Source:
    """The :class:`Source` for ``camera``; raises SourceError for sources this machine cannot open."""
    kind = source_type(camera)
    src = camera.source
    if kind == "file":
        if not Path(str(src)).is_file():
            raise SourceError(f"camera '{camera.name}': video file {src} not found")
        return CvSource(camera, "file", str(src), cv2.CAP_ANY, live=False, finite=True)
    if kind == "folder":
        return FolderSource(camera)
    if kind == "synthetic":
        return SyntheticSource(camera)
    if kind == "device":
        target = int(src) if isinstance(src, int) or str(src).isdigit() else str(src)
        return CvSource(camera, "device", target, cv2.CAP_ANY, live=True, finite=False)
    if kind == "url":
        return CvSource(camera, "url", str(src), cv2.CAP_FFMPEG, live=True, finite=False)
    if kind == "gstreamer":
        if not has_gstreamer():
            raise SourceError(f"camera '{camera.name}': this OpenCV build has no GStreamer support "
                              f"(pip wheels never do); build OpenCV with GStreamer or use an rtsp:// URL")
        return CvSource(camera, "gstreamer", str(src), cv2.CAP_GSTREAMER, live=True, finite=False)
    raise SourceError(f"camera '{camera.name}': unknown source type '{kind}'")


def is_live(camera: CameraSection, source: Source) -> bool:
    """Live: keep only the newest frame. Offline: block and lose nothing."""
    if camera.mode != "auto":
        return camera.mode == "live"
    if source.kind == "synthetic":
        return camera.fps > 0
    return source.live
