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

FFmpeg's MPEG-2 decoder names every frame by the first sequence's chroma format until the size changes (a
4:2:0 → 4:2:2 switch at the same size went unseen, and the program decoded it wrong): an MPEG-2 file's sequence
headers are read for it (:func:`mpeg2_chroma_told`, on from the last scan for a grown recording), and such a file
stays with OpenCV
(:func:`chroma_change_unfollowed`). Frames are matched to key frames by their time where known (a decoder that
drops a frame at a new sequence shifts the count, :meth:`KeyframeLayouts.at`). A recording still being written is
listed again as it is read past the end listed (``probe``'s ``after``).

Live streams cannot be probed ahead (a second connection would be another stream); their frames are compared
as decoded (:meth:`inspector.pipeline.capture.CaptureWorker._check_layout`).
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import shutil
import subprocess
import time

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
                 key_times: list[tuple[int, str] | None] | None = None, codec: str | None = None,
                 start_s: float | None = None, key_chroma: list[int] | None = None) -> None:
        self.starts, self.layouts, self.codec = starts, layouts, codec  # codec: FFmpeg's name, None if unsaid
        # MPEG-2: the chroma_format in force at each key frame, as its sequence headers say (mpeg2_chroma_told),
        # from which a later scan of the grown file goes on; None where not read
        self.key_chroma = key_chroma
        self.frames = max(frames, starts[-1] + 1 if starts else 0)
        self.key_times = key_times if key_times is not None else [None] * len(starts)
        self.start_s = start_s  # the stream's start time (s), from which OpenCV counts a frame's time
        timed = start_s is not None and all(self.key_times)
        self._starts_ms = [(float(t[1]) - start_s) * 1000.0 for t in self.key_times] if timed else None

    @property
    def last_key(self) -> tuple[int, str] | None:
        """(pts, pts_time) of the last key frame listed, where a later probe can find it again."""
        return self.key_times[-1] if self.key_times else None

    def at(self, index: int, time_ms: float | None = None) -> FrameLayout:
        """Frame ``index``'s layout; by its time ``time_ms`` (from the stream's start, as OpenCV's
        ``CAP_PROP_POS_MSEC``) where it and every key frame's time are known: FFmpeg's MPEG-2 decoder drops the
        frame it holds at a new sequence header, so counted frames came one short after it and the first frame
        of a 4:2:2 sequence was said 4:2:0 (measured, OpenCV 5 / FFmpeg 5.1); times do not shift."""
        if time_ms is not None and self._starts_ms is not None:
            return self.layouts[max(0, bisect.bisect_right(self._starts_ms, time_ms + 0.5) - 1)]
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
    listed = None
    if after is not None and len(after.key_times) > 1 and after.last_key and after.key_times[-2]:
        tail = _listing(path, camera, timeout_s, after.key_times[-2][1])
        listed = _joined(after, tail) if tail is not None else None
    listed = listed or _listing(path, camera, timeout_s)
    return mpeg2_chroma_told(listed, path, timeout_s, after) if listed is not None and \
        listed.codec == "mpeg2video" else listed


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
           "-show_packets", "-show_frames", "-show_entries",
           "stream=codec_name,start_time:packet=pts,pts_time,flags:frame=width,height,pix_fmt",
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
                           before.key_times[:-1] + tail.key_times[at:], tail.codec, tail.start_s,
                           before.key_chroma)


def parse(text: str) -> KeyframeLayouts | None:
    """ffprobe's CSV (``packet,<pts>,<pts_time>,<flags>`` per packet, ``frame,<width>,<height>,<pix_fmt>`` per key
    frame decoded, ``stream,<codec>,<start_time>``) → :class:`KeyframeLayouts`; None when it holds no key frame, or not one decoded frame per key
    packet (which frame is which is then not known: the source's own arrays are compared instead). A last key
    packet without its frame is one cut short by the end of a file still being written: the listing ends before
    it (``frames``), to be probed again once it is whole."""
    keys, key_times, layouts, index, codec, start_s = [], [], [], 0, None, None
    for line in text.splitlines():
        fields = line.split(",")
        if fields[0] == "stream" and len(fields) > 2:
            codec, start_s = fields[1], float(fields[2]) if re.fullmatch(r"-?[0-9.]+", fields[2]) else None
        elif fields[0] == "packet" and len(fields) > 3:
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
    return KeyframeLayouts(keys, layouts, index, key_times, codec, start_s)


# MPEG-2's sequence_extension chroma_format (ISO/IEC 13818-2 §6.3.5, table 6-5) → FFmpeg's 8-bit pixel format
_MPEG2_CHROMA = {1: "yuv420p", 2: "yuv422p", 3: "yuv444p"}
# trace_headers' lines (FFmpeg 5.1): a sequence_extension's chroma_format, and the line ending each packet's trace
_TRACED_CHROMA = re.compile(r"\bchroma_format\s+[01]+ = (\d)\b")
_TRACED_PACKET = re.compile(r"\bPacket: \d+ bytes")
_TRACED_KEY = re.compile(r"\bPacket: \d+ bytes, key frame, pts (-?\d+)")


