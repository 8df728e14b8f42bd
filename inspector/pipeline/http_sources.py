"""http(s) cameras: still pictures, MJPEG streams, or anything else FFmpeg plays, told apart by what the URL
answers when it is opened (:class:`SnapshotSource`, a :class:`~inspector.pipeline.source_base.ChosenAtOpen`).

An MJPEG stream is drained on a thread of its own, its newest picture stamped when it arrived; still pictures
are fetched one per read. Both are decoded by :func:`inspector.data.images.decode_image`, the decoder training,
evaluation, calibration and ``predict`` use (never by FFmpeg). Any other answer goes to the source the factory
gave for it (:func:`inspector.pipeline.sources.make_source`: FFmpeg's).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import select
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from inspector.data.images import IMAGE_EXTENSIONS, ImageRejected, decode_image_layout
from inspector.pipeline.config import CameraSection
from inspector.pipeline.source_base import (MISCONFIGURED_CODES, ChosenAtOpen, Grabbed, Source, stamp_now,
                                            warn_if_ffmpeg_logs_secrets)

log = logging.getLogger("inspector.pipeline.sources")  # every source module logs as one

_SNAPSHOT_MAX_BYTES = 64 * 2**20  # one still picture from a snapshot URL; more is a stream or a fault
_MJPEG_MAX_LINE = 64 * 1024  # one header line of an MJPEG part (a JPEG's own lines are read in these pieces)
# Parts arriving back to back (a burst) are handed over only once the reader caught up with them, at the latest
# this long after the first of them: a stream always faster than its reader still gets its pictures taken
_BURST_HOLD_S = 0.2
_STILL_SUFFIXES = {s.lower() for s in IMAGE_EXTENSIONS}
# Answers that are never a still picture: a camera's login or error page comes with status 200. Decoded as
# pictures, each was a corrupt frame and the next GET was sent at once, hundreds a second, for ever; as an error
# the camera reconnects with back-off. (Some cameras mislabel a JPEG as application/octet-stream: not refused.)
_NOT_PICTURES = frozenset({"text", "application/json", "application/xml", "application/xhtml+xml"})


class _AuthStaysOnHost(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but drops the Authorization header when one leads to another host, as ``requests``
    does (``Session.rebuild_auth``): urllib forwards every header but the content ones, so a camera's password
    would follow a redirect anywhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).hostname != urllib.parse.urlsplit(req.full_url).hostname:
            new.remove_header("Authorization")
        return new


_SNAPSHOT_OPENER = urllib.request.build_opener(_AuthStaysOnHost)


class MjpegStream:
    """The body of an MJPEG-over-HTTP answer (``multipart/x-mixed-replace``, RFC 2046 §5.1) read on its own
    thread as fast as the camera sends it; only the newest picture is kept, stamped when it had arrived.

    Read by FFmpeg instead, a reader slower than the camera (decoding, inference, pacing) left the parts in
    the socket and FFmpeg's buffers and got them oldest first, each stamped fresh when grabbed: the lag grew
    without a trace (FFmpeg's mpjpeg demuxer has no timestamps; it invents them from a guessed 25 fps). Here
    the socket is always drained, only the picture taken is decoded, and the ones it replaced are counted.
    """

    def __init__(self, response, boundary: str) -> None:
        self._response = response
        self._boundary = boundary.strip().strip('"').lstrip("-").encode("latin-1")
        self._at_delimiter = False  # the last body without a Content-Length ended on the next delimiter
        self._cond = threading.Condition()
        self._newest: tuple[bytes, int, float] | None = None
        self._settled = False  # _newest is the last part of what had arrived (see _caught_up)
        self._burst_since: float | None = None  # when the first part not yet handed over arrived (monotonic s)
        self._replaced = 0  # parts that arrived and were replaced before they were taken
        self._failed: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mjpeg-reader", daemon=True)
        self._thread.start()

    def _is_delimiter(self, line: bytes) -> bool:
        return line.startswith(b"--") and line.rstrip(b"\r\n").lstrip(b"-").rstrip(b"-") == self._boundary

    def _next_part(self) -> bytes | None:
        """The next part's body (a JPEG), None at the end of the answer. ValueError for a malformed part."""
        readline = self._response.readline
        if not self._at_delimiter:
            line = readline(_MJPEG_MAX_LINE)
            while line and not self._is_delimiter(line):  # a preamble or the CRLF after the last body
                line = readline(_MJPEG_MAX_LINE)
            if not line:
                return None
        self._at_delimiter, length = False, None
        for line in iter(lambda: readline(_MJPEG_MAX_LINE), b""):
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        else:
            return None
        if length is not None:
            if length > _SNAPSHOT_MAX_BYTES:
                raise ValueError(f"a part of {length:,} bytes (at most {_SNAPSHOT_MAX_BYTES:,})")
            return self._response.read(length)
        return self._read_to_delimiter()

    def _read_to_delimiter(self) -> bytes:
        """A body without Content-Length: everything up to the next delimiter line (its CRLF not included)."""
        chunks, size = [], 0
        for line in iter(lambda: self._response.readline(_MJPEG_MAX_LINE), b""):
            if self._is_delimiter(line):
                self._at_delimiter = True
                break
            chunks.append(line)
            size += len(line)
            if size > _SNAPSHOT_MAX_BYTES:
                raise ValueError(f"a part over {_SNAPSHOT_MAX_BYTES:,} bytes without a delimiter")
        return b"".join(chunks).removesuffix(b"\n").removesuffix(b"\r")

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._next_part()
                if data is None:
                    raise EOFError("the camera ended its stream")
                t_ns, t_utc = stamp_now()  # the picture is complete in memory: its arrival
                settled = self._caught_up(t_ns / 1e9)
                with self._cond:
                    self._replaced += self._newest is not None
                    self._newest, self._settled = (data, t_ns, t_utc), settled
                    if settled:
                        self._cond.notify()
        except (OSError, ValueError, EOFError, http.client.HTTPException, AttributeError) as exc:
            # AttributeError: http.client's response after its socket was shut down under it (close)
            with self._cond:
                self._failed = f"{exc or type(exc).__name__}"
                self._cond.notify()
        finally:
            self._response.close()  # here, not in close(): http.client's response is not thread-safe

    def _caught_up(self, now_s: float) -> bool:
        """Whether the part just read is the newest that has arrived: nothing more waits in the socket (or the
        parts have come back to back for :data:`_BURST_HOLD_S`). A camera that sends in bursts (a network or
        encoder buffering 1.5 s) had its reader woken by the first part of each burst: the picture inspected
        was 1.4 s old while the 36 newer ones were already in the socket, each taken as the 'newest'."""
        fp = getattr(self._response, "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
        try:
            more = sock is not None and (bool(getattr(sock, "pending", lambda: 0)())  # TLS: decrypted, unread
                                         or bool(select.select([sock], [], [], 0)[0])
                                         or (not hasattr(sock, "pending") and _buffered(fp, sock)))
        except (OSError, ValueError):  # closed under us: the next read says why
            more = False
        if not more:
            self._burst_since = None
            return True
        if self._burst_since is None:
            self._burst_since = now_s
        return now_s - self._burst_since >= _BURST_HOLD_S

    def take(self, timeout_s: float) -> tuple[bytes, int, float, int]:
        """(JPEG bytes, arrival monotonic ns, arrival UTC s, pictures replaced since the last take): the newest
        picture once the reader caught up with what had arrived (:meth:`_caught_up`).
        Raises EOFError with the reason when the stream failed or nothing came within ``timeout_s``."""
        with self._cond:
            if not self._cond.wait_for(lambda: (self._newest is not None and self._settled) or self._failed,
                                       timeout_s):
                raise EOFError(f"no frame within {timeout_s:g} s")
            if self._newest is None:
                raise EOFError(self._failed)
            (data, t_ns, t_utc), replaced = self._newest, self._replaced
            self._newest, self._replaced = None, 0
            return data, t_ns, t_utc, replaced

    def close(self) -> None:
        self._stop.set()
        sock = getattr(getattr(getattr(self._response, "fp", None), "raw", None), "_sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in recv (close alone does not)
        except OSError:
            pass


def _buffered(fp, sock: socket.socket) -> bool:
    """Whether the reader ``fp`` (a BufferedReader over the plain TCP socket ``sock``) holds more of the stream
    than the line break that ends the part just read: the parts of a burst that came in the same recv as that
    one (8 KiB: a dozen small JPEGs). Peeked with the socket non-blocking for the moment (an empty buffer then
    reads nothing rather than waiting)."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return bool(fp.peek(1).strip(b"\r\n"))
    finally:
        sock.settimeout(timeout)


class _HttpPictures(Source):
    """What the http(s) sources that decode pictures here share: the address without its credentials, which
    go as HTTP basic authentication, one GET, a still picture's body (over :data:`_SNAPSHOT_MAX_BYTES`
    refused, never read whole into memory) and its decoding by :func:`inspector.data.images.decode_image`."""

    kind = "url"
    live = True
    one_size = True
    buffered = False  # a picture is taken when asked for (snapshots) or the newest kept (MJPEG): no backlog

    def __init__(self, camera: CameraSection, bit_depth: int | None = None) -> None:
        super().__init__(camera, bit_depth)
        parts = urllib.parse.urlsplit(str(camera.source))
        self._url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._headers = {}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._index = 0

    def answer(self, timeout_s: float, validators: dict[str, str] | None = None):
        """The camera's answer (headers read, body not); SourceError (transient) naming the camera if none,
        SourceMisconfigured for a 401, 403 or 404 (this camera's settings: said once, retried slowly).
        With ``validators`` (If-None-Match / If-Modified-Since, RFC 9110 §13.1) None when the camera answers
        304 Not Modified: the picture it gave last."""
        request = urllib.request.Request(self._url, headers=self._headers | (validators or {}))
        try:
            return _SNAPSHOT_OPENER.open(request, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and validators:
                exc.close()
                return None
            raise self._error(f"{self.describe()}: HTTP {exc.code} {exc.reason}",
                              misconfigured=exc.code in MISCONFIGURED_CODES) from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise self._error(f"{self.describe()}: {getattr(exc, 'reason', exc)}") from None

    def picture(self, response) -> bytes:
        """The body of a still-picture answer; SourceError (transient) when it is too large or cut off, or
        declared as text (:data:`_NOT_PICTURES`)."""
        declared = response.headers.get_content_type()
        if declared.partition("/")[0] in _NOT_PICTURES or declared in _NOT_PICTURES:
            raise self._error(f"{self.describe()}: answered {declared}, not a picture (a login or error page? "
                              f"check the URL and its user and password)")
        try:
            data = response.read(_SNAPSHOT_MAX_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise self._error(f"{self.describe()}: {exc}") from None
        if len(data) > _SNAPSHOT_MAX_BYTES:
            raise self._error(f"{self.describe()}: answered more than {_SNAPSHOT_MAX_BYTES:,} bytes, "
                              f"not one still picture")
        return data

    def _decode(self, data: bytes, t_ns: int, t_utc: float, meta: dict) -> Grabbed:
        meta = {"index": self._index} | meta
        self._index += 1
        try:
            image, layout = decode_image_layout(data, self.describe(), self.bit_depth, order="BGR",
                                                warn_key=f"camera {self.camera.name}")
        except ImageRejected as exc:
            return Grabbed(None, t_ns, t_utc, meta, error=str(exc),
                           reason=exc.reason if exc.reason == "corrupt" else f"rejected.{exc.reason}")
        return Grabbed(image, t_ns, t_utc, meta, layout=layout)


class LastPicture:
    """What a snapshot camera answered last, kept across reconnects (a frozen camera that also drops its
    connection must not have its old picture inspected again after each reopen): the HTTP validators of the
    answer (ETag, Last-Modified; RFC 9110 §8.8) and a digest of its bytes."""

    def __init__(self) -> None:
        self.etag: str | None = None
        self.modified: str | None = None
        self.digest: bytes | None = None

    def validators(self) -> dict[str, str]:
        """The conditional-request headers for the next GET (empty before the first picture)."""
        return ({"If-None-Match": self.etag} if self.etag else {}) | (
            {"If-Modified-Since": self.modified} if self.modified else {})

    def changed(self, data: bytes, headers) -> bool:
        """Whether ``data`` (a 200 answer's body, ``headers`` its headers) is another picture than the last one:
        judged by its bytes (a camera may ignore the validators, or send none); remembered when it is."""
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if digest == self.digest:
            return False
        self.digest, self.etag, self.modified = digest, headers.get("ETag"), headers.get("Last-Modified")
        return True


class SnapshotPictures(_HttpPictures):
    """A URL that answers with one still picture per GET (``http://cam/snapshot.jpg``): a picture per read,
    taken when asked for, so never a backlog (pacing sleeps, it does not fetch pictures to drop them). FFmpeg
    opened such a URL as a one-frame video: its JPEG decoded its own way (no EXIF orientation, up to 80 levels
    off libjpeg's colours), then a reconnect for every picture.

    A camera whose device froze keeps answering its last picture: each answer was inspected and published as a
    new part (one part counted many times, a stuck camera looking like a healthy line). Each GET now carries the
    last answer's validators; a 304, or a body with the same bytes (:class:`LastPicture`), is no new picture:
    given as ``Grabbed(reason="repeat")``, counted, never inspected (the capture worker says the camera
    ``stale`` after ``stale_after_s`` of them in a row)."""

    def __init__(self, camera: CameraSection, bit_depth: int | None = None, last: LastPicture | None = None) -> None:
        super().__init__(camera, bit_depth)
        self._last = last if last is not None else LastPicture()

    def read(self) -> Grabbed | None:
        response = self.answer(self.camera.read_timeout_s, self._last.validators())
        if response is None:
            t_ns, t_utc = stamp_now()
            return Grabbed(None, t_ns, t_utc, {}, error="304 Not Modified: the same picture", reason="repeat")
        with response:
            if response.headers.get_content_maintype() == "multipart":
                raise self._error(f"{self.describe()}: now serves a stream; reopening")
            data = self.picture(response)
        t_ns, t_utc = stamp_now()  # the "grab": the encoded picture is in memory
        if not self._last.changed(data, response.headers):
            return Grabbed(None, t_ns, t_utc, {}, error="the same bytes as the last picture", reason="repeat")
        return self._decode(data, t_ns, t_utc, {})


class MjpegSource(_HttpPictures):
    """A URL that answered with an MJPEG stream (``multipart/*``, RFC 2046 §5.1), read by :class:`MjpegStream`:
    always drained, the newest picture stamped on arrival, the ones passed over counted as ``buffers_skipped``.
    A live stream never waits for its reader, so ``mode: offline`` on it is refused (permanent: the camera
    fails, one line). Made from the answer ``response`` (headers read): it is open once made."""

    def __init__(self, camera: CameraSection, bit_depth: int | None, response) -> None:
        super().__init__(camera, bit_depth)
        if camera.mode == "offline":
            response.close()
            raise self._error(f"{self.describe()} serves a live MJPEG stream, which does not wait to be read: "
                              f"mode: offline would inspect its frames late while stamped fresh; use mode: live "
                              f"(or auto)", permanent=True)
        self._mjpeg = MjpegStream(response, response.headers.get_param("boundary") or "")

    def read(self) -> Grabbed | None:
        try:
            data, t_ns, t_utc, replaced = self._mjpeg.take(self.camera.read_timeout_s)
        except EOFError as exc:
            raise self._error(f"{self.describe()}: {exc}") from None
        return self._decode(data, t_ns, t_utc, {"buffers_skipped": replaced} if replaced else {})

    def close(self) -> None:
        self._mjpeg.close()


class SnapshotSource(ChosenAtOpen):
    """An http(s) camera URL: still pictures, an MJPEG stream, or anything else FFmpeg plays.

    ``open`` sends one GET and goes by the answer: ``multipart/*`` is an MJPEG stream (:class:`MjpegSource`);
    at a URL naming a still image (:func:`is_snapshot_url`) a picture is one (:class:`SnapshotPictures`);
    anything else (a recording, an MPEG-TS stream …) is handed to ``other()``, a new unopened source for the
    URL (the factory's: FFmpeg's, as any other URL), opened here.
    """

    kind = "url"
    live = True
    one_size = True

    def __init__(self, camera: CameraSection, bit_depth: int | None, other: Callable[[], Source]) -> None:
        super().__init__(camera, bit_depth)
        self._snapshot = is_snapshot_url(str(camera.source))
        self._other = other
        self._last = LastPicture()  # the last still picture inspected, kept over reconnects

    def _choose(self) -> Source:
        if not self._snapshot:  # FFmpeg may be handed this URL once the answer is known
            warn_if_ffmpeg_logs_secrets(str(self.camera.source), self.camera.name)
        pictures = SnapshotPictures(self.camera, self.bit_depth, self._last)
        response = pictures.answer(self.camera.open_timeout_s)
        if response.headers.get_content_maintype() == "multipart":
            if self._snapshot:
                log.info("camera '%s': %s serves a stream, not still pictures: reading it as an MJPEG stream",
                         self.camera.name, self.describe())
            return MjpegSource(self.camera, self.bit_depth, response)
        with response:
            if self._snapshot:
                pictures.picture(response)  # the camera answers with a picture: read it, as the reads will
                return pictures
        other = self._other()
        other.open()
        return other


def is_snapshot_url(url: str) -> bool:
    """An http(s) URL whose path names a still image (``/snapshot.jpg``, ``/image.PNG``; any case)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and Path(parts.path).suffix.lower() in _STILL_SUFFIXES
