"""The relay of an srt:// live stream whose URL holds what may not stand on a command line (a ``passphrase``, a
``streamid``): the stream's bytes, as sent, on stdout for :class:`inspector.pipeline.ts_feed.StreamFeed`; the URL read
from stdin, never from the command line, which every local user can read (``ps``, /proc/PID/cmdline).

The ``ffmpeg`` relay (:func:`inspector.pipeline.ffmpeg_live.relay_command`) takes its URL on its command line only, so
such a stream was read by the decoding program itself (its URL in a pipe), and every join of segments an MPEG-TS sender
played one after another was counted a loss: the key-frame interval after it never inspected. This relay speaks SRT
through libsrt, the library the ffmpeg program's own srt protocol is built on (loaded with ctypes: no package to
install), setting the URL's options as FFmpeg's protocol does (:data:`OPTIONS`: FFmpeg's names and units), as a caller
or, ``mode=listener``, waiting for the sender to call (``srt://:PORT?mode=listener``: any address, as FFmpeg binds). A
URL with another option, a ``rendezvous``, or where no libsrt can be loaded, is not relayed (:func:`can_relay`).

Run as ``python -m inspector.pipeline.srt_relay TIMEOUT_S`` with the URL and a line break on stdin; exit 0 when the
sender closed the connection, 1 with one line on stderr (no secret) when it could not connect, a read waited more than
``TIMEOUT_S`` (or the URL's ``timeout``), a listener was called by no sender within ``TIMEOUT_S`` (or its
``listen_timeout``), or stdout closed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import socket
import struct
import sys
import urllib.parse

from inspector.redact import redact

# libsrt's socket options (srtcore/srt.h, SRT_SOCKOPT; the same numbers since libsrt 1.3) and the URL options of
# FFmpeg's srt protocol (libavformat/libsrt.c) that set them: (option number, kind, divisor of the URL's value).
# FFmpeg's latencies and timeouts are in µs, libsrt's in ms.
_RCVSYN, _RCVTIMEO = 2, 14
_CONNECTION_LOST = 2001  # SRT_ECONNLOST: the sender closed the connection (or it broke): the stream's end
_EPOLL_IN_ERR = 0x1 | 0x8  # SRT_EPOLL_IN | SRT_EPOLL_ERR: a listener's caller waiting to be accepted (or its failure)
OPTIONS: dict[str, tuple[int, str, int]] = {
    "passphrase": (26, "str", 1), "pbkeylen": (27, "int", 1), "streamid": (46, "str", 1),
    "srt_streamid": (46, "str", 1), "latency": (23, "int", 1000), "rcvlatency": (43, "int", 1000),
    "peerlatency": (44, "int", 1000), "connect_timeout": (36, "int", 1), "pkt_size": (49, "int", 1),
    "payload_size": (49, "int", 1), "tlpktdrop": (31, "bool", 1), "nakreport": (33, "bool", 1),
    "maxbw": (16, "int64", 1), "oheadbw": (25, "int", 1), "lossmaxttl": (42, "int", 1),
    "enforced_encryption": (53, "bool", 1), "ipttl": (29, "int", 1), "iptos": (30, "int", 1),
}
# options this relay reads itself: the connection's mode (caller, listener), each read's timeout and a listener's
# wait for its caller (µs, as FFmpeg's)
_OWN = frozenset({"mode", "timeout", "transtype", "listen_timeout"})
_MODES = ("caller", "listener")
_CHUNK = 1500  # bytes: one SRT message at most (a live payload is at most 1456)
_LIBRARIES = ("srt-gnutls", "srt-openssl", "srt", "srt-mbedtls")  # Debian's names first


@functools.cache
def _library_name() -> str | None:
    """libsrt's file name as the system's loader finds it, under any of its Debian / upstream names; None: none.
    Looked for once a process: find_library may run ldconfig and then the C compiler (~0.1 s each)."""
    return next((found for name in _LIBRARIES if (found := ctypes.util.find_library(name))), None)


def _library() -> ctypes.CDLL | None:
    """libsrt loaded (in the relay's process only); None when it cannot be."""
    name = _library_name()
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _query(query: str) -> dict[str, str]:
    """A URL's options as FFmpeg's srt protocol reads them (av_find_info_tag: the first of each name, '+' a space, no
    %-decoding but a ``streamid``'s, which it URL-decodes)."""
    said: dict[str, str] = {}
    for item in query.split("&"):
        name, _, value = item.partition("=")
        value = value.replace("+", " ")
        said.setdefault(name, urllib.parse.unquote(value) if name in ("streamid", "srt_streamid") else value)
    return said


def can_relay(url: str) -> bool:
    """Whether this relay reads the srt:// ``url``: a caller (FFmpeg's default mode) or listener whose every option it sets
    (:data:`OPTIONS`, ``timeout``, ``transtype=live``), without a user part, on a system where libsrt loads."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    said = _query(parts.query) if parts.query else {}
    return (parts.scheme.lower() == "srt" and "@" not in parts.netloc and not parts.fragment and port is not None
            and all(name in OPTIONS or name in _OWN for name in said)
            and said.get("mode", "caller") in _MODES and said.get("transtype", "live") == "live"
            and _library_name() is not None)


def command(timeout_s: float) -> list[str]:
    """This relay's command line: no URL (it reads that from stdin); each socket operation waits at most
    ``timeout_s`` seconds."""
    return [sys.executable, "-m", "inspector.pipeline.srt_relay", f"{timeout_s:g}"]


class SrtError(OSError):
    """A libsrt call failed: its own words for why."""


def _address(host: str, port: int) -> bytes:
    """The C ``struct sockaddr_in`` / ``sockaddr_in6`` of ``host``:``port`` (its first address). Raises OSError."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    if family == socket.AF_INET6:
        return struct.pack("=H", family) + struct.pack("!HI", port, 0) + socket.inet_pton(family, address[0]) \
            + struct.pack("=I", address[3])
    return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton(address[0]) + bytes(8)


class _Srt:
    """One libsrt caller socket: :meth:`connect` with the URL's options, :meth:`read` its messages."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        lib.srt_getlasterror_str.restype = ctypes.c_char_p
        if lib.srt_startup() < 0:
            raise self._failed("srt_startup")
        self.sock = lib.srt_create_socket()
        if self.sock < 0:
            raise self._failed("srt_create_socket")

    def _failed(self, call: str) -> SrtError:
        return SrtError(f"{call}: {(self.lib.srt_getlasterror_str() or b'').decode('utf-8', 'replace')}")

    def set(self, option: int, kind: str, value: str, divisor: int = 1) -> None:
        """Set one socket option from its URL text (``divisor``: FFmpeg's unit over libsrt's). Raises SrtError."""
        if kind == "str":
            raw = value.encode()
            data, size = ctypes.create_string_buffer(raw, len(raw)), len(raw)
        elif kind == "int64":
            data, size = ctypes.c_int64(int(value) // divisor), 8
        else:
            number = int(value.lower() in ("1", "true", "yes", "on")) if kind == "bool" else int(value) // divisor
            data, size = ctypes.c_int(number), 4
        if self.lib.srt_setsockflag(self.sock, option, ctypes.byref(data), size) < 0:
            raise self._failed(f"option {option}")

    def connect(self, host: str, port: int) -> None:
        address = _address(host, port)
        if self.lib.srt_connect(self.sock, ctypes.c_char_p(address), len(address)) < 0:
            raise self._failed("connect")

    def accept(self, host: str, port: int, timeout_ms: int) -> None:
        """Listen on ``host``:``port`` (any address when empty) for one caller, waiting at most ``timeout_ms``; the
        socket is then the caller's (the listener's options, set before, are its own). Raises SrtError.
        ``srt_accept`` itself waits for ever whatever SRTO_RCVTIMEO says (measured, libsrt 1.5): an epoll waits."""
        address = _address(host or "0.0.0.0", port)
        lib = self.lib
        if lib.srt_bind(self.sock, ctypes.c_char_p(address), len(address)) < 0 or lib.srt_listen(self.sock, 1) < 0:
            raise self._failed("listen")
        poll, events = lib.srt_epoll_create(), ctypes.c_int(_EPOLL_IN_ERR)
        ready, count = (ctypes.c_int * 1)(), ctypes.c_int(1)
        try:
            lib.srt_epoll_add_usock(poll, self.sock, ctypes.byref(events))
            if lib.srt_epoll_wait(poll, ready, ctypes.byref(count), None, None, ctypes.c_int64(timeout_ms),
                                  None, None, None, None) < 1:
                raise SrtError(f"no sender called within {timeout_ms / 1000:g} s")
        finally:
            lib.srt_epoll_release(poll)
        caller = lib.srt_accept(self.sock, None, None)
        if caller < 0:
            raise self._failed("accept")
        lib.srt_close(self.sock)
        self.sock = caller

    def read(self) -> bytes:
        """The next message ("" when the sender closed). Raises SrtError (a timeout among them)."""
        buf = ctypes.create_string_buffer(_CHUNK)
        got = self.lib.srt_recvmsg(self.sock, buf, _CHUNK)
        if got < 0 and self.lib.srt_getlasterror(None) == _CONNECTION_LOST:
            return b""
        if got < 0:
            raise self._failed("read")
        return buf.raw[:got]

    def close(self) -> None:
        self.lib.srt_close(self.sock)
        self.lib.srt_cleanup()


def _opened(url: str, timeout_s: float) -> _Srt:
    """A caller socket connected to ``url`` with its options set (:data:`OPTIONS`): blocking reads that wait at most
    the URL's ``timeout`` (µs), else ``timeout_s``. Raises OSError (SrtError) or ValueError."""
    lib = _library()
    if lib is None:
        raise OSError("no libsrt could be loaded")
    parts = urllib.parse.urlsplit(url)
    said = _query(parts.query) if parts.query else {}
    srt = _Srt(lib)
    try:
        srt.set(_RCVSYN, "bool", "1")
        srt.set(_RCVTIMEO, "int", said.get("timeout", str(int(timeout_s * 1e6))), 1000)
        for name, value in said.items():
            if name in OPTIONS:
                srt.set(*OPTIONS[name][:2], value, OPTIONS[name][2])
        if said.get("mode") == "listener":
            srt.accept(parts.hostname or "", parts.port or 0, int(said.get("listen_timeout", timeout_s * 1e6)) // 1000)
        else:
            srt.connect(parts.hostname or "", parts.port or 0)
    except (OSError, ValueError):
        srt.close()
        raise
    return srt


def main() -> int:
    url = sys.stdin.readline().rstrip("\r\n")
    timeout_s = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    try:
        srt = _opened(url, timeout_s)
    except (OSError, ValueError) as exc:
        sys.stderr.write(redact(f"[error] {redact(url)}: {exc}").replace("\n", " ") + "\n")
        return 1
    try:
        while chunk := srt.read():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    except BrokenPipeError:  # the reader went away (the feed stopped)
        return 1
    except OSError as exc:
        sys.stderr.write(redact(f"[error] {redact(url)}: {exc}").replace("\n", " ") + "\n")
        return 1
    finally:
        srt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
