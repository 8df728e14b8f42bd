"""inspector.pipeline.rtsp_probe without an RTSP server: what it says of peers that are no RTSP camera."""

from __future__ import annotations

import socket
import time

from inspector.pipeline.rtsp_probe import why_not_open


def _full_backlog() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket that never accepts, its backlog filled: Linux drops further SYNs, so a connect to it
    times out as one to a host that does not answer does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(server.getsockname())
        fillers.append(c)
    time.sleep(0.2)
    return server, fillers


def test_a_host_that_never_answers_the_connection_is_not_said_to_be_a_hanging_rtsp_server():
    """Connecting timed out and was told as "gave no RTSP answer to DESCRIBE … (not an RTSP server, or it hangs)",
    a server that accepted; the camera could not even be reached."""
    server, fillers = _full_backlog()
    try:
        port = server.getsockname()[1]
        why = why_not_open(f"rtsp://127.0.0.1:{port}/cam", 0.5)
        assert why == f"127.0.0.1:{port} cannot be reached (no answer to connecting within 0.5 s)", why
    finally:
        for c in fillers + [server]:
            c.close()


def test_a_server_that_accepts_and_stays_silent_is_told_as_such():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        port = server.getsockname()[1]
        why = why_not_open(f"rtsp://127.0.0.1:{port}/cam", 0.3)
        assert why.startswith(f"127.0.0.1:{port} gave no RTSP answer to DESCRIBE"), why
    finally:
        server.close()


def _tls_rtsp_server(tmp_path, status: str):
    """An rtsps:// server on loopback (TLS, a self-signed certificate for 127.0.0.1, as IP cameras have: its
    file ``tmp_path / "cert.pem"``) answering every request with ``status`` (a Digest challenge with 401).
    Returns (its listening socket, the thread)."""
    import ssl
    import subprocess
    import threading

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=camera",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                while request := tls.recv(4096):  # one request per read: the probe's answers are short
                    cseq = next((line.split(b":")[1].strip() for line in request.split(b"\r\n")
                                 if line.lower().startswith(b"cseq:")), b"1").decode()
                    tls.sendall(f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n"
                                f'WWW-Authenticate: Digest realm="cam", nonce="abc"\r\n\r\n'.encode())
        except OSError:
            pass

    def serve() -> None:  # each connection: FFmpeg's own try (where it has TLS), then the probe's
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_an_rtsps_camera_is_asked_over_tls_why_it_did_not_open(tmp_path, monkeypatch):
    """rtsps:// was connected to and then not asked (None: "cannot open" in the daemon's words, whatever the
    camera said); it is asked DESCRIBE over TLS like rtsp://: a trusted certificate, the 401; an untrusted one
    (self-signed, what OpenCV's FFmpeg refuses) is the answer itself."""
    import shutil

    import pytest

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl program to make a certificate")
    server, thread = _tls_rtsp_server(tmp_path, "401 Unauthorized")
    try:
        url = f"rtsps://op:pw@127.0.0.1:{server.getsockname()[1]}/cam"
        untrusted = why_not_open(url, 3.0)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        trusted = why_not_open(url, 3.0)
    finally:
        server.close()
        thread.join(3)
    assert untrusted is not None and "TLS certificate is not trusted (self-signed" in untrusted, untrusted
    assert trusted is not None and "refused user 'op' (401 Unauthorized" in trusted, trusted
    assert "pw" not in untrusted + trusted


def test_an_rtsps_url_to_a_plain_rtsp_server_says_it_did_not_speak_tls():
    server = socket.create_server(("127.0.0.1", 0))
    try:
        port = server.getsockname()[1]
        import threading

        def answer_plain() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")

        threading.Thread(target=answer_plain, daemon=True).start()
        why = why_not_open(f"rtsps://127.0.0.1:{port}/cam", 2.0)
    finally:
        server.close()
    assert why is not None and "did not speak TLS" in why, why


def test_an_rtsps_camera_that_did_not_open_says_why_in_the_daemons_words(tmp_path):
    """Through the camera's open: an rtsps:// camera with a self-signed certificate (refused by OpenCV's FFmpeg)
    said only "cannot open"; now why."""
    import shutil

    import pytest

    from inspector.errors import SourceError
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import make_source

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl program to make a certificate")
    server, thread = _tls_rtsp_server(tmp_path, "401 Unauthorized")
    try:
        source = make_source(CameraSection(name="tls", source=f"rtsps://127.0.0.1:{server.getsockname()[1]}/cam",
                                           open_timeout_s=3))
        with pytest.raises(SourceError) as info:
            source.open()
    finally:
        server.close()
        thread.join(3)
    assert "the camera's TLS certificate is not trusted" in str(info.value), info.value
    assert not info.value.permanent