def mpeg2_chroma_told(listed: KeyframeLayouts, path: str, timeout_s: float,
                      after: KeyframeLayouts | None = None) -> KeyframeLayouts:
    """``listed`` (an MPEG-2 file's key frames) with each key frame's chroma format as its sequence header says.

    FFmpeg's MPEG-2 decoder keeps the chroma format of the first sequence: a recording switched from 4:2:0 to
    4:2:2 mid-stream (same size) decoded its later frames as 4:2:0 (214 levels off) and named them ``yuv420p``
    (measured, FFmpeg 5.1; OpenCV's own FFmpeg decoded them right): the listing never saw the change. So the
    stream is copied (``-c copy``: nothing decoded) through ``trace_headers``, each sequence_extension's
    chroma_format read, and key frame ``n`` takes the one in force at the ``n``-th key packet. Unchanged where the
    copy fails or a format is not 8-bit 4:2:x (the decoder's name is then kept).

    ``after``: the earlier scan of the same file, grown since (:func:`probe`'s): the copy goes on from that scan's
    last key frame but one (the seek the key-frame listing makes), the last found again by its pts, so a
    recording read as it grows is not copied whole at each rescan (it was: a growing hour-long recording was
    re-read from its start every time it was read past its listed end). Whole where it is not found once."""
    wanted, keys = len(listed.starts), None
    if after is not None and after.key_chroma and len(after.key_times) > 1 and after.key_times[-2] \
            and after.last_key and after.start_s is not None:
        tail = _mpeg2_key_chroma(path, timeout_s, float(after.key_times[-2][1]) - after.start_s)
        found = [i for i, (pts, _) in enumerate(tail) if pts == after.last_key[0]]
        keys = after.key_chroma[:-1] + [chroma for _, chroma in tail[found[0]:]] if len(found) == 1 else None
    if keys is None or len(keys) < wanted:
        keys = [chroma for _, chroma in _mpeg2_key_chroma(path, timeout_s)]
    keys = keys[:wanted] if len(keys) >= wanted else None  # a last key packet cut short is not listed (parse)
    layouts = list(listed.layouts)
    for n, layout in enumerate(layouts if keys else []):
        told = _MPEG2_CHROMA.get(keys[n])
        if told and layout.pixel_format in _MPEG2_CHROMA.values() and told != layout.pixel_format:
            layouts[n] = layout_of(layout.width, layout.height, told)
    return KeyframeLayouts(listed.starts, layouts, listed.frames, listed.key_times, listed.codec, listed.start_s,
                           keys)


def chroma_change_unfollowed(listed: KeyframeLayouts) -> bool:
    """Whether ``listed`` (chroma told: :func:`mpeg2_chroma_told`) holds an MPEG-2 key frame whose chroma format
    differs from the one before at the same size: the ``ffmpeg`` program's decoder re-reads the chroma format
    only with a new size (measured, FFmpeg 5.1: 64x48 4:2:0 → 128x96 4:2:2 decoded right; → 64x48 4:2:2 read
    as 4:2:0, 20 levels off on average), so such a file must not be read by the program."""
    pairs = zip(listed.layouts, listed.layouts[1:])
    return listed.codec == "mpeg2video" and any((a.width, a.height) == (b.width, b.height) and
                                                 a.pixel_format != b.pixel_format for a, b in pairs)


def _mpeg2_key_chroma(path: str, timeout_s: float, from_s: float | None = None) -> list[tuple[int | None, int]]:
    """(pts, chroma_format in force) of each key packet of the MPEG-2 file ``path``, in stream order, from the
    key frame at or before ``from_s`` s after the stream's start (``-ss``; ``-copypriorss``: the packets from
    that key frame on, not only those past ``from_s``; ``-copyts``: the file's own pts, as ffprobe lists them); [] when the copy fails or takes over ``timeout_s``. Only the extensions pass (start code B5): the
    trace is a few lines a picture, never its data."""
    seek = ["-ss", f"{max(0.0, from_s):.6f}"] if from_s is not None else []
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-copyts", *seek,
           "-i", f"file:{os.path.abspath(path)}", "-map", "0:v:0", "-c", "copy", "-copypriorss", "1",
           "-bsf:v", "filter_units=pass_types=0xb5,trace_headers", "-f", "null", "-"]
    keys, current, pending = [], 0, None  # pending: the pts of the key packet whose units are being traced
    deadline = time.monotonic() + timeout_s
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError:
        return []
    with proc:
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace")
            if chroma := _TRACED_CHROMA.search(line):
                current = int(chroma[1])
            elif _TRACED_PACKET.search(line):  # a packet's line comes before its units' (trace_headers)
                if pending is not None:
                    keys.append((pending, current))
                key = _TRACED_KEY.search(line)
                pending = int(key[1]) if key else None
            if time.monotonic() > deadline:
                proc.kill()
                return []
    return keys + ([(pending, current)] if pending is not None else [])


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
