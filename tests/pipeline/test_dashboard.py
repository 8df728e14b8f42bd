"""Live dashboard in a real headless Chromium (Debian chromium + chromedriver via Selenium), marked ``browser``.

Screenshots go to ``$INSPECTOR_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the repository root).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline_support import base_config, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("INSPECTOR_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))

HAVE_LIBS = all(importlib.util.find_spec(m) for m in ("selenium", "starlette", "uvicorn"))
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian chromium and chromium-driver"),
              pytest.mark.skipif(not HAVE_LIBS, reason="needs selenium ('dev' extra) and the 'dashboard' extra")]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1100", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def synthetic_daemon(model, endpoint, listen, **dashboard):
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon

    camera = {"name": "line1", "source": "synthetic", "fps": 8.0, "mode": "live",
              "synthetic": {"texture": "procedural", "size": 96, "defect_rate": 0.25, "pool": 4}}
    cfg = base_config(model, endpoint, [camera], dashboard={"listen": listen, **dashboard},
                      postprocess={"min_region_area": 1})
    cfg["publish"]["stats_interval_s"] = 0.25
    return make_daemon(daemon_config(cfg))


def test_page_shows_defects_within_2s_and_charts_update(tiny_model, endpoint, browser):
    from inspector.client import Subscriber

    listen = f"127.0.0.1:{free_port()}"
    daemon = synthetic_daemon(tiny_model, endpoint, listen, push_interval_s=0.1)
    daemon.setup()
    sub = Subscriber(endpoint, ["v1/defect"])
    try:
        assert daemon.publisher.wait_for_subscription(5.0)
        daemon.start()
        browser.get(f"http://{listen}/")
        assert browser.title.startswith("inspector")
        wait_for(lambda: browser.execute_script(
            "return document.querySelector('[data-camera=\"line1\"]')?.dataset.state === 'online'"), 10, "camera online")
        # a defect published now appears on the page (with its drawn overlay) within 2 s
        for _ in range(3):
            event = sub.recv(timeout=10)
            assert event is not None, "no defect from the synthetic camera"
            t0 = time.monotonic()
            selector = f'[data-event="{event.event_id}"] canvas[data-drawn="1"]'
            wait_for(lambda: browser.execute_script(f"return !!document.querySelector('{selector}')"), 2.0,
                     f"defect {event.event_id} on the page")
            assert time.monotonic() - t0 < 2.0
        # the charts redraw with more points as stats arrive
        def chart_state():
            return browser.execute_script(
                "const c = document.getElementById('latency');"
                "return [Number(c.dataset.points), c.toDataURL().length,"
                " Number(document.getElementById('throughput').dataset.points)];")
        first = wait_for(lambda: (s := chart_state())[0] >= 2 and s, 5, "latency chart points")
        later = wait_for(lambda: (s := chart_state())[0] > first[0] + 2 and s, 5, "chart update")
        assert later[2] >= later[0] - 1
        frame_ok = browser.execute_script(
            "const i = document.querySelector('[data-camera=\"line1\"] img'); return i.complete && i.naturalWidth")
        assert frame_ok and frame_ok > 0  # the newest frame thumbnail is shown
        health = browser.find_element("css selector", "#health tbody").text
        assert health.startswith("line1")
        time.sleep(0.5)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        sub.close()
        daemon.request_stop()
        daemon.wait(timeout=20)


def test_token_required_off_loopback_and_checked(tiny_model, endpoint, tmp_path):
    from inspector.errors import ConfigError

    with pytest.raises(ConfigError, match="dashboard.token_file: required"):
        synthetic_daemon(tiny_model, endpoint, f"0.0.0.0:{free_port()}")
    token = tmp_path / "token"
    token.write_text("s3cret-token-0123456789\n")
    listen = f"127.0.0.1:{free_port()}"
    daemon = synthetic_daemon(tiny_model, endpoint, listen, token_file=str(token))
    daemon.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{listen}/api/state", timeout=5)
        assert err.value.code == 401
        ok = urllib.request.urlopen(f"http://{listen}/api/state?token=s3cret-token-0123456789", timeout=5)
        assert ok.status == 200 and b'"cameras"' in ok.read()
    finally:
        daemon.request_stop()
        daemon.wait(timeout=20)


def test_a_status_reason_quoting_a_file_name_is_shown_as_text_never_run_as_html(tiny_model, endpoint, tmp_path,
                                                                               browser):
    """A camera's status reason quotes its file's name; the page put it in with innerHTML, so a video named
    '<img src=x onerror=…>.avi' ran its script in every operator's browser (untrusted text, OWASP XSS)."""
    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    name = "bad<img src=x onerror=\"document.body.dataset.pwned='1'\">.avi"
    (tmp_path / name).write_bytes(b"RIFF" + b"\0" * 4000)  # no video a decoder can read: the camera fails
    live = {"name": "line1", "source": "synthetic", "fps": 8.0, "mode": "live",
            "synthetic": {"texture": "procedural", "size": 96, "defect_rate": 0.25, "pool": 4}}
    listen = f"127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, endpoint, [live, {"name": "line2", "source": str(tmp_path / name)}],
                      dashboard={"listen": listen, "push_interval_s": 0.1})
    daemon = make_daemon(daemon_config(cfg))
    daemon.setup()
    try:
        daemon.start()
        browser.get(f"http://{listen}/")
        meta = wait_for(lambda: browser.execute_script(
            "const c = document.querySelector('[data-camera=\"line2\"]');"
            "return c && c.dataset.state === 'failed' && c.querySelector('.meta').textContent"), 30, "line2 failed")
        assert name in meta
        assert browser.execute_script("return document.querySelectorAll('.meta img').length") == 0
        assert browser.execute_script("return document.body.dataset.pwned") is None
    finally:
        daemon.request_stop()
        daemon.wait(timeout=20)
