"""srt:// URL options that can never open: told by ``run --check`` in one line, not retried for ever.

FFmpeg's srt protocol (libavformat/libsrt.c) hands a URL's options to libsrt, which refuses some values outright:
``passphrase=short`` gave "failed to set option SRTO_PASSPHRASE on socket: … Bad parameters", ``pbkeylen=7``
"Invalid value for option SRTO_PBKEYLEN" (measured with FFmpeg 5.1, libsrt 1.5), at every open; the camera was
reconnected with back-off for ever as if the sender were down. The limits are libsrt's (docs/API/API-socket-options.md):
a passphrase of 10 to 80 characters (none: no encryption), key lengths 0, 16, 24 or 32 bytes; ``mode`` and
``transtype`` are FFmpeg's words. :mod:`inspector.pipeline.srt_relay` reads the numbers itself (``int``): a value that
is none ('latency=200ms') failed its every start too.
"""

from __future__ import annotations

import urllib.parse

_PASSPHRASE_CHARS = (10, 80)  # libsrt SRTO_PASSPHRASE (HAICRYPT_SECRET_MAX_SZ 80; measured: 9 and 81 refused)
_CHOICES = {"pbkeylen": ("0", "16", "24", "32"), "mode": ("caller", "listener", "rendezvous"),
            "transtype": ("live", "file")}
_NUMBERS = ("latency", "rcvlatency", "peerlatency", "connect_timeout", "timeout", "pkt_size", "payload_size", "maxbw",
            "oheadbw", "lossmaxttl", "ipttl", "iptos", "listen_timeout")


def srt_url_problem(url: str) -> str | None:
    """Why libsrt (through FFmpeg or srt_relay) refuses the srt:// ``url``'s options at every open, or None. Names
    the option, never a passphrase's value (the URL may hold secrets; the caller quotes none of it)."""
    query = urllib.parse.urlsplit(url).query
    said: dict[str, str] = {}
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        said.setdefault(name, value.replace("+", " "))  # FFmpeg takes the first of each name (av_find_info_tag)
    phrase = said.get("passphrase", "")
    low, high = _PASSPHRASE_CHARS
    if phrase and not low <= len(phrase) <= high:
        return f"passphrase is {len(phrase)} characters; libsrt takes {low} to {high} (or none: no encryption)"
    for name, allowed in _CHOICES.items():
        if name in said and said[name] not in allowed:
            return f"{name}={said[name][:20]} is not one of {', '.join(allowed)}"
    for name in _NUMBERS:
        value = said.get(name)
        if value is not None and not value.lstrip("-").isdigit():
            return f"{name}={value[:20]} is not a whole number (FFmpeg's units: µs for latencies and timeouts)"
    return None
