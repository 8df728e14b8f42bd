"""The HTTP servers' limits as settings, behind a reverse proxy, and the metrics token, on real sockets.

* ``dashboard.limits`` / ``metrics.limits``: typed, ranged settings, unknown keys rejected with a suggestion;
  the defaults are the former constants.
* ``dashboard.trusted_proxies``: connections from a trusted proxy are capped per forwarded client address
  (X-Forwarded-For, right-most untrusted entry), not as one client; a peer that is not trusted cannot
  escape its cap by sending the header.
* ``metrics.token_file``: a scrape needs the bearer token; off loopback without one, a warning at start.
The "proxy" connects from 127.0.0.1, an untrusted client from 127.0.0.2 (both loopback on Linux).
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import urllib.error
import urllib.request

import pytest

from pipeline_support import base_config, free_port

HAVE_LIBS = all(importlib.util.find_spec(m) for m in ("starlette", "uvicorn", "prometheus_client"))
PROXY, UNTRUSTED = "127.0.0.1", "127.0.0.2"
TOKEN = "metrics-token-0123456789"
CAMERA = {"name": "line1", "source": "synthetic", "fps": 20.0, "mode": "live",
          "synthetic": {"texture": "procedural", "size": 96, "defect_rate": 0.25, "pool": 4}}


# -- the settings --------------------------------------------------------------------------------------------
def test_limits_defaults_are_the_former_constants():
    from inspector.pipeline.integration_config import DashboardSection, MetricsSection

    d, m = DashboardSection().limits, MetricsSection().limits
    assert (d.max_connections, d.max_per_client, d.request_deadline_s, d.write_stall_s, d.send_buffer_bytes) == (
        256, 32, 10.0, 30.0, 128 * 1024)
    assert (m.max_connections, m.max_per_client, m.request_deadline_s) == (32, 8, 10.0)
    assert DashboardSection().trusted_proxies == ()


@pytest.mark.parametrize("section, value, message", [
    ("dashboard", {"limits": {"max_conections": 9}}, "dashboard.limits: unknown key 'max_conections' "
                                                      "(did you mean 'max_connections'?)"),
    ("metrics", {"limits": {"request_deadline_s": 0}}, "metrics.limits.request_deadline_s: 0.0 is out of range"),
    ("metrics", {"limits": {"max_per_client": 40}}, "metrics.limits.max_per_client: 40 is more than "
                                                    "max_connections (32)"),
    ("dashboard", {"trusted_proxies": ["10.0.0.0/33"]}, "dashboard.trusted_proxies[0]: '10.0.0.0/33' is not"),
    ("dashboard", {"trusted_proxies": "10.0.0.1"}, "dashboard.trusted_proxies: expected a list"),
])
def test_bad_limits_are_one_line_errors(section, value, message):
    from inspector.config import from_dict
    from inspector.errors import ConfigError
    from inspector.pipeline.integration_config import DashboardSection, MetricsSection

    cls = {"dashboard": DashboardSection, "metrics": MetricsSection}[section]
    with pytest.raises(ConfigError) as err:
        from_dict(cls, value, section)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("peer, header, client", [
    ("10.9.0.9", ["6.6.6.6"], "10.9.0.9"),                       # not a trusted proxy: the header is ignored
    ("10.0.0.5", ["1.1.1.1, 2.2.2.2"], "2.2.2.2"),               # right-most: the address the proxy saw
    ("10.0.0.5", ["6.6.6.6, 2.2.2.2, 10.0.0.7"], "2.2.2.2"),     # a chain of trusted proxies is skipped
    ("10.0.0.5", ["6.6.6.6", "2.2.2.2"], "2.2.2.2"),             # the header twice: one list, in order
    ("10.0.0.5", ["10.0.0.6, 10.0.0.7"], "10.0.0.6"),            # all trusted: the left-most
    ("10.0.0.5", [], "10.0.0.5"),                                # no header: the proxy itself
    ("10.0.0.5", ["2.2.2.2:50123"], "2.2.2.2"),                  # a proxy that adds the port: one client
    ("10.0.0.5", ["[2001:db8::1]:443, 10.0.0.7"], "2001:db8::1"),
    ("10.0.0.5", ["2001:db8::2"], "2001:db8::2"),                # IPv6 without port is kept whole
])
def test_client_address_takes_the_right_most_untrusted_forwarded_entry(peer, header, client):
    from inspector.integrations.dashboard.guard import client_address, networks

    assert client_address(peer, header, networks(["10.0.0.0/24"])) == client


# -- behind a reverse proxy (real uvicorn, real sockets) -------------------------------------------------------
def _daemon(tiny_model, endpoint, **sections):
    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    cfg = base_config(tiny_model, endpoint, [CAMERA], postprocess={"min_region_area": 1}, **sections)
    d = make_daemon(daemon_config(cfg))
    d.start()
    return d


def _stop(d) -> None:
    d.request_stop()
    d.wait(timeout=20)


def open_stream(port: int, source: str, forwarded_for: str | None) -> tuple[socket.socket, str]:
    """An event-stream request from ``source`` (kept open) and the status line, or '' when reset."""
    s = socket.socket()
    s.settimeout(5)
    s.bind((source, 0))
    header = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET /events HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
        return s, s.recv(64).decode("latin-1").split("\r\n")[0]
    except (ConnectionResetError, BrokenPipeError):
        return s, ""


@pytest.mark.skipif(not HAVE_LIBS, reason="needs the 'dashboard' and 'metrics' extras")
def test_trusted_proxy_is_capped_per_forwarded_client_and_spoofing_is_ignored(tiny_model, endpoint):
    port = free_port()
    d = _daemon(tiny_model, endpoint, dashboard={"listen": f"127.0.0.1:{port}", "trusted_proxies": [PROXY],
                                                  "limits": {"max_per_client": 2}})
    socks = []
    try:
        # six plant browsers behind the proxy, two streams each: all served (six streams > the cap of 2)
        for i in range(6):
            for _ in range(2):
                s, status = open_stream(port, PROXY, f"10.1.0.{i}")
                socks.append(s)
                assert status == "HTTP/1.1 200 OK", (i, status)
        # one browser over its own cap is refused, the others are not
        s, status = open_stream(port, PROXY, "10.1.0.0")
        socks.append(s)
        assert status == "HTTP/1.1 429 Too Many Requests"
        # a peer that is not a trusted proxy cannot spread itself over forged addresses
        statuses = []
        for i in range(4):
            s, status = open_stream(port, UNTRUSTED, f"10.2.0.{i}")
            socks.append(s)
            statuses.append(status)
        assert statuses[:2] == ["HTTP/1.1 200 OK"] * 2 and statuses[2:] == ["", ""], statuses
    finally:
        for s in socks:
            s.close()
        _stop(d)


# -- metrics token -------------------------------------------------------------------------------------------
def scrape(port: int, token: str | None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.skipif(not HAVE_LIBS, reason="needs the 'dashboard' and 'metrics' extras")
def test_metrics_token_is_required_when_set(tiny_model, endpoint, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    d = _daemon(tiny_model, endpoint, metrics={"listen": f"127.0.0.1:{port}", "token_file": str(token_file)})
    try:
        assert scrape(port, None) == 401
        assert scrape(port, "wrong-token-0123456789") == 401
        assert scrape(port, TOKEN) == 200
    finally:
        _stop(d)


@pytest.mark.skipif(not HAVE_LIBS, reason="needs the 'dashboard' and 'metrics' extras")
@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_metrics_off_loopback_without_token_warns_once(tiny_model, endpoint, caplog, host, warned):
    caplog.set_level(logging.WARNING, logger="inspector.metrics")
    port = free_port()
    d = _daemon(tiny_model, endpoint, metrics={"listen": f"{host}:{port}"})
    try:
        assert scrape(port, None) == 200
        assert scrape(port, None) == 200
    finally:
        _stop(d)
    lines = [r.getMessage() for r in caplog.records if "without metrics.token_file" in r.getMessage()]
    assert len(lines) == (1 if warned else 0), lines
