"""The relay of an http(s) live stream whose URL holds a secret (``user:password@``, a token parameter): the stream's
bytes, as sent, on stdout for :class:`inspector.pipeline.ts_feed.StreamFeed`; the URL read from stdin, never from the
command line, which every local user can read (``ps``, /proc/PID/cmdline).

The ``ffmpeg`` relay (:func:`inspector.pipeline.ffmpeg_live.relay_command`) takes its URL on its command line only, so
such a stream was read by the decoding program itself (its URL in a pipe), and every join of segments an MPEG-TS sender
played one after another was counted a loss: the key-frame interval after it never inspected (50 of 150 frames of
three joined segments). This relay speaks HTTP itself (Python's standard library: redirects, chunked answers,
Basic and Digest authentication, as FFmpeg's http protocol), so the stream is scanned as any relayed one.

Run as ``python -m inspector.pipeline.http_relay TIMEOUT_S`` with the URL and a line break on stdin; exit 0 at the end
of the answer, 1 with one line on stderr (no secret) when the request failed, the answer was no success, or stdout
closed.
"""

from __future__ import annotations

import http.client
import sys
import urllib.error
import urllib.parse
import urllib.request

from inspector.redact import redact

_CHUNK = 1 << 16  # bytes read from the answer at most at a time (each handed on at once)


def command(timeout_s: float) -> list[str]:
    """This relay's command line: no URL (it reads that from stdin); each socket operation waits at most
    ``timeout_s`` seconds."""
    return [sys.executable, "-m", "inspector.pipeline.http_relay", f"{timeout_s:g}"]


def opener(url: str) -> tuple[str, urllib.request.OpenerDirector]:
    """(``url`` without its user part, an opener answering a Basic or Digest challenge with that user part's
    name and password, percent-decoded as FFmpeg's http protocol does)."""
    parts = urllib.parse.urlsplit(url)
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    users = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    if parts.username is not None:
        users.add_password(None, bare, urllib.parse.unquote(parts.username),
                           urllib.parse.unquote(parts.password or ""))
    return bare, urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(users),
                                             urllib.request.HTTPDigestAuthHandler(users))


def main() -> int:
    url = sys.stdin.readline().rstrip("\r\n")
    timeout_s = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    try:
        bare, director = opener(url)
        with director.open(bare, timeout=timeout_s) as answer:
            while chunk := answer.read1(_CHUNK):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    except BrokenPipeError:  # the reader went away (the feed stopped)
        return 1
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) \
            else exc
        sys.stderr.write(redact(f"[error] {redact(url)}: {reason}").replace("\n", " ") + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
