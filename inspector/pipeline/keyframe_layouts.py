"""The frame size and pixel format a video *file* changes to mid-stream, read from its key frames by ``ffprobe``.

OpenCV's FFmpeg backend rescales every frame to the size the stream declared when it was opened and converts it to
8-bit BGR, and ``CAP_PROP_FRAME_WIDTH`` keeps the first size (measured, OpenCV 5.1: an MPEG-TS of 64x48 H.264 then
128x96 gave ten 64x48 frames); the ``ffmpeg`` program (:mod:`inspector.pipeline.ffmpeg_frames`) scales to its
first size as well. So a recording whose camera was reconfigured (binning, ROI, pixel format) fed the model frames
made otherwise than before and nothing said so. A decoder can change size or pixel format only at a key frame (a
new sequence header: H.264/HEVC SPS at an IDR, MPEG-2 sequence header, any intra-only codec's frame), so
``ffprobe -skip_frame nokey`` decodes the key frames alone (cheap: one in a GOP) and lists every packet's key
flag: the n-th key frame decoded is the n-th packet flagged K, whose index in the stream is its frame's (an IDR
is shown after every frame decoded before it). A file whose key frames differ in size is then read by the
program with each frame at its own size (:func:`inspector.pipeline.ffmpeg_live.open_at_own_sizes`), its frames'
layouts its decoder's; these layouts remain where the size stays (a format change alone distorts nothing) or the
program is missing (the frames are then said rescaled).

Live streams cannot be probed ahead (a second connection would be another stream); their frames are compared
as decoded (:meth:`inspector.pipeline.capture.CaptureWorker._check_layout`).
"""

from __future__ import annotations

import bisect
import re
import logging
import shutil
import subprocess

from inspector.data.images import FrameLayout

log = logging.getLogger("inspector.pipeline.sources")
PROBE_TIMEOUT_S = 20.0  # a longer probe is given up (said once): the file is then read without the check


class KeyframeLayouts:
    """The :class:`FrameLayout` in force at each frame of a video file: (frame index of each key frame, its
    layout), in stream order. ``at(index)``: the layout of frame ``index`` (0-based, as the source counts them
    from the start of the file); ``frames``: how many frames the probe listed (frames from there on, in a
    recording still being written, keep the last layout until :func:`probe` is asked again with ``after``);
    ``key_times``: each key frame's (pts, pts_time as ffprobe wrote it, s), None where it has none (a raw
    stream: such a file is probed whole each time)."""

    def __init__(self, starts: list[int], layouts: list[FrameLayout], frames: int = 0,
                 key_times: list[tuple[int, str] | None] | None = None) -> None:
        self.starts, self.layouts = starts, layouts
        self.frames = max(frames, starts[-1] + 1 if starts else 0)
        self.key_times = key_times if key_times is not None else [None] * len(starts)

    @property
    def last_key(self) -> tuple[int, str] | None:
        """(pts, pts_time) of the last key frame listed, where a later probe can find it again."""
        return self.key_times[-1] if self.key_times else None

    def at(self, index: int) -> FrameLayout:
        return self.layouts[max(0, bisect.bisect_right(self.starts, index) - 1)]


def probe(path: str, camera: str, timeout_s: float = PROBE_TIMEOUT_S,
          after: KeyframeLayouts | None = None) -> KeyframeLayouts | None:
    """The key frames' layouts of the video file ``path`` by ``ffprobe``; None where they cannot be known (no
    ffprobe, a file it cannot read, a probe longer than ``timeout_s``: said once in the log, naming ``camera``).

    ``after``: an earlier probe of the same file, which has grown since (a recording still being written): the
    file is listed again from ``after``'s last key frame on, found again by its pts, and the two listings joined,
    so a long recording is not decoded whole at each rescan. The seek (``-read_intervals``) goes to the key
    frame before that one: a seek to a key frame's own time landed past it (measured, FFmpeg 5.1, MPEG-TS: by
    its dts, a frame earlier). Where it is not found again (no timestamps, one key frame listed), whole."""
    if after is not None and len(after.key_times) > 1 and after.last_key and after.key_times[-2]:
        tail = _listing(path, camera, timeout_s, after.key_times[-2][1])
        joined = _joined(after, tail) if tail is not None else None
        if joined is not None:
            return joined
    return _listing(path, camera, timeout_s)


