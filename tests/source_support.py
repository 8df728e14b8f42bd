"""Reading a camera, and a video file as OpenCV decodes it, the way the source tests share."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from inspector.pipeline.source_base import SourceError
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source


def read_until_it_ends(camera: CameraSection) -> list:
    """Every Grabbed the source of ``camera`` gives, opened once and read until it ends (SourceError), closed."""
    source = make_source(camera)
    source.open()
    grabbed = []
    try:
        with contextlib.suppress(SourceError):
            while True:
                grabbed.append(source.read())
    finally:
        source.close()
    return grabbed


def decoded(path: Path) -> list[np.ndarray]:
    """Every frame of the video file ``path`` as OpenCV's FFmpeg backend decodes it alone (BGR uint8, H x W x 3): the
    truth the source tests compare a camera's frames with. FFmpeg named, not left to OpenCV's choice, so the truth
    comes from the decoder the file camera uses (sources.py opens with an explicit api)."""
    cap, frames = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames


@contextlib.contextmanager
def in_background(work: Callable[[threading.Event], None], join_s: float = 5.0):
    """``work(stop)`` on a daemon thread for the length of the block (a sending camera); ``stop`` is set as the
    block ends and the thread joined for up to ``join_s`` seconds."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(join_s)
