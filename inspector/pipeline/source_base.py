"""What every frame source is: :class:`Source` (opened, read frame by frame, closed from its camera's capture
thread), the :class:`Grabbed` read it returns, and :class:`ChosenAtOpen`, a source whose kind is known only
once it is opened. The sources themselves are in :mod:`inspector.pipeline.sources` (files, folders, devices,
FFmpeg, synthetic) and :mod:`inspector.pipeline.http_sources` (http(s) cameras); see the former for the rules
they share.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.data.images import FrameLayout
from inspector.errors import SourceError
from inspector.pipeline.config import CameraSection
from inspector.redact import redact

log = logging.getLogger("inspector.pipeline.sources")  # every source module logs as one

@dataclass
class Grabbed:
    """One read from a source: the image (None if it could not be decoded) and its grab time."""

    image: np.ndarray | None
    t_ns: int
    t_utc: float
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str = "corrupt"  # counter key when image is None
    # how the source's decoder gave the frame before it was made uint8 BGR (size, grey or colour, depth), where
    # ``image`` no longer tells it; None: ``image`` is as decoded (the capture worker then reads it from image)
    layout: FrameLayout | None = None


class SourceChanged(SourceError):
    """A looping file was replaced or truncated under the source: reopen it (transient)."""


class SourceWaiting(SourceError):
    """The source cannot open yet because its file is still being written (a recording whose index comes last):
    the capture worker polls it again shortly, as a folder camera waits for a picture being copied in, without
    spending a reconnect attempt (``reconnect.max_attempts``) or backing off (transient)."""


class SourceMisconfigured(SourceError):
    """The camera answered that this camera's settings are wrong: a login refused (401, 403), a path it does
    not have (404). Transient (the camera's side may change: a relay answers 404 until its camera publishes, a
    password changed back), but no reopen at the back-off can fix it: the capture worker says it once as a
    configuration error and retries at ``reconnect.max_s``, quietly (:meth:`CaptureWorker._misconfigured`)."""


# Answers of an RTSP (RFC 2326 §7.1.1) or HTTP (RFC 9110 §15.5) server that name the request, not the moment:
# 401 Unauthorized, 403 Forbidden, 404 Not Found. 5xx, 453 Not Enough Bandwidth, 454 Session Not Found and the
# like pass, and stay ordinary transient errors.
MISCONFIGURED_CODES = frozenset({401, 403, 404})


class Source:
    """Base class. ``live``: a real-time source (keep newest, reconnect); ``finite``: it can end;
    ``one_size``: its frames share one size unless the camera itself changed (a stream, not a folder)."""

    kind = "source"
    live = False
    finite = False
    one_size = False
    buffered = True  # a live source whose frames queue up while unread (a stream): fps pacing drains it (skip)

    def __init__(self, camera: CameraSection, bit_depth: int | None = None) -> None:
        self.camera = camera
        # significant bits of frames that do not say (camera setting, else the model's sidecar)
        self.bit_depth = camera.bit_depth if camera.bit_depth is not None else bit_depth

    def open(self) -> None:
        """Open (or re-open) the source; raise SourceError naming the camera on failure."""

    def read(self) -> Grabbed | None:
        raise NotImplementedError

    def skip(self) -> bool:
        """Live sources: grab the next frame without decoding it (pacing); False at the end."""
        return self.read() is not None

    def close(self) -> None:
        """Release the source (idempotent)."""

    def describe(self) -> str:
        """What the source is, for people (logs, status events, --check): passwords in its address masked."""
        return redact(f"{self.kind} {self.camera.source}")

    def _error(self, what: str, permanent: bool = False, misconfigured: bool = False) -> SourceError:
        """SourceError naming the camera; :class:`SourceMisconfigured` with ``misconfigured``."""
        # the message reaches logs, status events and the error line: never the address's password
        if misconfigured:
            return SourceMisconfigured(redact(f"camera '{self.camera.name}': {what}"))
        return SourceError(redact(f"camera '{self.camera.name}': {what}"), permanent=permanent)


_FFMPEG_VERBOSE = 40  # AV_LOG_VERBOSE: from here FFmpeg's own lines (HTTP request headers, URLs) name credentials
_warned_ffmpeg_log: set[str] = set()


def warn_if_ffmpeg_logs_secrets(url: str, camera: str) -> None:
    """Once per camera: warn when the user's OPENCV_FFMPEG_LOGLEVEL (an AV_LOG_* number) makes FFmpeg print, to
    stderr by itself, the address of a camera whose URL holds credentials: those lines bypass inspector's
    redaction (measured: at 48, AV_LOG_DEBUG, an http:// camera's password is printed). The level is the
    user's explicit choice for debugging, so it is kept."""
    try:
        level = int(os.environ.get("OPENCV_FFMPEG_LOGLEVEL", ""))
    except ValueError:
        return
    if level >= _FFMPEG_VERBOSE and redact(url) != url and camera not in _warned_ffmpeg_log:
        _warned_ffmpeg_log.add(camera)
        log.warning("camera '%s': OPENCV_FFMPEG_LOGLEVEL=%d makes FFmpeg print this camera's address with its "
                    "credentials to stderr, which inspector cannot mask; unset it (or use ≤ 32) outside debugging",
                    camera, level)



class ChosenAtOpen(Source):
    """A source that learns what it reads only when it opens it (an http(s) URL: still pictures, an MJPEG
    stream or a video, by the answer): :meth:`_choose` opens the :class:`Source` that reads it this time, and
    reads, skips and closes go to that one until the next open. ``live``, ``finite`` and ``one_size`` are the
    wrapper's own (the capture worker reads them before the first open); ``buffered`` is the chosen one's."""

    def __init__(self, camera: CameraSection, bit_depth: int | None = None) -> None:
        super().__init__(camera, bit_depth)
        self._chosen: Source | None = None

    def _choose(self) -> Source:
        """The source that reads this camera now, opened; SourceError naming the camera when there is none."""
        raise NotImplementedError

    @property
    def buffered(self) -> bool:
        return self._chosen is not None and self._chosen.buffered

    def open(self) -> None:
        self.close()
        self._chosen = self._choose()

    def read(self) -> Grabbed | None:
        if self._chosen is None:
            raise self._error("source is not open")
        return self._chosen.read()

    def skip(self) -> bool:
        if self._chosen is None:
            raise self._error("source is not open")
        return self._chosen.skip()

    def close(self) -> None:
        if self._chosen is not None:
            self._chosen.close()
            self._chosen = None


def stamp_now() -> tuple[int, float]:
    """(monotonic ns, UTC s) now: a frame's grab time."""
    return time.monotonic_ns(), time.time()