def _listing(path: str, camera: str, timeout_s: float, from_s: str | None = None) -> KeyframeLayouts | None:
    """ffprobe's listing of ``path`` (from the key frame at or before ``from_s`` seconds, absolute, when given)
    → :func:`parse`."""
    program = shutil.which("ffprobe")
    if program is None:
        return None
    # low_delay: key frames alone need no reordering, and without it MPEG-2's decoder held one back and dropped
    # it at the size change (measured, FFmpeg 5.1); one thread: frame threading delays and reorders nothing here
    cmd = [program, "-v", "error", "-threads", "1", "-flags", "low_delay", "-select_streams", "v:0",
           "-skip_frame", "nokey", *(["-read_intervals", f"{from_s}%"] if from_s is not None else []),
           "-show_packets", "-show_frames", "-show_entries", "packet=pts,pts_time,flags:frame=width,height,pix_fmt",
           "-of", "csv", path]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        log.warning("camera '%s': %s not checked for frame size or format changes (ffprobe took over %g s); a "
                    "change mid-file would be rescaled by the decoder unsaid", camera, path, timeout_s)
        return None
    except OSError:
        return None
    return parse(done.stdout)


def _joined(before: KeyframeLayouts, tail: KeyframeLayouts) -> KeyframeLayouts | None:
    """``before`` continued by ``tail``, a listing from a seek back to ``before``'s last key frame (or earlier):
    that key frame found in ``tail`` by its pts; None where it is not there, or not once."""
    found = [i for i, times in enumerate(tail.key_times) if times == before.last_key]
    if len(found) != 1:  # not there, or timestamps that restart (concatenated segments): which one is not known
        return None
    at = found[0]
    shift = before.starts[-1] - tail.starts[at]
    return KeyframeLayouts(before.starts[:-1] + [start + shift for start in tail.starts[at:]],
                           before.layouts[:-1] + tail.layouts[at:], tail.frames + shift,
                           before.key_times[:-1] + tail.key_times[at:])


def parse(text: str) -> KeyframeLayouts | None:
    """ffprobe's CSV (``packet,<pts>,<pts_time>,<flags>`` per packet, ``frame,<width>,<height>,<pix_fmt>`` per key
    frame decoded) → :class:`KeyframeLayouts`; None when it holds no key frame, or not one decoded frame per key
    packet (which frame is which is then not known: the source's own arrays are compared instead). A last key
    packet without its frame is one cut short by the end of a file still being written: the listing ends before
    it (``frames``), to be probed again once it is whole."""
    keys, key_times, layouts, index = [], [], [], 0
    for line in text.splitlines():
        fields = line.split(",")
        if fields[0] == "packet" and len(fields) > 3:
            if fields[3].startswith("K"):
                keys.append(index)
                key_times.append((int(fields[1]), fields[2]) if fields[1].lstrip("-").isdigit() else None)
            index += 1
        elif fields[0] == "frame" and len(fields) > 3 and fields[1].isdigit() and fields[2].isdigit():
            layouts.append(layout_of(int(fields[1]), int(fields[2]), fields[3]))
    if len(keys) == len(layouts) + 1 and layouts:
        index = keys.pop()  # cut short (docstring)
        key_times.pop()
    if not keys or len(keys) != len(layouts):
        return None
    return KeyframeLayouts(keys, layouts, index, key_times)


def layout_of(width: int, height: int, pix_fmt: str) -> FrameLayout:
    """A decoded frame's layout (a key frame's here, a live frame's in :mod:`inspector.pipeline.ffmpeg_live`),
    ``width`` x ``height`` pixels, by FFmpeg's name of its pixel format: grey formats (gray, gray10le, ya8 …)
    are 1 channel, the others colour; the samples' depth from FFmpeg's name (``yuv420p10le`` 10 bits,
    ``gray16be`` 16, ``rgb48le`` 16 a channel), held in uint16 above 8 bits."""
    grey = pix_fmt.startswith(("gray", "ya", "monow", "monob"))
    wide = _DEPTH.search(pix_fmt)
    depth = int(wide.group(1)) if wide else 8
    depth = 16 if depth in (48, 64) else depth if 8 < depth <= 16 else 8
    return FrameLayout(height, width, 1 if grey else 3, "uint16" if depth > 8 else "uint8",
                       depth if 8 < depth < 16 else None, pix_fmt)


_DEPTH = re.compile(r"(\d+)[lb]e$")  # FFmpeg's pixel formats wider than a byte end in their depth and endianness
