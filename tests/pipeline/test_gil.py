"""Preprocessing releases the GIL (issue 17): the batcher's OpenCV work never stalls the other Python threads."""

from __future__ import annotations

import threading
import time

import numpy as np

from inspector.backends.base import InputSpec
from inspector.pipeline.preprocess import Preprocessor


def _max_gap_ms(seconds: float) -> float:
    """The longest stretch this (Python) thread could not run, while spinning for ``seconds``."""
    longest, last = 0.0, time.perf_counter()
    end = last + seconds
    while last < end:
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    return longest * 1e3


def test_preprocessing_a_huge_frame_does_not_hold_the_gil():
    frame = np.random.default_rng(0).integers(0, 256, (4320, 7680, 3), dtype=np.uint8)  # 8K: one call is long
    pre = Preprocessor(InputSpec(256, 256), downscale="area")  # INTER_AREA: the slowest single call
    out = np.empty((256, 256, 3), np.uint8)
    t0 = time.perf_counter()
    pre.into(frame, out)
    call_ms = (time.perf_counter() - t0) * 1e3
    stop = threading.Event()

    def work():
        while not stop.is_set():
            pre.into(frame, out)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        gap = _max_gap_ms(max(1.0, 4 * call_ms / 1e3))
    finally:
        stop.set()
        worker.join()
    # Holding the GIL would stall this thread for a whole call; only OS scheduling gaps remain.
    assert gap < 0.5 * call_ms, f"main thread stalled {gap:.1f} ms during {call_ms:.1f} ms preprocessing calls"
