"""Credentials out of text that leaves the process (log lines, events, error lines, summaries).

Camera and broker addresses often carry a password: ``rtsp://user:secret@10.0.0.5/stream``,
``http://host/video.cgi?user=admin&pwd=secret``, a GStreamer ``rtspsrc ... user-pw=secret``. The real
address is still what opens the camera; only its description is redacted (``rtsp://user:***@10.0.0.5/stream``).
Standard library only: the daemon, the CLI and the logging set-up all use it.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://userinfo@host: userinfo runs to the LAST '@' before the path, as FFmpeg splits it (av_url_split),
# so a raw '@' in a password is still masked whole. "user:password" keeps the user name (it tells which account
# a camera uses); a userinfo without ':' is masked whole, since it is often a token (pip's redact_netloc rule).
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#]+)@")
# key=value where the key names a secret: URL query parameters (?pwd=…&token=…, srt://…?passphrase=…) and GStreamer
# properties (user-pw=…, proxy-pw=…); the value ends at '&', ';', white space or a quote.
# (A bare 'key=' is not one: "expected key=value" is one of our own messages.)
_KEY_SECRET = re.compile(r"(?i)(?P<head>(?<![A-Za-z0-9_-])(?:user-pw|proxy-pw|passw(?:or)?d|passphrase|pass|pwd|pw"
                         r"|secret|token|access[_-]?token|auth[_-]?token|api[_-]?key)=)"
                         r"(?P<secret>[^&;\s\"']+)")


def _masked_userinfo(match: re.Match) -> str:
    user, colon, _ = match.group("userinfo").partition(":")
    return match.group("scheme") + (user + colon if colon else "") + MASK + "@"


def redact(text: str) -> str:
    """``text`` with URL passwords (a user-only userinfo, often a token, whole) and the values of secret-named
    parameters replaced by ``***``: ``rtsp://admin:pw@h/s`` → ``rtsp://admin:***@h/s``, ``rtsp://tok@h`` →
    ``rtsp://***@h``."""
    if "=" not in text and "@" not in text:  # the common case, cheaply
        return text
    text = _URL_USERINFO.sub(_masked_userinfo, text)
    return _KEY_SECRET.sub(lambda m: m.group("head") + MASK, text)


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter: whatever it writes (message, arguments, traceback) is :func:`redact`-ed,
    so an address with a password in any log line (ours, a library's, an exception's text) stays hidden."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def redact_log_handlers(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (default: the root logger) write redacted lines (idempotent)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))
