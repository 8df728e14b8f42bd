"""Compressed video frames wider than 8 bits, decoded at full depth by the ``ffmpeg`` program.

OpenCV's FFmpeg backend hands over every frame as 8-bit BGR except FFmpeg's ``gray16le``; with
``CAP_PROP_CONVERT_RGB`` off it hands over the first plane's first ``width`` bytes of any other format
("will be treated as 8UC1": half a row of 16-bit samples). Raw layouts and still-picture codecs are taken as
packets (:mod:`inspector.pipeline.pixel_formats`), but a *compressed* wide stream cannot be: FFV1 ``gbrp16le``
/ ``yuv444p16le``, ProRes 4444, 10-bit HEVC, FFV1 ``gray12le`` … Cut to 8 bits by the container's scale, 12-bit
data in a 16-bit FFV1 video came out 0..16 (239 levels off the same frame as a 16-bit PNG with ``bit_depth:
12``), and narrower declared depths (10, 12 bits) 1 level off on half the pixels (measured, FFmpeg 5.1 /
OpenCV 5.0).

So a video *file* in such a format is decoded by the ``ffmpeg`` program into a pipe, at full depth:
``gray16le`` for grey formats, ``bgr48le`` for the others (colour matrix and range from the stream's tags,
as OpenCV's own conversion takes them; alpha dropped, as the image decoder drops it). FFmpeg widens a
declared depth below 16 bits by bit replication (``v << (16 - n) | v >> (2n - 16)``), which scaled by the
container gives exactly what the declared full scale ``2**n - 1`` gives: the rule of a PNG's sBIT. A
16-bit format is scaled by the camera's ``bit_depth``, as a 16-bit PNG without sBIT is. Where the program is
missing the caller keeps OpenCV's 8-bit frames and warns.

The reader is :class:`inspector.pipeline.ffmpeg_live.FileFrames` (:func:`ffmpeg_live.open_at_own_sizes`), the
one every file read through the program takes: each frame at its own size, and the frames its decoder makes up
around a damaged part counted ``concealed``, never inspected. A bare pipe of fixed-size frames read here before
had no such verdict: a damaged wide recording's made-up frames went to inspection as parts. :class:`FfmpegFrames`
is the part of its cv2.VideoCapture stand-in (get / set ``CAP_PROP_POS_FRAMES``) that
:class:`inspector.pipeline.sources.CvSource` uses, so the source's reading, looping and growing-recording
logic stays one.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from inspector.pipeline import pixel_formats as pf

COPIED_PROPS = (  # what a stand-in for an OpenCV capture answers as OpenCV did
    cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS, cv2.CAP_PROP_FOURCC,
           cv2.CAP_PROP_CODEC_PIXEL_FORMAT, cv2.CAP_PROP_FRAME_COUNT)


def is_grey_tag(tag: int) -> bool:
    """Whether an FFmpeg pixel-format tag (``CAP_PROP_CODEC_PIXEL_FORMAT``) is a grey format: raw.c's
    ``Y1`` + two bytes, either byte order, or a grey :data:`pixel_formats.FFMPEG_LAYOUTS` entry."""
    if tag in pf.FFMPEG_LAYOUTS:
        return pf.FFMPEG_LAYOUTS[tag].order == "grey"
    raw = (tag & 0xFFFFFFFF).to_bytes(4, "little")
    return raw[:2] == b"Y1" or raw[2:][::-1] == b"Y1"


class FfmpegFrames:
    """The part of a cv2.VideoCapture stand-in that a reader of one video file through the ``ffmpeg`` program
    shares (:class:`inspector.pipeline.ffmpeg_live.FileFrames` is the reader): the properties OpenCV's probe
    found (``props``), the frame count, and seeking (``set(CAP_PROP_POS_FRAMES, n)`` restarts the program and
    steps over ``n`` frames: exact, and cheap for the two users, a loop back to 0 and a growing recording read on).

    There is one reader, not a bare pipe beside it: a reader without the program's log cannot tell the frames its
    decoder makes up around a damaged part of the file (``concealed``) from frames decoded whole, and a wide file
    read that way had them inspected as parts (:class:`ffmpeg_live.Concealment`). Subclasses start the program
    (``_start``) and read its frames (``grab`` / ``retrieve`` / ``release``)."""

    def __init__(self, path: str, pix_fmt: str, props: dict[int, float]) -> None:
        self.path, self.pix_fmt, self.props = path, pix_fmt, dict(props)
        self._frame: bytearray | None = None
        self._index = 0  # frames grabbed since the start of the file
        self._start(0)

    def _start(self, skip: int) -> None:
        """(Re)start the program at the file's start and step over ``skip`` frames."""
        raise NotImplementedError

    def grab(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def getBackendName(self) -> str:  # noqa: N802 - cv2.VideoCapture's names
        return "FFMPEG-PROGRAM"

    def get(self, prop: int) -> float:
        fps = self.props.get(cv2.CAP_PROP_FPS) or 0.0
        if prop == cv2.CAP_PROP_POS_FRAMES:
            return float(self._index)
        if prop == cv2.CAP_PROP_POS_MSEC:  # the grabbed frame's time at the nominal rate
            return max(0, self._index - 1) * 1000.0 / fps if fps > 0 else 0.0
        return float(self.props.get(prop, 0.0))

    def set(self, prop: int, value: float) -> bool:
        if prop != cv2.CAP_PROP_POS_FRAMES:
            return False
        self._start(max(0, int(value)))
        return True


Decoder = Callable[[np.ndarray], np.ndarray]


def first_frame_ready(open_reader: Callable[[], "FfmpegFrames"]):
    """The reader ``open_reader()`` makes, rewound after a first frame came; None (the reader released) when the
    program cannot start (OSError) or gives no first frame: the caller keeps OpenCV's frames."""
    try:
        frames = open_reader()
    except OSError:
        return None
    if not frames.grab():
        frames.release()
        return None
    frames.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return frames


def full_depth_decoder(grey: bool, bits: int, width: int, height: int, where: str, bit_depth: int | None,
                       warn_key: str) -> Decoder:
    """The function making one frame of the program's output (``gray16le`` when ``grey``, else ``bgr48le``;
    uint8 (1, N) bytes) model input, uint8 (H, W, 3) BGR; ``bits``: the stream's declared depth. Raises
    ImageRejected (``corrupt``) for bytes that are not one such frame."""
    # a declared depth below 16 bits was widened to fill the container (module docstring): that is its scale
    layout = pf.Layout("<u2", "grey" if grey else "BGR", 16, filled=bits < 16)
    return lambda raw: pf.decode_samples(raw, layout, width, height, where, bit_depth, warn_key)
