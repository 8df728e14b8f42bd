"""A live camera whose every frame is refused for what it is (a configuration the camera or the daemon must change),
reopened after ``read_timeout_s`` of such frames: the first reopen may help (a decoder stuck after a hiccup), the
ones after it that end the same way cannot. They were retried at the reconnect back-off for ever, a 'reconnecting'
warning and an 'online' line each time, the cause said as if transient. Now the second reopen that ends the same way
is said once, as a configuration error naming the cause, and retried at ``reconnect.max_s``, quietly.

A real HTTP snapshot camera on loopback (``INSPECTOR_TEST_PORTS``) serving real TIFF files of 32-bit integers (each
GET a new picture), which the one decoder refuses until ``bit_depth`` is set; the real capture worker.
"""

from __future__ import annotations

import io
import logging
import time

import numpy as np
import pytest
import tifffile

from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.sources import make_source
from inspector.pipeline.telemetry import Counters

from pipeline_support import HttpCamera, run_capture_worker


class Int32Camera(HttpCamera):
    """A snapshot camera on 127.0.0.1 answering every GET with a new 64x64 int32 TIFF."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)

        def respond():
            out = io.BytesIO()
            tifffile.imwrite(out, rng.integers(0, 4096, (64, 64), dtype=np.int32))
            return 200, "image/tiff", out.getvalue()

        super().__init__(respond)
        self.url = super().url("/snapshot.tif")


@pytest.mark.parametrize("max_attempts", [0, 50])
def test_reopens_that_cannot_help_are_said_once_as_a_configuration_error_and_retried_slowly(caplog, max_attempts):
    """``max_attempts`` still counts the reopens as they come (50: not reached in 4 s, the camera still retried)."""
    camera = Int32Camera()
    cam = CameraSection(name="snap", source=camera.url, fps=50.0, open_timeout_s=5, read_timeout_s=0.2,
                        watchdog_s=60, reconnect=ReconnectSection(initial_s=0.05, max_s=0.4, jitter=0.0,
                                                                  max_attempts=max_attempts))
    states, counters = [], Counters()
    with caplog.at_level(logging.INFO, logger="inspector.capture"):
        try:
            worker = run_capture_worker(cam, 4.0, counters, lambda _c, state, *a: states.append(state))
        finally:
            camera.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    said = [line for line in lines if "configuration" in line]
    assert len(said) == 1 and "bit_depth" in said[0] and "reconnect.max_s" in said[0], lines
    assert "\n" not in said[0]
    assert lines[lines.index(said[0]) + 1:] == [], lines  # was a 'reconnecting' warning per reopen (8 in 4 s)
    assert sum("reconnecting" in line for line in lines) == 1, lines
    assert worker.reconnects <= 8, worker.reconnects  # at max_s once said (every ~0.6 s: 0.2 s of frames + 0.4 s)
    assert counters.get("snap.captured") == 0 and "failed" not in states, states
