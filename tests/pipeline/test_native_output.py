"""What native libraries print to descriptor 2 in the daemon (inspector.native_output): OpenCV's in-process
FFmpeg refusing a camera with credentials prints its address, password and all, past Python's logging. The
daemon is the real ``inspector run`` in its own process, the camera a real closed port on loopback, the
printer the real FFmpeg inside OpenCV (at AV_LOG_ERROR, as a user debugging a camera sets it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from pipeline_support import base_config, free_port

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cretNATIVE"


def _inspector(tmp_path: Path, cfg: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    path = tmp_path / "inspector.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENCV_FFMPEG_LOGLEVEL": "16", **env}
    return subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def _refused_camera(tiny_model) -> tuple[dict, int]:
    port = free_port()  # nothing listens: every connection is refused at once
    cam = {"name": "gate", "source": f"tcp://op:{SECRET}@127.0.0.1:{port}", "open_timeout_s": 1,
           "read_timeout_s": 1, "reconnect": {"initial_s": 0.05, "max_s": 0.05, "max_attempts": 4}}
    return base_config(tiny_model, f"tcp://127.0.0.1:{free_port()}", [cam]), port


@pytest.mark.parametrize("check", [False, True])
def test_a_refused_camera_s_ffmpeg_line_is_logged_redacted_once_and_named(tiny_model, tmp_path, check):
    cfg, port = _refused_camera(tiny_model)
    res = _inspector(tmp_path, cfg, *(["--check"] if check else []))
    assert SECRET not in res.stdout + res.stderr, res.stderr
    assert "[OPENCV:FFMPEG" not in res.stderr and "[tcp @ 0x" not in res.stderr, res.stderr
    said = f"camera 'gate': ffmpeg: Connection to tcp://op:***@127.0.0.1:{port} failed: Connection refused"
    shown = [line for line in res.stderr.splitlines() if line.endswith(said)]
    assert len(shown) == 1 and "WARNING inspector.native" in shown[0], res.stderr
    if not check:  # reconnects: the same line again, held back and counted at the end
        assert re.search(said.replace("*", r"\*") + r" \([1-9]\d* more like it not shown\)", res.stderr), res.stderr


def test_raw_leaves_descriptor_2_alone_for_debugging(tiny_model, tmp_path):
    cfg, port = _refused_camera(tiny_model)
    res = _inspector(tmp_path, cfg, "--check", INSPECTOR_NATIVE_STDERR="raw")
    assert f"Connection to tcp://op:{SECRET}@127.0.0.1:{port} failed" in res.stdout + res.stderr


_STALLED = textwrap.dedent("""
    import logging, sys, threading, time
    import cv2, numpy as np
    from inspector.native_output import NativeOutput
    ok, png = cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))
    png = bytearray(png.tobytes())
    png[png.find(b"IDAT") + 8] ^= 0xFF  # libpng prints "libpng error: IDAT: invalid code lengths set"
    bad = np.frombuffer(bytes(png), np.uint8)
    release = threading.Event()

    class Stalled(logging.Handler):  # a stderr that stopped taking lines (a blocked journal)
        def emit(self, record):
            release.wait()

    logging.basicConfig()
    logging.getLogger("inspector.native").addHandler(Stalled())
    with NativeOutput():
        t0 = time.monotonic()
        for _ in range(60000):  # libpng's fprintf(stderr) each time: megabytes, far past the pipe
            cv2.imdecode(bad, cv2.IMREAD_COLOR)
        took = time.monotonic() - t0
        release.set()
    print(f"decoded in {took:.2f} s")
""")


def test_a_stalled_drain_never_stalls_a_native_writer():
    res = subprocess.run([sys.executable, "-c", _STALLED], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert res.returncode == 0 and "decoded in" in res.stdout, res.stderr[-3000:]
    took = float(res.stdout.split()[2])
    assert took < 30, res.stdout  # ~45 bytes each, 2.7 MB: had the writer waited for the drain it would hang
    # the first line was logged once the stall ended
    assert "WARNING:inspector.native:libpng: IDAT: invalid code lengths set" in res.stderr
