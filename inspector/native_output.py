"""What native libraries print to file descriptor 2, turned into redacted, throttled log records (the daemon).

OpenCV's in-process FFmpeg (``[OPENCV:FFMPEG:16] Connection to tcp://op:secret@host:port failed``), a decoder
fed a corrupt H.264 stream (``[h264 @ 0x…] non-existing PPS 0 referenced``, many times a second), libjpeg
(``Corrupt JPEG data: …``), libpng, OpenCV's own log and GLib (Aravis) write straight to descriptor 2, past
Python's logging and its redaction (:mod:`inspector.redact`): a camera password in the journal, and lines with
no camera name and no bound. The daemon owns its process, so for its run descriptor 2 becomes a pipe that a
thread drains (:class:`NativeStderr`): each line becomes a record of the ``inspector.native`` logger, redacted,
naming the camera when the line names its address or file, at WARNING when the library says it is a warning or
an error (else DEBUG), and throttled per library and message (the first shown, then at most one per
:data:`THROTTLE_S` with how many were held back; the rest counted at the end). Python's own logging keeps
writing to the original stderr (a duplicate of descriptor 2 taken first).

The write end of the pipe is non-blocking: should the drain stall (its stderr blocked), a native writer's line
is dropped rather than the camera thread that printed it stalled. ``INSPECTOR_NATIVE_STDERR=raw`` leaves
descriptor 2 alone, for seeing the libraries' own lines unchanged while debugging. Standard library only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import logging
import os
import re
import select
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Iterable

from inspector.redact import redact

log = logging.getLogger("inspector.native")

ENV = "INSPECTOR_NATIVE_STDERR"  # "raw": descriptor 2 left alone (debugging)
THROTTLE_S = 60.0  # one line per library and message per minute, with the count held back
_MAX_LINE = 4096  # bytes: a longer "line" (binary garbage, a progress bar without newline) is cut there
_MAX_KEYS = 1024  # distinct messages remembered; past it, a library's further messages share one key
_PIPE_BYTES = 1 << 20  # room for a burst while the drain is busy (Linux F_SETPIPE_SZ; the default is 64 KiB)
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}

# (library, pattern): the first that matches names the line's source; 'level' words or numbers say how grave.
_SOURCES = (
    ("ffmpeg", re.compile(r"^\[OPENCV:FFMPEG:(?P<av>-?\d+)\]\s*(?P<msg>.*)")),  # OpenCV's av_log callback
    ("ffmpeg", re.compile(r"^\[(?P<part>[\w:.-]+) @ 0x[0-9a-fA-F]+\]\s*(?P<msg>.*)")),  # av_log's own format
    ("opencv", re.compile(r"^\[\s*(?P<word>WARN|ERROR|FATAL|INFO|DEBUG|VERBOSE)[^\]]*\]\s*(?P<msg>.*)")),
    ("libpng", re.compile(r"^libpng (?P<word>warning|error):\s*(?P<msg>.*)")),
    ("libjpeg", re.compile(r"^(?P<msg>(?:Corrupt JPEG data|Premature end of JPEG file|Invalid JPEG|"
                           r"Bogus|Unsupported (?:JPEG|marker)).*)")),
    ("glib", re.compile(r"^\([^)]*:\d+\):\s*(?P<part>[\w.-]+)-(?P<word>WARNING|CRITICAL|ERROR|Message|INFO|"
                        r"DEBUG)\s*\**:\s*(?:[\d:.]+:\s*)?(?P<msg>.*)")),
)
_QUIET_WORDS = {"INFO", "DEBUG", "VERBOSE", "Message"}
_AV_LOG_WARNING = 24  # libavutil/log.h: a level number above it is information, not a problem
_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|\d+")  # what differs between lines of one message


def classify(line: str) -> tuple[str, int, str]:
    """(library, logging level, message) of one native stderr line: FFmpeg at or below AV_LOG_WARNING,
    OpenCV/GLib WARN/ERROR, libpng/libjpeg, and any line no rule knows are WARNING; chatter is DEBUG."""
    for library, pattern in _SOURCES:
        m = pattern.match(line)
        if not m:
            continue
        groups = m.groupdict()
        quiet = (groups.get("av") is not None and int(groups["av"]) > _AV_LOG_WARNING) \
            or groups.get("word") in _QUIET_WORDS
        name = f"{library}:{groups['part']}" if groups.get("part") else library
        return name, logging.DEBUG if quiet else logging.WARNING, m.group("msg").strip()
    return "native", logging.WARNING, line.strip()


def camera_needles(cameras: Iterable) -> list[tuple[str, str]]:
    """(text, camera name) pairs: a native line holding ``host:port`` of a camera's URL, or its file path,
    is about that camera. ``cameras``: objects with ``name`` and ``source`` (CameraSection)."""
    needles = []
    for cam in cameras:
        src = cam.source if isinstance(cam.source, str) else ""
        parts = urllib.parse.urlsplit(src) if "://" in src else None
        if parts is not None and parts.hostname:
            try:
                port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
            except ValueError:  # a port that is not a number: the config check says so
                port = None
            needles.append((f"{parts.hostname}:{port}" if port else parts.hostname, cam.name))
        elif src and parts is None and "/" in src:
            needles.append((src, cam.name))
    return needles


@dataclass
class _Seen:
    shown_at: float
    held: int = 0
    text: str = ""  # the latest line of the key, for the count at the end
    level: int = logging.WARNING


@dataclass
class Throttle:
    """Per-key throttle: :meth:`admit` gives None to hold a line back, else how many were held back since the
    last one shown (shown again after ``interval_s`` seconds)."""

    interval_s: float = THROTTLE_S
    seen: dict[tuple, _Seen] = field(default_factory=dict)

    def admit(self, key: tuple, now: float, text: str = "", level: int = logging.WARNING) -> int | None:
        if len(self.seen) >= _MAX_KEYS and key not in self.seen:
            key = key[:1]  # a flood of distinct messages: one key per library from here on
        entry = self.seen.get(key)
        if entry is None or now - entry.shown_at >= self.interval_s:
            held = entry.held if entry else 0
            self.seen[key] = _Seen(now, 0, text, level)
            return held
        entry.held, entry.text = entry.held + 1, text
        return None

    def held_back(self) -> list[tuple[int, str, int]]:
        """(level, latest text, count) of what was held back since each key was last shown (for the end of a run)."""
        return [(e.level, e.text, e.held) for e in self.seen.values() if e.held]


def _log_streams(stream) -> list[logging.StreamHandler]:
    """Every logging handler (root's and named loggers') writing to ``stream``."""
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and h.stream is stream]


@dataclass
class _Swapped:
    """One standard stream moved aside: descriptor ``fd``'s original (``saved``, a duplicate), the Python
    stream that wrote to it (``old``, sys.stdout / sys.stderr) and the log handlers moved with it."""

    fd: int
    attr: str
    saved: int
    old: object
    moved: list = field(default_factory=list)


class NativeOutput:
    """Descriptors 1 and 2 drained into log records while started (module docstring); a context manager.

    ``cameras``: the daemon's cameras (``name``, ``source``), to name the one a line is about. ``quiet``: the
    libraries whose lines are DEBUG (shown with ``-v``), where the caller tells the problem itself (an offline
    command's image decoders: the skipped file's own line names it). Starting does
    nothing when ``INSPECTOR_NATIVE_STDERR=raw``; a descriptor that is not open (a supervisor closed it) is
    left alone."""

    def __init__(self, cameras: Iterable = (), throttle_s: float = THROTTLE_S, quiet: Iterable[str] = ()) -> None:
        self._needles = camera_needles(cameras)
        self._quiet = frozenset(quiet)  # libraries (classify's names) whose lines are DEBUG whatever they say
        self._throttle = Throttle(throttle_s)
        self._pipe: tuple[int, int] | None = None
        self._swapped: list[_Swapped] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __enter__(self) -> "NativeOutput":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def active(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Point descriptors 1 and 2 at the pipe; sys.stdout, sys.stderr and the log handlers on them at
        duplicates of the originals."""
        if os.environ.get(ENV, "").strip().lower() == "raw" or self.active:
            return
        read, write = os.pipe()
        os.set_blocking(write, False)  # a stalled drain drops native lines, never stalls their writer
        os.set_blocking(read, False)
        try:
            fcntl.fcntl(write, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
        except OSError:  # not Linux, or above /proc/sys/fs/pipe-max-size: the default size
            pass
        self._pipe = (read, write)
        _c_stdio(line_buffered=True)
        for fd, attr in ((1, "stdout"), (2, "stderr")):  # OpenCV's FFmpeg callback prints to stdout
            try:
                swapped = _Swapped(fd, attr, os.dup(fd), getattr(sys, attr))
            except OSError:
                continue
            self._swapped.append(swapped)
            _move_python(swapped)
            os.dup2(write, fd)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._drain, name="native-output", daemon=True)
        self._thread.start()

    def stop(self, join_s: float = 2.0) -> None:
        """Give the descriptors, Python's streams and the log handlers back; log what is left in the pipe and
        the counts of lines held back (idempotent)."""
        if not self.active:
            return
        _c_stdio()  # what C's stdio still holds goes into the pipe, not past it
        for swapped in self._swapped:
            getattr(sys, swapped.attr).flush()
            os.dup2(swapped.saved, swapped.fd)
        os.close(self._pipe[1])  # with the descriptors restored, the pipe ends once child processes let go
        self._stopping.set()
        self._thread.join(join_s)
        if not self._thread.is_alive():  # else it still reads: leave it its descriptor
            os.close(self._pipe[0])
        self._thread = self._pipe = None
        for swapped in self._swapped:
            _restore_python(swapped)
        self._swapped = []

    def _drain(self) -> None:
        """Read the pipe until it ends (or stop() and nothing more is there), one record per line."""
        pending = b""
        while True:
            try:
                chunk = os.read(self._pipe[0], 1 << 16)
            except BlockingIOError:
                if self._stopping.is_set():
                    break
                select.select([self._pipe[0]], [], [], 0.2)
                continue
            except OSError:
                break
            if not chunk:
                break
            *lines, pending = re.split(rb"\r\n|\r|\n", pending + chunk)
            if len(pending) > _MAX_LINE:
                lines, pending = lines + [pending], b""
            for line in lines:
                self._safe_line(line)
        self._safe_line(pending)
        for level, text, count in self._throttle.held_back():
            log.log(level, "%s (%d more like it not shown)", text, count)

    def _safe_line(self, raw: bytes) -> None:
        try:
            self._line(raw[:_MAX_LINE].decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - the drain must go on: a stopped drain fills the pipe
            pass

    def _line(self, line: str) -> None:
        """One native line: classified, redacted, named, throttled, logged."""
        if not line.strip():
            return
        library, level, message = classify(redact(line))
        if library.split(":")[0] in self._quiet:
            level = logging.DEBUG
        camera = next((name for needle, name in self._needles if needle in message), None)
        text = (f"camera '{camera}': " if camera else "") + f"{library}: {message}"
        key = (library, camera, _VARIABLE.sub("#", message))
        held = self._throttle.admit(key, time.monotonic(), text, level)
        if held is not None:
            log.log(level, "%s%s", text, f" ({held} more like it held back since the last)" if held else "")


def _c_stdio(line_buffered: bool = False) -> None:
    """Flush C's stdio buffers (``line_buffered``: and make C's ``stdout`` line-buffered). On a pipe C's
    stdout is fully buffered, so OpenCV's FFmpeg lines (printed there) would wait for 4 KiB, and those left at
    exit would be flushed past the drain onto the original stdout. Best effort: glibc's symbols."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.fflush(None)
        if line_buffered:
            stdout = ctypes.c_void_p.in_dll(libc, "stdout")
            libc.setvbuf(stdout, None, 1, 0)  # _IOLBF (stdio.h)
    except (OSError, ValueError, AttributeError):
        pass


def _move_python(swapped: _Swapped) -> None:
    """sys.<attr> and every log handler on it write to the duplicate of the original descriptor."""
    old = swapped.old
    try:
        on_fd = old.fileno() == swapped.fd
    except (AttributeError, OSError, ValueError):  # a caller's own stream (io.StringIO, pytest's capsys)
        on_fd = False
    if not on_fd:  # it does not write to the descriptor: it keeps its own place
        swapped.old, swapped.moved = None, []
        return
    line = getattr(old, "line_buffering", True)
    original = open(swapped.saved, "w", buffering=-1, closefd=False, errors="backslashreplace",
                    encoding=getattr(old, "encoding", None) or "utf-8")
    original.reconfigure(line_buffering=line)
    if old is not None:
        old.flush()
        swapped.moved = _log_streams(old)
    for handler in swapped.moved:
        handler.setStream(original)
    setattr(sys, swapped.attr, original)


def _restore_python(swapped: _Swapped) -> None:
    if swapped.old is None:  # left alone by _move_python
        os.close(swapped.saved)
        return
    original = getattr(sys, swapped.attr)
    original.flush()
    setattr(sys, swapped.attr, swapped.old)
    for handler in swapped.moved:
        handler.setStream(swapped.old)
    os.close(swapped.saved)
