"""Credentials out of text that leaves the process (log lines, events, error lines, summaries).

Camera and broker addresses often carry a password: ``rtsp://user:secret@10.0.0.5/stream``,
``http://host/video.cgi?user=admin&pwd=secret``, ``srt://h:9000?streamid=#!::u=admin,t=<token>``, a signed
``https://…?X-Amz-Signature=…``, a GStreamer ``rtspsrc ... user-pw=secret``. The real address is still what opens the
camera; only its description is redacted (``rtsp://user:***@10.0.0.5/stream``). Two rules:

* in a URL, every query (and fragment) value is masked but those of :data:`HARMLESS_QUERY_NAMES`, an allow-list:
  a camera's or signing service's secret can be under any name (``auth``, ``sig``, ``key``, ``session``,
  ``streamid``, …) and none can be told harmless by its name unless known. The scheme, host, port and path stay:
  they tell which camera;
* outside a URL (GStreamer properties, ``key=value`` in messages) only the values of secret-named keys
  (:data:`_KEY_SECRET`, a deny-list): ``bypass=1 mode=live`` and our own messages stay readable.

The same allow-list, less the names kept only for the reader (:data:`TRANSPORT_OPTIONS`), says which URL may stand on
a child's command line (:data:`inspector.pipeline.ffmpeg_live.COMMAND_LINE_OPTIONS`). Standard library only: the
daemon, the CLI and the logging set-up all use it.
"""

from __future__ import annotations

import logging
import re
import urllib.parse

MASK = "***"

# FFmpeg's own options of the tcp, udp, rtp, srt, rist and tls protocols that are no secret (not srt's passphrase
# nor its streamid: an access-control id carries a user and often a token)
TRANSPORT_OPTIONS = frozenset({
    # tcp, udp, udplite, rtp, unix, sctp
    "listen", "listen_timeout", "local_addr", "local_port", "localaddr", "localport", "timeout", "rw_timeout",
    "send_buffer_size", "recv_buffer_size", "buffer_size", "tcp_nodelay", "tcp_mss", "bitrate", "burst_bits",
    "pkt_size", "reuse", "reuse_socket", "broadcast", "ttl", "connect", "fifo_size", "overrun_nonfatal", "sources",
    "block", "rtcpport", "localrtpport", "localrtcpport", "write_to_source", "dscp", "type", "max_streams",
    # srt
    "mode", "latency", "rcvlatency", "peerlatency", "payload_size", "maxbw", "inputbw", "oheadbw", "tlpktdrop",
    "nakreport", "connect_timeout", "transtype", "messageapi", "linger", "tsbpd", "mss", "ffs", "ipttl", "iptos",
    "pbkeylen", "enforced_encryption", "kmrefreshrate", "kmpreannounce", "snddropdelay", "lossmaxttl", "minversion",
    "smoother", "congestion",
    # rist (not secret), tls (file names, not their contents)
    "rist_profile", "log_level", "weight", "encryption", "verify", "tls_verify", "cafile", "ca_file", "cert",
    "cert_file", "key_file", "http_proxy"})
# … and what picks a camera's stream in its own URL (channel 2, sub-stream, profile): shown, it tells which camera and
# stream a line is about. A user name is shown as in a URL's user part (it tells which account a camera uses).
HARMLESS_QUERY_NAMES = TRANSPORT_OPTIONS | frozenset({
    "channel", "chn", "ch", "subtype", "stream", "streamtype", "profile", "resolution", "fps", "framerate",
    "videocodec", "codec", "compression", "camera", "cam", "transport", "rtsp_transport", "unicast", "width",
    "height", "quality", "format", "user", "usr", "username"})

# scheme://userinfo@host: userinfo runs to the LAST '@' before the path, as FFmpeg splits it (av_url_split),
# so a raw '@' in a password is still masked whole. "user:password" keeps the user name (it tells which account
# a camera uses); a userinfo without ':' is masked whole, since it is often a token (pip's redact_netloc rule).
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#]+)@")
# A URL's query and fragment: from the first '?' or '#' after scheme://authority/path to white space or a quote.
# A '#' inside runs on ('streamid=#!::u=admin' is one value to FFmpeg's srt, read raw).
_URL_TAIL = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s?#\"'<>]*)(?P<tail>[?#][^\s\"'<>]*)")
# Its items: split at '&', ';' and '#', the most places any reader splits them, so that no allowed name's value
# holds another item. Punctuation that ends a sentence or a bracket after the URL stays (it is no secret).
_ITEM_SPLIT = re.compile(r"([&;#?]+)")
_TRAILING = ").,]:"
# key=value where the key names a secret, outside URLs: GStreamer properties (user-pw=…, proxy-pw=…) and words in
# messages; the value ends at '&', ';', white space or a quote. (A bare 'key=' is not one: "expected key=value" is one
# of our own messages; in a URL every value not allowed is masked.)
_KEY_SECRET = re.compile(r"(?i)(?P<head>(?<![A-Za-z0-9_-])(?:user-pw|proxy-pw|passw(?:or)?d|passphrase|pass|pwd|pw"
                         r"|secret|client[_-]?secret|token|access[_-]?token|auth[_-]?token|auth|api[_-]?key|apikey"
                         r"|streamid|sig|signature|session|sessionid|credential|x-amz-[a-z-]+)=)"
                         r"(?P<secret>[^&;\s\"']+)")


def _masked_userinfo(match: re.Match) -> str:
    user, colon, _ = match.group("userinfo").partition(":")
    return match.group("scheme") + (user + colon if colon else "") + MASK + "@"


def _masked_item(item: str) -> str:
    """One query item: ``name=***`` (``***`` for a bare one) unless its name is in :data:`HARMLESS_QUERY_NAMES`."""
    name, equals, value = item.partition("=")
    if not item or (equals and not value) or item == MASK or urllib.parse.unquote(name).strip().lower() in HARMLESS_QUERY_NAMES:
        return item  # an empty value or item (or one masked already) shows nothing
    return name + equals + MASK if equals else MASK


def _masked_tail(match: re.Match) -> str:
    tail = match.group("tail")
    kept = len(tail) - len(tail.rstrip(_TRAILING))
    body, end = (tail[:-kept], tail[-kept:]) if kept else (tail, "")
    return match.group("head") + "".join(part if i % 2 else _masked_item(part)
                                         for i, part in enumerate(_ITEM_SPLIT.split(body))) + end


def _masked_secret(match: re.Match) -> str:
    secret = match.group("secret")  # a URL's value masked already keeps the punctuation after it
    kept = secret[len(MASK):] if secret.startswith(MASK) and not secret[len(MASK):].strip(_TRAILING) else ""
    return match.group("head") + MASK + kept


def redact(text: str) -> str:
    """``text`` with URL passwords (a user-only userinfo, often a token, whole), the values of a URL's query and
    fragment but those of :data:`HARMLESS_QUERY_NAMES`, and elsewhere the values of secret-named parameters replaced
    by ``***``: ``rtsp://admin:pw@h/s`` → ``rtsp://admin:***@h/s``, ``rtsp://tok@h`` → ``rtsp://***@h``,
    ``http://h/v?auth=x&channel=2`` → ``http://h/v?auth=***&channel=2``."""
    if "=" not in text and "://" not in text:  # the common case, cheaply
        return text
    text = _URL_USERINFO.sub(_masked_userinfo, text)
    text = _URL_TAIL.sub(_masked_tail, text)
    return _KEY_SECRET.sub(_masked_secret, text)


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
