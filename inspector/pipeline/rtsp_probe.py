"""Why an rtsp:// or rtsps:// camera did not open: one RTSP DESCRIBE (RFC 2326 §10.2) asked by hand (over TLS
for rtsps://), its answer in words.

OpenCV's FFmpeg backend says only "not opened": a wrong password (401), a wrong path (404), nothing listening
and a server that never answers all read "cannot open", and FFmpeg's own line went to stderr unredacted-able and
without the camera's name. Standard library only; Basic and Digest (RFC 2617, MD5, qop auth) logins, as IP
cameras ask. The user name is told, the password never.

401, 403 and 404 name the camera's settings (:func:`diagnose`: the capture worker says them once as a
configuration error) but are still retried, reconnect.max_s apart and quietly: a relay (an NVR, MediaMTX) answers
404 for a path until its camera publishes, a camera restarting or reset answers 404 or 401 for a while, and a
password changed on the camera can be changed back while the daemon runs. Other answers (5xx, silence, a refused
connection) are transient, retried at the camera's back-off.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import time
import urllib.parse

from inspector.pipeline.source_base import MISCONFIGURED_CODES

_MAX_ANSWER = 65536  # an answer's head is read up to this many bytes
_RTSP_PORT, _RTSPS_PORT = 554, 322  # the schemes' default ports (RFC 2326 §3.2; FFmpeg's rtsp.c for rtsps)


def _over_tls(sock: socket.socket, host: str) -> ssl.SSLSocket:
    """``sock`` (connected) wrapped in TLS for rtsps://, its certificate checked against the system's trusted
    ones (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured), as OpenCV's FFmpeg checks it (measured: a self-signed
    certificate, "certificate verify failed", "not opened"). A certificate that fails is the answer (it is why
    the stream did not open), and no login is sent to a peer not known to be the camera.
    ssl.SSLCertVerificationError, ssl.SSLError (no TLS) are OSErrors."""
    return ssl.create_default_context().wrap_socket(sock, server_hostname=host)


def _answer(sock: socket.socket, deadline: float) -> tuple[int, str, dict[str, str]]:
    """(status code, reason, headers lower-cased) of one RTSP answer; socket.timeout past ``deadline``."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < _MAX_ANSWER:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3}) ?(.*)", lines[0])
    if not match:
        raise ValueError(f"not an RTSP answer: {lines[0][:60]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(match.group(1)), match.group(2), headers


def _authorization(challenge: str, user: str, password: str, uri: str) -> str:
    """The Authorization header answering ``challenge`` (a WWW-Authenticate value: Basic or Digest)."""
    import base64

    if challenge.lower().startswith("basic"):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731 (RFC 2617's H())
    ha1, ha2 = md5(f"{user}:{fields.get('realm', '')}:{password}"), md5(f"DESCRIBE:{uri}")
    nonce, extra = fields.get("nonce", ""), ""
    if "auth" in fields.get("qop", "").split(","):
        response = md5(f"{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}")
        extra = ', qop=auth, nc=00000001, cnonce="0a4f113b"'
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    return (f'Digest username="{user}", realm="{fields.get("realm", "")}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}"' + extra)


def _describe(sock: socket.socket, uri: str, cseq: int, deadline: float, auth: str = "") -> tuple:
    request = f"DESCRIBE {uri} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\n"
    sock.sendall((request + (f"Authorization: {auth}\r\n" if auth else "") + "\r\n").encode("latin-1"))
    return _answer(sock, deadline)


def _in_words(code: str | int, reason: str, user: str | None, path: str) -> str:
    if code == 401:
        return (f"the camera refused user '{user}' (401 {reason}: wrong user name or password)" if user is not None
                else f"the camera asks for a user name and password (401 {reason}): give them in the URL "
                     f"(rtsp://user:password@host/…)")
    if code == 404:
        return f"the camera has no stream at path '{path}' (404 {reason}): check the path (retried: a relay " \
               f"answers 404 until its camera publishes)"
    return f"the camera answered DESCRIBE with {code} {reason}"


def why_not_open(url: str, timeout_s: float) -> str | None:
    """What :func:`diagnose` found, in words; None when nothing is wrong there."""
    found = diagnose(url, timeout_s)
    return None if found is None else found[0]


def diagnose(url: str, timeout_s: float) -> tuple[str, bool] | None:
    """(what was found, whether it is the camera's settings: a 401, 403 or 404, :data:`MISCONFIGURED_CODES`),
    or None, as :func:`_answered`."""
    code, why = _answered(url, timeout_s)
    return None if why is None else (why, code in MISCONFIGURED_CODES)


def _answered(url: str, timeout_s: float) -> tuple[int | None, str | None]:
    """(the RTSP status code, None when none came; why it did not open, in words). What an RTSP server at ``url`` says to DESCRIBE within ``timeout_s``, in words naming no password; None
    when it answered 200 OK (the stream is there: the media is what failed) or the URL is not rtsp:// or rtsps://
    (asked over TLS, :func:`_over_tls`; port 322 unless given)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
        return None, None
    tls = parts.scheme.lower() == "rtsps"
    host, port = parts.hostname, parts.port or (_RTSPS_PORT if tls else _RTSP_PORT)
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password or "")
    uri = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
    deadline = time.monotonic() + timeout_s
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except ConnectionRefusedError:
        return None, f"nothing listens at {host}:{port} (connection refused)"
    except socket.timeout:  # no answer to the connection itself: not a server that hangs
        return None, f"{host}:{port} cannot be reached (no answer to connecting within {timeout_s:.1f} s)"
    except OSError as exc:  # no route to host, a name that does not resolve
        return None, f"{host}:{port}: {exc.strerror or exc}"
    try:
        with sock, (_over_tls(sock, host) if tls else sock) as conn:
            code, reason, headers = _describe(conn, uri, 1, deadline)
            if code == 401 and user is not None and headers.get("www-authenticate"):
                auth = _authorization(headers["www-authenticate"], user, password, uri)
                code, reason, headers = _describe(conn, uri, 2, deadline, auth)
    except socket.timeout:
        return None, (f"{host}:{port} gave no RTSP answer to DESCRIBE within {timeout_s:.1f} s (not an "
                      f"RTSP server, or it hangs)")
    except ssl.SSLCertVerificationError as exc:
        return None, (f"{host}:{port}: the camera's TLS certificate is not trusted ({exc.verify_message}): add "
                      f"the certificate (or its authority) to the system's trusted certificates")
    except ssl.SSLError as exc:
        return None, f"{host}:{port} did not speak TLS as rtsps:// asks ({exc.reason or exc})"
    except (OSError, ValueError) as exc:
        return None, f"{host}:{port}: {exc}"
    return code, None if code == 200 else _in_words(code, reason, user, parts.path or "/")
