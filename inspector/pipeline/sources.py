"""Frame sources: video files, still image files, image folders, V4L2 devices, RTSP/HTTP streams, GStreamer, synthetic.

A source is opened, read frame by frame, and closed, all from its camera's
capture thread. :meth:`Source.read` grabs, stamps ``time.monotonic_ns()`` right
after the grab, then decodes, and returns a :class:`Grabbed`; it returns
``None`` at the end of a finite source and raises :class:`SourceError` when a
live source fails (the capture worker then reconnects). A frame that cannot be
decoded comes back as a ``Grabbed`` with ``image=None``, an ``error`` and a
``reason`` (the counter key: ``corrupt``, ``missing``, ``incomplete``,
``rejected.too_small`` …): the worker counts and skips it. Factory cameras
(GenICam via harvesters, aravis, pypylon …) fit the same small interface.

Error kinds: a :class:`SourceError` with ``permanent=True`` (a recording that
can never be decoded, a one-pass folder without images) fails the camera at
once; other errors are transient and the worker reconnects with back-off. A recording that does not open while it
is still being written (changed within ``file_settle.SETTLE_S``; one its muxer has not finished by its own bytes, within
``file_settle.STALLED_S``: an MP4 without its index or a fragmented one without its mfra box, an AVI of unset RIFF
size, a TS ending in a cut packet, a Matroska file of unknown size, :mod:`inspector.pipeline.recording_ends`) is
transient: waited for, then read whole; a one-pass one's end is judged so too.
:class:`SourceChanged` reports a looping file that was replaced or truncated. A one-pass
recording still being written (changed within the last 2 s) is read on as it grows: at the end of
what is there, ``read`` waits briefly and returns a frame-less ``Grabbed`` (reason ``growing``). An MPEG-TS one is
read by the ffmpeg program fed through a pipe as it grows (:mod:`inspector.pipeline.ts_feed`): its demuxer never
meets an end of what is there, which made frames up out of the packet cut by it. So is any inter-coded one. An AVI
whose muxer has not finished, read as packets (MJPG), is read no further than its frames whole on disk
(:mod:`inspector.pipeline.avi_front`): FFmpeg cannot seek it back to a frame it read cut.

A video file whose decoder can make frames up around a damaged part (an inter-coded stream: H.264, HEVC, MPEG-2/4 …)
is never read by OpenCV alone, which hands such frames on unmarked: one read by OpenCV is judged frame by frame by a
verdict pass of the ffmpeg program beside it (:mod:`inspector.pipeline.file_verdicts`), and read on by the program
from the first frame the pass does not vouch for; the made-up frames are counted ``concealed``, never inspected.

A frame's age: its stamp is when it arrived. ``meta["lag_ms"]`` (the event's ``source.lag_ms``), when present,
says more: a number is a measured lag, already taken off the stamp (a stream read slower than it plays); ``None``
says the frame was stamped when read and how long it waited before is unknown (a stream whose timestamps do not
follow real time, a GenICam buffer without a trustworthy receive stamp): never a made-up figure.

Live sources (``live = True``: devices, URLs, GStreamer) also have
:meth:`Source.skip`, a grab without decoding, so ``fps`` pacing can keep the
decoder's buffers drained and always inspect the newest frame.

http(s) URLs are asked once what they serve (:class:`inspector.pipeline.http_sources.SnapshotSource`): an MJPEG
stream is drained on a thread of its own, its newest picture stamped when it arrived; still pictures are fetched
one per read. :class:`Source`, :class:`Grabbed` and :class:`SourceChanged` are defined in
:mod:`inspector.pipeline.source_base` and importable from here.

Folder images, still image files (known by their content), snapshot URLs, MJPEG streams and video frames that
are still pictures (Motion JPEG, PNG, TIFF) or wider than 8 bits (:mod:`inspector.pipeline.pixel_formats`; a
compressed wide recording through the ffmpeg program, :mod:`inspector.pipeline.ffmpeg_frames`) are decoded by
:func:`inspector.data.images.decode_image`, the decoder training, evaluation,
calibration and ``predict`` use (never by FFmpeg). An AVI of bottom-up uncompressed DIB frames never reaches
OpenCV (its conversion of them aborted the process): :mod:`inspector.pipeline.avi_raw` reads it.

A frame made otherwise than the one before (size, grey or colour, depth, pixel format: a camera reconfigured)
is still inspected and said once per change by the capture worker, which compares each frame's
:class:`inspector.data.images.FrameLayout`: ``Grabbed.layout`` where the source knows more than its uint8 BGR
image tells (pictures decoded by ``decode_image``, a GenICam PixelFormat, a video file's key frames by
``ffprobe``, :mod:`inspector.pipeline.keyframe_layouts`), else the image as decoded. Frames reach preprocessing
at their real size whatever the source: OpenCV's FFmpeg backend rescales a mid-file size change to the first
size, so a file whose key frames change size is read by the ffmpeg program as a live stream is
(:class:`inspector.pipeline.ffmpeg_live.FileFrames`), each frame at its own size and layout.
"""

from __future__ import annotations

import codecs
import collections
import logging
import math
import os
import re
import stat
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np

from inspector.data.images import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FrameLayout, ImageRejected, SpecialFileError,
                                   decode_image_layout, ends_cut_short, is_still_image, list_images,
                                   read_file_and_stat, special_file_kind, subfolders_note, unread_image_names,
                                   warn_once)
from inspector.config import not_a_file
from inspector.errors import DataError, SourceError
from inspector.pipeline import (avi_front, avi_raw, ffmpeg_frames, ffmpeg_live, file_verdicts, keyframe_layouts,
                                rtsp_probe, ts_feed)
from inspector.pipeline.file_settle import SETTLE_S, STALLED_S, SettleWatch
from inspector.pipeline.recording_ends import being_recorded, is_ts
from inspector.pipeline import pixel_formats as pf
from inspector.pipeline.config import CameraSection, SyntheticSection
from inspector.pipeline.http_sources import MjpegStream, SnapshotSource, is_snapshot_url  # noqa: F401 (re-exported)
from inspector.pipeline.source_base import (ChosenAtOpen, Grabbed, Source, SourceChanged,  # noqa: F401 (re-exported)
                                            SourceMisconfigured, SourceWaiting, warn_if_ffmpeg_logs_secrets)
from inspector.pipeline.source_base import stamp_now as _stamp
from inspector.redact import redact

log = logging.getLogger(__name__)
# why a video file's frame read by the ffmpeg program is not inspected (CvSource._damaged)
_FILE_WHY = {ffmpeg_live.CONCEALED: "the file is damaged there and the decoder made up frames around the damage; "
                                    "they are skipped (counted 'concealed') up to a key frame decoded after it",
             ffmpeg_live.BEFORE_KEY_FRAME: "the recording starts between key frames; frames before its first key "
                                           "frame cannot be decoded whole and are skipped"}

VIDEO_SUFFIXES = set(VIDEO_EXTENSIONS)
IMAGE_SUFFIXES = set(IMAGE_EXTENSIONS)
_CHANGE_CHECK_S = 1.0  # how often a looping file is checked for replacement/truncation
_V4L_MAJOR = 81  # Linux video4linux character devices (Documentation/admin-guide/devices.txt)
_V4L_DIR = Path("/dev/v4l")  # udev's persistent names of video nodes: by-id/…, by-path/… → ../../videoN
_CATCH_UP_S = 0.5  # a live stream's frames this far behind it: drop its backlog (grab it, else reopen)
_REPLAY_MAX = 1000  # frames a seek back to the read position may give again, at most (_grab_unread)
_SWITCH_MARGIN = 16  # frames two decodes of one file may differ by in count (_seek_after_last_read): a DPB
_SUBFOLDER_CHECK_S = 10.0  # a folder camera looks for sub-folders holding images (not read) at most this often
_GROWTH_POLL_S = 0.2  # at the end of a recording still being written: wait this long before looking again
_COUNT_SLACK = 2  # frames a recording may give fewer than its container declares (an estimate): more is a loss
_PROMPT_WAIT_S = 0.005  # a live grab that blocked this long waited for its frame: it had just arrived
_CLOCK_DRIFT_MS = 50.0  # a just-arrived frame this far off the stream clock's first one: the clock is not real time
_DRIFT_FRAMES = 3  # … so many just-arrived frames in a row (one is a network burst); or repeated timestamps
_GRAB_RETRY_S = 0.01  # a live connection's grab failed at once before its first frame: try again after this
_PROBE_BYTES = 32768  # FFmpeg's probe of a live URL ends once it read this much (whole packets): see _ffmpeg_options
_FULL_PROBE_BYTES = 5_000_000  # FFmpeg's default probesize (libavformat/options_table.h): an URL's second try
_RETRY_MIN_S = 0.1  # an URL's open is not tried again with less than this left of open_timeout_s
_DIAGNOSE_MIN_S = 0.2  # an rtsp:// camera that did not open is asked why for at least this long (past the timeout)
# held while OPENCV_FFMPEG_CAPTURE_OPTIONS is set for one FFmpeg open and that open reads it (_open_capture)
_OPEN_LOCK = threading.Lock()
_PROBE_STALE_S = 0.5  # an URL's open that took this long left its probed frames this old: dropped (_drop_probed)
_BUFFERED_GRAB_S = 0.05  # a grab that returned sooner gave a frame already buffered (decoding one takes ~10 ms)
_USER_FFMPEG_OPTIONS = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")  # the user's own, kept as they are


def _text_head(path) -> bool:
    """Whether the file ``path`` begins as text (UTF-8 without NUL in its first 4 KiB; empty is not): a log or
    notes file given as a camera is no video being written, however recently it changed."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if not head or b"\0" in head:
        return False
    try:  # incremental: a character cut by the 4 KiB read is no error
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < 4096)
    except UnicodeDecodeError:
        return False
    return True


def _persistent_name(node: str) -> str | None:
    """The udev persistent name of the video node ``node`` (a link in :data:`_V4L_DIR`'s ``by-id``, else
    ``by-path``, that points at it now); None when there is none. by-id names the camera (vendor, model, serial)
    and follows it to any port; by-path names the port (two identical cameras without serials share a by-id
    name: the later one's link wins, udev's rule)."""
    real = os.path.realpath(node)
    for folder in ("by-id", "by-path"):
        try:
            links = sorted((_V4L_DIR / folder).iterdir())
        except OSError:  # no such folder (no camera, a container without udev)
            continue
        for link in links:
            if os.path.realpath(link) == real:
                return str(link)
    return None


# ------------------------------------------------------------------------------------------ OpenCV
class CvSource(Source):
    """Anything cv2.VideoCapture opens: files, devices, URLs (FFmpeg), GStreamer pipelines."""

    def __init__(self, camera: CameraSection, kind: str, target, api: int, live: bool, finite: bool,
                 bit_depth: int | None = None) -> None:
        super().__init__(camera, bit_depth)
        self.kind, self._target, self._api, self.live, self.finite = kind, target, api, live, finite
        self.one_size = True  # a video file, device, URL or pipeline
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._delivered = 0  # frames read since the source was created (all opens)
        self._signature: tuple | None = None
        self._failed_signature: tuple | None = None
        self._checked_at = 0.0
        self._end_size = -1  # file size when the end of a recording still being written was last reached
        self._settle = SettleWatch()  # whether the recording is still being written (its end: wait or end)
        self._written = False  # the file open() tries is still being written (_written_note)
        self._raw16 = False  # 16-bit grey frames are retrieved as they are (_keep_sixteen_bits)
        self._keyframes: keyframe_layouts.KeyframeLayouts | None = None  # a file's layouts as stored (open)
        self._scans_layouts = False  # a file whose frames' layouts are its key frames' (open, _cover_layouts)
        self._scanned_size = -1  # the file's size when its key frames were last listed
        self._pixel_format: str | None = None  # what the stream or device delivers, by its tag (_choose_decoding)
        # frames taken before OpenCV converts them (packets or raw bytes) and decoded here (pixel_formats)
        self._decode: Callable[[np.ndarray], np.ndarray] | None = None
        self._pending: np.ndarray | None = None  # a packet read while choosing the decoding, not yet delivered
        self._clock: tuple[float, float] | None = None  # live: (min grab − pts ms, last pts ms), _stamp_by_clock
        self._catch_up = 0  # live: frames behind (estimated); the next read reopens to drop them
        self._clock_state: tuple[float | None, int] | None = (None, 0)  # None: its timestamps are not real time
        self._repeats = 0  # frames in a row on the timestamp of the frame before (_clock_follows_real_time)
        self._held: tuple[int, float, float] | None = None  # a grabbed frame not yet read: (t_ns, t_utc, waited s)
        self._probe_dropped = 0  # frames of the open's probe dropped as stale, told with the first frame read
        self._probe_took_s = 0.0  # how long the last open took, until its first read (_drop_probed)
        self._configured = target  # a device: the number or path configured; _target may follow it (renumbered)
        self._identity: str | None = None  # a numbered device: its udev persistent name, once seen (_follow_device)
        # a recording read as it grows: stream time (pos_msec) of the last frame read, whether it has advanced
        # since open, and after a seek back to the read position, the time up to which grabs give frames again
        self._read_ms: float | None = None
        self._before_ms: float | None = None  # _read_ms before the last frame read (_await_rest_of_frame)
        self._time_advances = False
        self._replayed_to: float | None = None
        # the stream times of the frames read lately: a seek back steps over these alone (_grab_unread)
        self._read_times: collections.deque[float] = collections.deque(maxlen=_REPLAY_MAX)
        self._damage_said: tuple | None = None  # the file signature whose made-up frames were said (_damaged)
        self._follows = False  # a recording still being written, read on by the program as it grows (_will_follow)
        self._codec = 0  # the stream's codec FOURCC, as OpenCV's probe found it (_choose_decoding)
        # a file OpenCV reads: the program's verdict of each frame (file_verdicts), and the one of the frame grabbed
        # where the program cannot read the file on (_grab_vouched)
        self._verdicts: file_verdicts.VerdictPass | None = None
        self._pass_verdict = ""
        # an AVI still being recorded, read as packets: how many of its frames are whole on disk (_front_holds)
        self._front: avi_front.AviFront | None = None

    def _params(self, open_timeout_s: float | None = None) -> list[int]:
        if self.kind not in ("url", "device"):
            return []
        open_timeout_s = self.camera.open_timeout_s if open_timeout_s is None else open_timeout_s
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(1, int(open_timeout_s * 1000)),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.camera.read_timeout_s * 1000)]

    def open(self) -> None:
        self.close()
        if self.kind == "url":
            warn_if_ffmpeg_logs_secrets(str(self._target), self.camera.name)
        # A recording that never opened can never be decoded: permanent. One that played before
        # and fails now is probably being rewritten: transient, until it fails twice unchanged. One
        # that is gone (rotated: deleted, then written anew) is transient until it is back, like a
        # looping folder that vanished; "gone twice" is not "unchanged" (None == None).
        # A file still being written (an MP4 whose index, the moov atom, comes last; one just created empty) that
        # cannot be opened yet is transient, waited for with back-off: it failed the camera at once ('corrupt or
        # unsupported video'), the run ended with exit 1 and the recording was never inspected. What it is once
        # open (a text file) is told for good all the same.
        permanent, self._written = False, False
        if self.kind == "file":
            self._signature = self._file_signature()
            self._written = not _text_head(self._target) and self._settle.recording_still_written(self._target)
            permanent = self._delivered == 0 or (self._signature is not None
                                                 and self._signature == self._failed_signature)
            self._failed_signature = self._signature
            if self._signature is not None and self._signature[1] == 0 and self._written:  # created, not written
                raise SourceWaiting(self._error(f"{self._target}: video file is empty{self._written_note()}").args[0])
            if self._signature is None or self._signature[1] == 0:
                raise self._error(f"{self._target}: video file is missing or empty", permanent)
            self._front = self._recorded_avi_front()
        if self.kind == "device":
            self._follow_device()
            self._check_device_path()
        started = time.monotonic()
        self._cap = self._sized_capture(permanent and not self._written)
        self._follows = self._will_follow()
        self._choose_decoding(permanent)
        if self._front is not None and (self._decode is None or not isinstance(self._cap, cv2.VideoCapture)):
            self._front = None  # decoded by OpenCV, or read by avi_raw or the program: read as before
        self._held, self._probe_dropped = None, 0
        self._clock, self._catch_up = None, 0
        self._clock_state = (None, 0)  # (grab − pts of the first frame waited for, ms; drifting in a row)
        self._repeats = 0  # frames in a row on the timestamp of the frame before (_clock_follows_real_time)
        self._index = 0
        self._end_size = -1
        self._read_ms, self._time_advances, self._replayed_to = None, False, None
        self._read_times.clear()
        self._failed_signature = None
        self._checked_at = time.monotonic()
        self._probe_took_s = time.monotonic() - started  # the first read drops what the probe left (_drop_probed)
        # a file's decoder rescales a mid-file size change to the first size unsaid: its key frames tell
        # (packets are decoded here, so their own arrays tell)
        by_program = isinstance(self._cap, ffmpeg_live.FileFrames) or self._follows  # each frame its own size
        self._scans_layouts = self.kind == "file" and self._decode is None and not by_program
        self._scanned_size = self._signature[1] if self._scans_layouts else -1
        self._keyframes = keyframe_layouts.probe(str(self._target), self.camera.name) if self._scans_layouts else None
        self._read_at_own_sizes()
        # followed only by the program's reader: one whose frames are packets decoded here, or that did not start, is
        # read as before
        self._follows = self._follows and isinstance(self._cap, ffmpeg_live.FileFrames)
        self._watch_concealment()

    def _recorded_avi_front(self) -> avi_front.AviFront | None:
        """The :class:`avi_front.AviFront` of a one-pass AVI file its muxer has not finished
        (:func:`inspector.pipeline.recording_ends.being_recorded`), None for any other. While it is being written
        it is not opened before its first frame is whole (SourceWaiting): FFmpeg's probe takes that frame's chunk
        cut as it is, and the first packet read here would be it."""
        if self.camera.loop or not avi_front.is_avi(self._target) or not being_recorded(self._target):
            return None
        front = avi_front.AviFront(self._target)
        if front.scan() == 0 and self._written:
            raise SourceWaiting(self._error(f"{self._target}: no whole frame yet{self._written_note()}").args[0])
        return front

    def _watch_concealment(self) -> None:
        """Have the frames of a video file that OpenCV reads judged by a verdict pass of the ffmpeg program
        (:class:`file_verdicts.VerdictPass`), where its decoder can make frames up: an inter-coded stream
        (:data:`ffmpeg_live.INTRA_ONLY_CODECS`) of 8-bit frames as OpenCV decodes them. OpenCV hands the frames
        made up around a damaged part on unmarked (an H.264 file whose key frame was damaged: 25 made-up frames
        inspected as parts, 0 counted). A file the program reads already has its verdicts (FileFrames); packets
        decoded here are still pictures or raw samples. Without the program, said once."""
        self._stop_verdicts()
        if (self.kind != "file" or not isinstance(self._cap, cv2.VideoCapture) or self._decode is not None
                or self._codec in ffmpeg_live.INTRA_ONLY_CODECS):
            return
        why = "the ffmpeg program is not installed"
        if ffmpeg_live.available():
            try:
                self._verdicts = file_verdicts.VerdictPass(str(self._target))
                return
            except OSError as exc:
                why = f"the ffmpeg program did not start ({exc})"
        warn_once(f"camera {self.camera.name} file concealment", "camera '%s': warning: %s is an inter-coded video "
                  "('%s') read by OpenCV, which cannot tell the frames its decoder makes up around a damaged part "
                  "(they are inspected as parts): %s", self.camera.name, self.describe(),
                  pf.fourcc_text(self._codec) or "unknown", why, logger=log)

    def _stop_verdicts(self) -> None:
        self._pass_verdict = ""
        if self._verdicts is not None:
            verdicts, self._verdicts = self._verdicts, None
            verdicts.close()

    def _grab_vouched(self) -> bool:
        """:meth:`_grab_unread`, the frame grabbed judged by the verdict pass where one watches the file
        (:meth:`_watch_concealment`). One it does not vouch for (made up, before the first key frame, or past its
        end: a file the two decoders count differently) is read again by the program, and the file on from it
        (:meth:`_read_by_program`): its own verdicts judge every frame from there. The program steps over the frames
        read by their count: every frame before that one was vouched for, so both decoders met no damage up to it,
        and the program counts as the pass (the same decoder, on one thread) — not by their time: OpenCV's and
        showinfo's times of one frame differ in their last digits (120.00000000000001 and 120.0 ms). Where the
        program cannot read the file on (an MPEG-2 file whose chroma changes at one size, which its decoder decodes
        wrong: OpenCV's pixels are kept), the pass's verdict is the frame's, by its count (``_pass_verdict``,
        :meth:`_damaged`)."""
        self._pass_verdict = ""
        if not self._grab_unread():
            return False
        if self._verdicts is None or (verdict := self._verdicts.verdict(self._index)) == "":
            return True
        unfollowed = self._keyframes is not None and keyframe_layouts.chroma_change_unfollowed(self._keyframes)
        if not unfollowed and self._read_by_program(by_count=True):
            return self._grab_unread()
        self._pass_verdict = verdict or ""  # past the pass's end: unknown, handed on as OpenCV gives it
        return True

    def _will_follow(self) -> bool:
        """Whether this file is a recording still being written, read once (not looping), with the ffmpeg program
        installed, that is an MPEG-TS or an inter-coded stream (:data:`ffmpeg_live.INTRA_ONLY_CODECS`; its codec
        named): it is then read by the program fed through a pipe as it grows (:mod:`inspector.pipeline.ts_feed`),
        never by a demuxer that meets the end of what is there. Read so, a growing TS had frames made up from the
        packet cut by that end, and the real ones stepped over (38 made up, 37 lost of 100 H.264 frames copied in 3
        kB parts; MPEG-2: 80 read, out of order). An inter-coded one needs the program's verdicts
        (:meth:`_watch_concealment`), which a pass beside OpenCV could give only up to the end of what is there: the
        last frames OpenCV's decoder flushed there are held by the pass's until more is written. Where the program
        is missing it is read as before."""
        if self.kind != "file" or self.camera.loop or not ffmpeg_live.available() or \
                not self._settle.recording_still_written(self._target):
            return False
        codec = int(self._cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF if isinstance(self._cap, cv2.VideoCapture) \
            else 0
        return is_ts(self._target) or (codec != 0 and codec not in ffmpeg_live.INTRA_ONLY_CODECS)

    def _cover_layouts(self) -> None:
        """Before a frame of a recording still being written is read past the end its key frames were listed to
        (at open, or the last time here), and the file has grown since: list them again from the last one listed
        (:func:`keyframe_layouts.probe`, ``after``), so that every frame read has its own key frame's layout, and
        a size change appended later is read at its own sizes (:meth:`_read_at_own_sizes`) as one there at open.
        Listed at open only, the frames appended later kept the last layout listed: a camera reconfigured while
        its recording was read on went unsaid, its later frames rescaled to the first size."""
        listed = self._keyframes
        if not self._scans_layouts or (listed is not None and self._index < listed.frames):
            return
        signature = self._file_signature()
        if signature is None or signature[1] <= self._scanned_size:
            return
        self._scanned_size = signature[1]
        self._keyframes = keyframe_layouts.probe(str(self._target), self.camera.name, after=listed) or listed
        self._read_at_own_sizes()

    def _read_at_own_sizes(self) -> None:
        """A video file whose key frames change size (:attr:`_keyframes`) is read through the ffmpeg program as a
        live URL is (:func:`ffmpeg_live.open_at_own_sizes`): each frame reaches preprocessing at its real size,
        where OpenCV's FFmpeg backend scaled it to the first (an aspect change distorted every part after it),
        and its layout is its decoder's, so the change is said at its frame as for a live stream. One size: kept
        as opened (OpenCV is the faster reader). Without the program, kept and said rescaled (capture worker)."""
        follow = self._follows and self._decode is None and not isinstance(self._cap, ffmpeg_live.FileFrames)
        if not follow and (self._keyframes is None or len({(k.width, k.height) for k in self._keyframes.layouts}) < 2):
            return
        if not follow and keyframe_layouts.chroma_change_unfollowed(self._keyframes):
            # the program's MPEG-2 decoder would decode a later chroma format as the first, at the same size
            # (garbage, named as the first); OpenCV's decodes it right: rescaled, said so, beats wrong pixels
            return
        self._read_by_program(follow=self._follows)

    def _read_by_program(self, follow: bool = False, by_count: bool = False) -> bool:
        """Go on reading this file through the ffmpeg program (:func:`ffmpeg_live.open_at_own_sizes`): each frame at
        its own size, with its verdict; on from frame ``_index`` where frames were read already (a recording read on,
        :meth:`_cover_layouts`, by :meth:`_seek_after_last_read`; ``by_count``: frame ``_index`` of the program's
        count, where the frames read so far are known to be counted alike, :meth:`_grab_vouched`). False (the
        reader kept) where the program does not start or gives no frame."""
        own = ffmpeg_live.open_at_own_sizes(self._cap, str(self._target), self._wide, self.describe(),
                                            self.bit_depth, f"camera {self.camera.name}", follow=follow)
        if own is None:
            return False
        self._stop_verdicts()  # the program's reader has its own
        self._cap.release()
        (self._cap, self._decode), self._keyframes, self._scans_layouts = own, None, False
        if by_count:
            self._replayed_to = None
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, self._index)
        elif self._index:
            self._seek_after_last_read()
        return True

    def _drop_probed(self, opened_in_s: float) -> None:
        """Drop the frames FFmpeg's probe read while an URL opened, when the open took :data:`_PROBE_STALE_S` or
        more: the grabs after open handed them over first, each stamped fresh, so a slow camera's first
        inspected frame was seconds old (1 fps raw MJPEG: 5 frames, the oldest 5 s). Done by the first read or skip
        after an open (``opened_in_s``: how long it took; 0 afterwards: nothing to do). Frames are grabbed while a
        grab returns within :data:`_BUFFERED_GRAB_S` (it was buffered), for at most as long as the open took
        (no more can have arrived meanwhile); the first that had to be waited for is kept for the next read.
        The dropped frames are counted (``buffers_skipped`` of the first frame read). A raw stream's timestamps
        are invented, so how long a grab waited is what tells a buffered frame from a new one."""
        self._probe_took_s = 0.0
        if self.kind != "url" or opened_in_s < _PROBE_STALE_S:
            return
        dropped = int(self._pending is not None)  # the first packet, read while choosing the decoding
        self._pending, deadline = None, time.monotonic() + opened_in_s
        while time.monotonic() < deadline:
            started = time.monotonic()
            if not self._cap.grab():  # nothing decodable yet: the first read's grab waits for it
                break
            t_ns, t_utc = _stamp()
            if t_ns / 1e9 - started >= _BUFFERED_GRAB_S:
                self._held = (t_ns, t_utc, t_ns / 1e9 - started)
                break
            dropped += 1
        self._probe_dropped = dropped
        if dropped:
            log.info("camera '%s': opening took %.1f s; dropped the %d frame(s) read meanwhile", self.camera.name,
                     opened_in_s, dropped)

    def _ffmpeg_options(self, full_probe: bool = False, open_timeout_s: float | None = None) -> str:
        """FFmpeg's options for opening this URL (OPENCV_FFMPEG_CAPTURE_OPTIONS, read by OpenCV at each open):
        RTSP over TCP, and a probe that ends well inside ``open_timeout_s``. FFmpeg's probe reads 5 s of
        stream time by default; raw streams (MJPEG, H.264 over tcp://) have timestamps invented at 25 fps, so
        a 10 fps camera took 12.5 s — past a 5 s timeout, whose interrupt left the connection broken: a few
        seconds of stale probed frames, then "no frame", reconnect, for ever. Stream time of a tenth of the
        timeout is half of it in real time for raw cameras of ≥ 5 fps (FFmpeg libavformat/demux.c,
        max_analyze_duration). Two more limits end it by what it needs, whatever the frame rate: ``fpsprobesize 0``
        (no 20 frames to guess a frame rate: MPEG-TS at 1 fps was cut at 5 s) and ``probesize``/``formatprobesize``
        of :data:`_PROBE_BYTES` (the probe reads on until it has that many bytes: a 1 fps 720p MJPEG or H.264 camera
        took 4-5 s, cut at 5 s; with 32 KiB 1.2-2.2 s, measured on loopback). A packet is read whole however
        large, so a high-bitrate key frame still gives its size.

        ``full_probe`` (the second try, :meth:`_sized_capture`): :data:`_FULL_PROBE_BYTES` for the stream and
        for telling its format (FFmpeg's format probe stops at 1 MiB by default: too little for a 20 Mbit/s raw
        H.264 stream to reach its next key frame's parameter sets); its stream time a tenth of what is left of
        ``open_timeout_s``, by the rule above. A raw stream is probed until one of the two limits, whatever it
        found (FFmpeg's AVFMTCTX_NOHEADER formats may add streams): with half the timeout as stream time a 1080p
        20 Mbit/s stream opened in 2.9-3.3 s (its 5 MB), with a tenth in 1.3-1.7 s."""
        left = self.camera.open_timeout_s if open_timeout_s is None or not full_probe else open_timeout_s
        probe = _FULL_PROBE_BYTES if full_probe else _PROBE_BYTES
        return (f"analyzeduration;{max(1, int(left * 1e6 / 10))}|fpsprobesize;0|probesize;{probe}"
                f"|formatprobesize;{probe}|rtsp_transport;tcp")

    def _sized_capture(self, permanent: bool) -> cv2.VideoCapture:
        """An opened capture of the target; for an FFmpeg URL, one whose probe found the picture size.

        An URL is opened first with the short probe (a slow camera opens fast, :meth:`_ffmpeg_options`). One
        that did not open, or found no picture size, is opened again at once with FFmpeg's full probe in what
        is left of ``open_timeout_s``: a 1080p 20 Mbit/s raw H.264 camera joined between key frames (2 s apart)
        has no parameter sets in 32 KiB, nor in FFmpeg's default 1 MiB format probe, and said only "cannot
        open", at every reconnect. A raw stream joined between key frames that still opens with width 0 (OpenCV
        keeps that size for the connection, and never gives a picture) is reopened — each probe joins later —
        until ``open_timeout_s`` has passed since the first open. Then a transient SourceError says what each
        probe found. A user's own OPENCV_FFMPEG_CAPTURE_OPTIONS is every try's probe."""
        if self.kind != "url":
            return self._new_capture(permanent)
        deadline, tries = time.monotonic() + self.camera.open_timeout_s, []
        while True:
            full, started = bool(tries) and _USER_FFMPEG_OPTIONS is None, time.monotonic()
            cap = self._open_capture(deadline - started, full)
            sized = cap is not None and min(cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) > 0
            if sized:
                return cap
            if cap is not None:
                cap.release()
            elif not tries:
                self._say_why_rtsp_failed(deadline)
            tries.append((full, "no picture size" if cap is not None else
                          "cut by open_timeout_s" if self._probe_overran(started, deadline) else "did not open"))
            # a connection that would not open is tried once more, with the full probe; one without a size until
            # the time is up (each probe joins later)
            once_more = cap is not None or not (full or _USER_FFMPEG_OPTIONS is not None)
            if deadline - time.monotonic() < _RETRY_MIN_S or not once_more:
                raise self._error(self._open_failure(tries))

    def _say_why_rtsp_failed(self, deadline: float) -> None:
        """After an rtsp:// camera's first open failed: ask its server DESCRIBE by hand (:mod:`rtsp_probe`) in
        what is left until ``deadline`` (at least :data:`_DIAGNOSE_MIN_S`), and raise a transient SourceError
        saying what it answered (refused, 401, 404, silence; :class:`SourceMisconfigured` for 401, 403 and 404)
        without a second FFmpeg try: that only repeated the
        failure (a second failed login per attempt, where cameras lock an account after a few). Returns when
        the server answered 200 OK (the media failed: the full probe may still find it)."""
        if not str(self._target).lower().startswith(("rtsp://", "rtsps://")):
            return
        found = rtsp_probe.diagnose(str(self._target), max(_DIAGNOSE_MIN_S, deadline - time.monotonic()))
        if found:  # a login refused or a path the camera has not: this camera's settings (SourceMisconfigured)
            raise self._error(f"cannot open {self.describe()}: {found[0]}", misconfigured=found[1])

    def _open_failure(self, tries: list[tuple[bool, str]]) -> str:
        """Why an URL did not open, from ``tries`` ((full probe, what it found) per open, in order)."""
        runs: list[list] = []  # consecutive tries alike: [full, found, count]
        for full, found in tries:
            if runs and runs[-1][:2] == [full, found]:
                runs[-1][2] += 1
            else:
                runs.append([full, found, 1])
        probe = ("your OPENCV_FFMPEG_CAPTURE_OPTIONS" if _USER_FFMPEG_OPTIONS is not None else None)
        said = "; then ".join(f"{probe or ('FFmpeg full probe (5 MB)' if full else 'a 32 KiB probe')}: {found}"
                              + (f" ({count} times)" if count > 1 else "") for full, found, count in runs)
        what = f"cannot open {self.describe()} within open_timeout_s {self.camera.open_timeout_s:g} s ({said})"
        if any(found == "no picture size" for _, found in tries):
            rtsp = " or an RTSP camera that answered but sent no video," if str(self._target).lower().startswith(
                "rtsp") else ""
            return (what + f": opened without a picture size (a raw H.264/HEVC stream joined between key frames "
                    f"sends none until the next one,{rtsp} ...): have the camera send key frames more often, or "
                    f"raise open_timeout_s")
        if tries[-1][1] == "cut by open_timeout_s":
            return what + ": the probe did not finish (a slow or bursty camera): raise open_timeout_s"
        return what

    def _new_capture(self, permanent: bool, open_timeout_s: float | None = None) -> cv2.VideoCapture:
        """An opened cv2.VideoCapture of the target; SourceError (``permanent`` as given) when it will not open.
        ``open_timeout_s``: the open's limit (default the camera's). URLs open by :meth:`_sized_capture`."""
        cap = self._open_capture(open_timeout_s, permanent=permanent)
        if cap is None:
            if self._written:
                raise SourceWaiting(self._error(f"cannot open {self.describe()}{self._written_note()}").args[0])
            raise self._error(f"cannot open {self.describe()}" + (" (corrupt or unsupported video)" if permanent
                                                                 else ""), permanent)
        return cap

    def _written_note(self) -> str:
        """'; still being written …' when the file :meth:`open` tries is being written (:data:`SETTLE_S`), else ''."""
        return "; still being written (no end yet, or changed just now)" if self._written else ""

    def _open_capture(self, open_timeout_s: float | None = None, full_probe: bool = False,
                      permanent: bool = False) -> cv2.VideoCapture | None:
        """A cv2.VideoCapture of the target, None when it did not open; SourceError (``permanent`` as given) when
        OpenCV raised.

        OPENCV_FFMPEG_CAPTURE_OPTIONS is process-wide and read by each FFmpeg open: an URL's open sets it to its
        probe, a file's to the user's (none: FFmpeg's defaults, not the last URL's 32 KiB probe), under
        :data:`_OPEN_LOCK` so that no other open reads it meanwhile. OpenCV's FFmpeg backend already opens one
        capture at a time per process (its own lock, unless OPENCV_FFMPEG_IS_THREAD_SAFE; measured: two URL opens
        that each time out in 2 s ended at 2.1 s and 4.1 s), so the lock makes no camera wait longer. Devices and
        GStreamer pipelines do not read it and take no lock (a device open is not held up by a camera's probe)."""
        if self.kind == "file":  # bottom-up raw DIB frames crash OpenCV's conversion: read by avi_raw instead
            dib = avi_raw.avi_bottom_up(self._target)
            if dib is not None:
                try:
                    return avi_raw.AviFrames(self._target, dib)
                except OSError:
                    return None
        params = self._params(open_timeout_s)
        try:
            if self.kind in ("url", "file") and _USER_FFMPEG_OPTIONS is None:
                with _OPEN_LOCK:
                    if self.kind == "url":
                        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = self._ffmpeg_options(full_probe, open_timeout_s)
                    else:
                        os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
                    cap = cv2.VideoCapture(self._target, self._api, params)
            else:
                cap = cv2.VideoCapture(self._target, self._api, params)
        except cv2.error as exc:
            raise self._error(f"cannot open {self.describe()} ({str(exc).strip().splitlines()[-1]})",
                              permanent) from None
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _probe_overran(self, started: float, deadline: float) -> bool:
        """Whether an URL's open that began at ``started`` ran into its limit ``deadline`` (monotonic s): FFmpeg's
        probe was cut by the open timeout."""
        return time.monotonic() - started >= (deadline - started) * 0.95

    def _numbered_node(self) -> str | None:
        """The node a device camera configured by number names (source ``N``: /dev/videoN; a ``…/videoN`` path
        that is no link); None for a persistent name (a link follows its camera by itself) and off Linux."""
        if not sys.platform.startswith("linux"):
            return None
        if isinstance(self._configured, int):
            return str(_V4L_DIR.parent / f"video{self._configured}")
        path = str(self._configured)
        return path if re.fullmatch(r"video\d+", os.path.basename(path)) and not os.path.islink(path) else None

    def _follow_device(self) -> None:
        """Open a camera configured by number where it is now. The number is the kernel's, given in plug order: a
        USB camera plugged back in comes back as another /dev/videoN (the old one gone, or another camera's), and
        was looked for at the old number for ever. The first time its node is there, the camera's udev persistent
        name is learnt (:func:`_persistent_name`); from then on each open follows that name: to the node it points
        at now (said once per move), and, while it is missing, the camera is unplugged (transient) — never the
        old number, which may be another camera by then. A camera without one keeps its number."""
        node = self._numbered_node()
        if node is None:
            return
        if self._identity is None:
            self._identity = _persistent_name(node) if os.path.exists(node) else None
            return
        try:
            os.stat(self._identity)  # follows the link to its node
        except OSError:
            raise self._error(f"device {node} is unplugged (its camera {self._identity} is not there)") from None
        now = os.path.realpath(self._identity)
        number = re.fullmatch(r"video(\d+)", os.path.basename(now))
        target = int(number.group(1)) if isinstance(self._configured, int) and number else now
        if target != self._target:
            log.warning("camera '%s': its camera %s is now %s (was %s): opening that", self.camera.name,
                        self._identity, now, self._target if isinstance(self._target, str) else f"video{self._target}")
            self._target = target

    def describe(self) -> str:
        if self.kind == "device" and self._target != self._configured:
            return redact(f"device {self.camera.source} (now {self._target})")
        return super().describe()

    def _check_device_path(self) -> None:
        """Raise for a device path that is not a video device: permanent when something else stands there
        (a regular file, /dev/null, a folder: retried for ever before, 'cannot open device' every few
        seconds), transient when nothing does (a USB camera unplugged: it may come back).
        Linux only: elsewhere device paths are not /dev nodes with V4L's major number."""
        if not isinstance(self._target, str) or not sys.platform.startswith("linux"):
            return
        try:
            st = os.stat(self._target)  # follows /dev/v4l/by-id/… links
        except FileNotFoundError:
            renumbered = " (or back as another /dev/videoN: name it by its /dev/v4l/by-id/… link)" \
                if self._numbered_node() is not None else ""
            raise self._error(f"device {self._target} does not exist (unplugged?{renumbered})") from None
        except OSError:
            return  # no permission to stat: let OpenCV say what it can
        if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != _V4L_MAJOR:
            raise self._error(f"{self._target} is not a video device (not a video4linux character device)",
                              permanent=True)

    def _choose_decoding(self, permanent: bool) -> None:
        """Decide how this stream's frames become model input pixels, by :mod:`pixel_formats`' rule: frames that
        are still pictures or whose samples are wider than 8 bits are taken before OpenCV converts them to 8-bit
        BGR and decoded like the same frames saved as image files; others are OpenCV's BGR (8-bit data)."""
        self._decode, self._pending, self._raw16, self._pixel_format = None, None, False, None
        self._wide: tuple[bool, int] | None = None  # a file decoded at full depth by the program: (grey, bits)
        # a live URL read by the program (wide or inter-coded: ffmpeg_live.FullDepthUrl): (tag, bits, width,
        # height, codec FOURCC)
        self.by_program: tuple[int, int, int, int, int] | None = None
        if isinstance(self._cap, avi_raw.AviFrames):  # bottom-up DIB frames, unpacked here (avi_raw)
            self._decode = avi_raw.dib_decoder(self._cap.dib, self.describe(), self.bit_depth,
                                               f"camera {self.camera.name}")
            return
        v4l2 = self._cap.getBackendName() == "V4L2"
        # the format the camera or stream delivers, named in FrameLayout: a camera switched to GREY / Y800 comes
        # out of OpenCV as the same BGR arrays (told at the open after it, which such a switch forces)
        named = int(self._cap.get(cv2.CAP_PROP_FOURCC if v4l2 else cv2.CAP_PROP_CODEC_PIXEL_FORMAT)) & 0xFFFFFFFF
        self._pixel_format = pf.fourcc_text(named) or None if named else None
        if v4l2:
            self._choose_v4l2()
            return
        tag = int(self._cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)) & 0xFFFFFFFF
        codec = self._codec = int(self._cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
        if codec in pf.TEXT_CODECS:
            raise self._error(f"{self.describe()} is a text file, not a video (FFmpeg would draw its characters "
                              f"as pictures: '{pf.fourcc_text(codec)}')", permanent)
        if self._may_be_packets(codec, tag) and self._packets_decodable(tag):
            return
        self._keep_sixteen_bits(tag)
        bits = pf.wide_bits(tag)
        if not bits and not self._raw16:
            self._tell_concealment(codec, tag)
        if self._raw16 or not bits:
            return
        wide = (ffmpeg_frames.is_grey_tag(tag), bits)
        # a compressed wide recording: decoded at full depth by the ffmpeg program, through the one file reader
        # that tells the frames its decoder makes up around damage (ffmpeg_frames' module docstring)
        full = ffmpeg_live.open_at_own_sizes(self._cap, self._target, wide, self.describe(), self.bit_depth,
                                             f"camera {self.camera.name}", follow=self._follows) \
            if self.kind == "file" else None
        if full is not None:
            self._cap.release()
            self._cap, self._decode, self._wide = *full, wide
            return
        if self.kind == "url" and ffmpeg_live.available():  # read at full depth by ffmpeg_live.FullDepthUrl
            self.by_program = (tag, bits, int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                               int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), codec)
            return
        warn_once(f"camera {self.camera.name} 8-bit", "camera '%s': warning: %s has %d-bit samples that OpenCV "
                  "converts to 8 bits by their full scale (bit_depth not applied: 12-bit data in a 16-bit format "
                  "up to 239 levels off the same frames as 16-bit images, a narrower declared depth 1 level off); "
                  "read a recording or a network stream with the ffmpeg program installed, or send gray16le, rgb48 "
                  "rawvideo, PNG or TIFF frames", self.camera.name, self.describe(), bits, logger=log)

    def _tell_concealment(self, codec: int, tag: int) -> None:
        """An 8-bit live URL of an inter-coded stream (:data:`ffmpeg_live.INTRA_ONLY_CODECS`): have the ffmpeg
        program read it (``by_program``, bits 8), whose log tells the frames its decoder makes up after a loss;
        OpenCV hands them on unmarked (an H.264 stream that lost a key frame: 24 made-up frames inspected as
        parts), when the camera says ``live_decoder: ffmpeg``. Otherwise, or without the program, said once:
        such frames cannot be told on this path, nor a change of the stream's frame size mid-stream: OpenCV scales
        every frame to the size it probed, and CAP_PROP_FRAME_WIDTH keeps it (measured, OpenCV 5.1: an H.264
        stream going from 64x48 to 128x96 gave 64x48 frames), so the change is seen only at the next reconnect
        (the program gives each frame at its own size: tests/pipeline/test_live_size_changes.py). Not the
        default: the program's connection is a second one after OpenCV's probe (a slower open, no measured lag:
        tests/pipeline/test_live_freshness.py)."""
        if self.kind != "url" or codec in ffmpeg_live.INTRA_ONLY_CODECS:
            return
        chosen = self.camera.live_decoder == "ffmpeg"
        if chosen and ffmpeg_live.available():
            self.by_program = (tag, 8, int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                               int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), codec)
            return
        how = "install the ffmpeg program" if chosen else "set live_decoder: ffmpeg (needs the ffmpeg program)"
        warn_once(f"camera {self.camera.name} concealment", "camera '%s': warning: %s is an inter-coded stream "
                  "('%s') read by OpenCV, which cannot tell the frames its decoder makes up after lost data (a "
                  "lost key frame: up to a key frame interval of made-up pictures inspected as parts), nor a frame "
                  "size change mid-stream (scaled to the first size, seen only at the next reconnect); %s to have "
                  "them counted 'concealed' and never inspected, and a size change said as it comes",
                  self.camera.name, self.describe(),
                  pf.fourcc_text(codec) or "unknown", how, logger=log)

    def _may_be_packets(self, codec: int, tag: int) -> bool:
        """Whether to look at the first encoded packet: the codec is a still-picture one, the samples are a
        wide layout unpacked here, or — a recording only — the container names no codec (AVI's BMP and TIFF
        frames: FOURCC 0, OpenCV's conversion 255 levels off the pictures), so the packet's own magic bytes
        tell (:func:`pixel_formats.is_picture`). A live stream is not sniffed: that would take a second
        connection, and a second FFmpeg probe, when the packet is not a picture."""
        if codec in pf.STILL_PICTURE_CODECS or (tag in pf.FFMPEG_LAYOUTS and tag != pf.GRAY16LE_TAG):
            return True
        return not self.live and codec == 0

    def _packet_decoders(self, tag: int) -> list[Callable[[np.ndarray], np.ndarray]]:
        """How a packet may become pixels: as a picture file, or (a wide raw layout) as one frame of samples."""
        where, key = self.describe(), f"camera {self.camera.name}"
        width, height = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        decoders = [lambda p: pf.decode_picture(p, where, self.bit_depth, key)]
        layout = pf.FFMPEG_LAYOUTS.get(tag)
        if layout is not None:
            decoders.append(lambda p: pf.decode_samples(p, layout, width, height, where, self.bit_depth, key))
        return decoders

    def _packets_decodable(self, tag: int) -> bool:
        """Switch to OpenCV's raw stream mode (CAP_PROP_FORMAT -1: retrieve gives the encoded packet) when the
        first packet is a still picture or one frame of raw samples, keeping it for the first read. Otherwise
        a recording is reopened decoded (raw mode cannot be switched back) and False returned. A live stream
        stays in raw mode (its codec said so): reopening it repeated FFmpeg's probe of seconds, so raw MJPEG
        over tcp:// gave no frame within read_timeout_s, and a first packet cut short (joined mid-picture) is
        one corrupt frame."""
        decoders = self._packet_decoders(tag)
        packet = None
        if self._cap.set(cv2.CAP_PROP_FORMAT, -1) and self._cap.grab():
            ok, packet = self._cap.retrieve()
            packet = packet if ok and packet is not None and packet.size else None
        for decode in decoders if packet is not None and (tag in pf.FFMPEG_LAYOUTS or pf.is_picture(packet)) else ():
            try:
                decode(packet)
            except ImageRejected:
                continue
            self._decode, self._pending = decode, packet
            return True
        # live: the last decoder (a wide raw layout's samples, else pictures), unless the first packet is no frame
        # of a wide layout's samples: a compressed stream of that format (FFV1 gray12le), decoded (every frame
        # was 'corrupt')
        if self.live and (packet is None or tag not in pf.FFMPEG_LAYOUTS):
            self._decode, self._pending = decoders[-1], packet
            return True
        if self.kind == "url" and pf.wide_bits(tag) and ffmpeg_live.available():
            # read by the ffmpeg program (FullDepthUrl), which makes its own connection: a reopen here was a
            # third connection and its probe (FFV1 gray12le over tcp://: 12.4 s to open, 3 connections)
            return False
        self._cap.release()
        self._cap = self._new_capture(permanent=False)  # it opened a moment ago
        return False

    def _choose_v4l2(self) -> None:
        """OpenCV's V4L backend keeps only the high byte of Y16 (Y10/Y12: divided to 8 bits); with
        CAP_PROP_CONVERT_RGB off it returns the buffer's bytes, unpacked here (pixel_formats.V4L2_LAYOUTS)."""
        layout = pf.V4L2_LAYOUTS.get(int(self._cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF)
        if layout is None or not self._cap.set(cv2.CAP_PROP_CONVERT_RGB, 0):
            return
        width, height = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        where, key = self.describe(), f"camera {self.camera.name}"
        self._decode = lambda raw: pf.decode_samples(raw, layout, width, height, where, self.bit_depth, key)

    def _keep_sixteen_bits(self, tag: int) -> None:
        """Have OpenCV hand over a 16-bit grey stream's frames as uint16, not cut to 8-bit BGR.

        By default OpenCV converts every frame to 8-bit BGR, scaling 16-bit grey by its container
        (65535): 12-bit data recorded in a 16-bit video (FFV1) came out 16x too dark, the ``bit_depth``
        setting was never applied and nothing warned, while the same frames as 16-bit PNGs are scaled
        by the decoder's rule (:func:`inspector.data.images.to_uint8`, which the preprocessor applies
        to uint16 frames). Only FFmpeg's gray16le is handed over as is (OpenCV's ``retrieveFrame``).
        """
        self._raw16 = tag == pf.GRAY16LE_TAG and bool(self._cap.set(cv2.CAP_PROP_CONVERT_RGB, 0))

    def _retrieve(self) -> np.ndarray | None:
        """Decode the grabbed frame (None: it could not be); raises ImageRejected from the image decoder.
        A frame of another format than the stream declared (16-bit grey) is decoded again as 8-bit BGR,
        and so are the later ones."""
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return self._decode(packet)
        ok, image = self._cap.retrieve()
        if ok and self._decode is not None and image is not None:
            return self._decode(image)
        if ok and self._raw16 and image is not None and (image.dtype != np.uint16 or image.ndim != 2):
            self._raw16 = False
            self._cap.set(cv2.CAP_PROP_CONVERT_RGB, 1)
            ok, image = self._cap.retrieve()
        return image if ok else None

    def _file_signature(self) -> tuple | None:
        try:
            st = os.stat(self._target)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _check_changed(self, force: bool = False) -> None:
        """Raise SourceChanged when a looping file was replaced or truncated since it was opened."""
        now = time.monotonic()
        if self.kind != "file" or not self.camera.loop or (not force and now - self._checked_at < _CHANGE_CHECK_S):
            return
        self._checked_at = now
        current = self._file_signature()
        if current != self._signature:
            what = "deleted" if current is None else ("truncated" if current[1] < self._signature[1]
                                                      else "replaced")
            raise SourceChanged(f"camera '{self.camera.name}': {self._target} was {what} while looping; reopening")

    def _rewind(self) -> bool:
        """Loop a file: back to frame 0 (reopen if the container cannot seek); False if nothing plays."""
        if self._index == 0:  # a whole pass without one frame: nothing here can be decoded
            raise self._error(f"{self._target}: no decodable frame", permanent=self._delivered == 0)
        self._check_changed(force=True)
        self._check_whole()  # a pass cut short by damage loses the same frames on every pass
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._index = 0
        if self._cap.grab():
            return True
        self.open()  # some containers cannot seek: reopen
        return self._pending is not None or bool(self._cap.grab())  # open() may have read the first packet

    def read(self) -> Grabbed | None:
        if self._cap is None:
            raise self._error("source is not open")
        if self._catch_up and not self._drain_backlog():  # fell behind the live stream, and grabbing did not
            skipped = self._catch_up  # catch up: its buffered frames are dropped with the connection
            log.info("camera '%s': %.0f frames behind the live stream; reopening to catch up",
                     self.camera.name, skipped)
            self.open()
            grabbed = self.read()
            if grabbed is not None:
                grabbed.meta["buffers_skipped"] = grabbed.meta.get("buffers_skipped", 0) + skipped
            return grabbed
        self._check_changed()
        self._drop_probed(self._probe_took_s)
        started, held = time.monotonic(), self._held
        self._held = None
        if held is None and self._pending is None:
            self._cover_layouts()
            if self._front_holds():
                time.sleep(_GROWTH_POLL_S)  # short: the capture loop checks its stop event between reads
                return self._growing()
            if not self._grab_vouched():
                return self._await_growth()
        t_ns, t_utc, waited_s = held or (*_stamp(), time.monotonic() - started)
        meta = {"index": self._index, "pos_msec": float(self._cap.get(cv2.CAP_PROP_POS_MSEC))}
        self._note_read(meta["pos_msec"])
        if self._probe_dropped:
            meta["buffers_skipped"], self._probe_dropped = self._probe_dropped, 0
        if self.live:
            t_ns, t_utc = self._stamp_by_clock(t_ns, t_utc, meta, waited_s)
        self._index += 1
        self._delivered += 1
        if (verdict := self._damaged(meta["index"])):
            return Grabbed(None, t_ns, t_utc, meta, reason=verdict, error=f"{self.describe()}: frame "
                           f"{meta['index']}: {_FILE_WHY[verdict]}")
        try:
            image = self._retrieve()
        except ImageRejected as exc:
            if exc.reason == "corrupt" and self._cut_short_by_its_writer():
                return self._await_rest_of_frame()
            return Grabbed(None, t_ns, t_utc, meta, error=str(exc),
                           reason=exc.reason if exc.reason == "corrupt" else f"rejected.{exc.reason}")
        if image is None:
            if self._cut_short_by_its_writer():
                return self._await_rest_of_frame()
            return Grabbed(None, t_ns, t_utc, meta, error="frame could not be decoded")
        return Grabbed(image, t_ns, t_utc, meta, layout=self._layout(meta["index"], image, meta["pos_msec"]))

    def _damaged(self, index: int) -> str:
        """Why the frame just grabbed (frame ``index``) is not inspected, where the ffmpeg program reads the file
        (:meth:`ffmpeg_live.FileFrames.verdict`): "concealed", "before_key_frame"; "" otherwise. A damaged file's
        made-up frames were handed on as parts; now skipped, counted by the capture worker, and said here once
        per file (not again on a looping file's later passes; a file replaced is another)."""
        verdict = self._cap.verdict() if isinstance(self._cap, ffmpeg_live.FileFrames) else self._pass_verdict
        if verdict and self._damage_said != (signature := self._file_signature()):
            self._damage_said = signature
            log.warning("camera '%s': %s: from frame %d, %s", self.camera.name, self._target, index,
                        _FILE_WHY[verdict])
        return verdict

    def _layout(self, index: int, image: np.ndarray, time_ms: float) -> FrameLayout:
        """Frame ``index``'s layout as decoded: a file's by its key frames (by its time ``time_ms`` once the
        stream's time is seen to advance: :meth:`keyframe_layouts.KeyframeLayouts.at`), a frame of the program's
        by its decoder (:class:`ffmpeg_live.FileFrames`), else the image's with the stream's pixel format."""
        if self._keyframes:
            return self._keyframes.at(index, time_ms if self._time_advances else None)
        own = self._cap.layout() if isinstance(self._cap, ffmpeg_live.FileFrames) else None
        return own or FrameLayout.of(image, pixel_format=self._pixel_format)

    def _drain_backlog(self) -> bool:
        """Catch up with a live stream by grabbing (no colour conversion) its frames buffered in FFmpeg and the
        socket, for at most :data:`_CATCH_UP_S`, until one is less than a quarter of it behind by the stream's
        clock or had to be waited for (:data:`_BUFFERED_GRAB_S`); that one is held for this read, the others are
        counted (``buffers_skipped``). True when caught up; False: the caller reopens (dropping the backlog with
        the connection). Reopening every time cost an RTSP camera its session: a new DESCRIBE/SETUP/PLAY, the
        probe, and the wait for the next key frame, during which nothing was inspected."""
        dropped, deadline = 0, time.monotonic() + _CATCH_UP_S
        while time.monotonic() < deadline and self._clock is not None:
            started = time.monotonic()
            if not self._cap.grab():
                return False
            t_ns, t_utc = _stamp()
            lag_s = (t_utc * 1000.0 - float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) - self._clock[0]) / 1000.0
            if lag_s < _CATCH_UP_S / 4 or t_ns / 1e9 - started >= _BUFFERED_GRAB_S:
                self._held, self._catch_up = (t_ns, t_utc, t_ns / 1e9 - started), 0
                self._probe_dropped += dropped
                self._index += dropped
                return True
            dropped += 1
        return False

    def _front_holds(self) -> bool:
        """Whether frame ``_index`` of an AVI still being recorded, read as packets (:attr:`_front`), is not whole
        on disk yet (:class:`avi_front.AviFront`): it is then not grabbed, and the read waits for it (``growing``)
        while the file is still written (:meth:`file_settle.SettleWatch.recording_still_written`). Grabbed, its chunk
        was handed over cut by the end of the file; FFmpeg cannot seek an AVI without its index (written last) to
        read it again, so it was lost as corrupt (3 of 150 MJPG frames written 30 at a time by OpenCV's
        VideoWriter). Not grabbed, nothing is cut and no seek is needed: FFmpeg's capture at the end of what is
        there reads on once the file grows (measured, OpenCV 5.1 / libavformat 63: the chunks' exact sizes, the
        end met on a chunk boundary or inside a chunk's header). A file gone, replaced or shorter than opened is
        not held: its read tells (:meth:`_await_growth`)."""
        front = self._front
        if front is None or self._index < front.whole:
            return False
        signature = self._file_signature()
        if signature is None or signature[0] != self._signature[0] or signature[1] < self._signature[1]:
            return False
        return self._index >= front.scan() and self._settle.recording_still_written(self._target)

    def _growing(self) -> Grabbed:
        """The frame-less Grabbed of a read that waits for more of a recording still being written."""
        t_ns, t_utc = _stamp()
        return Grabbed(None, t_ns, t_utc, {"index": self._index}, error=f"{self._target}: still being written",
                       reason="growing")

    def _cut_short_by_its_writer(self) -> bool:
        """Whether a frame that failed to decode is the last one there of a one-pass recording still being
        written (file_settle.SettleWatch): its packet is only partly written yet. A frame followed by another
        is corrupt whatever the writer does; the next one is then held for the next read.

        AVI's demuxer hands over a packet cut by the end of the file as it is: a recording read while being
        copied lost the frame at the copy's front as "1 corrupt skipped" whenever a read landed on it. An AVI
        whose muxer has not finished is not read past its whole frames (:meth:`_front_holds`): a frame of it that
        fails was whole on disk, or read once the writer stopped, and the next one is not grabbed here (it may be
        the one cut by the end of the file)."""
        if self.kind != "file" or self.camera.loop or self._follows:  # the program's frames are whole (ts_feed)
            return False
        if self._front is not None:
            return False
        signature = self._file_signature()
        if signature is None or signature[0] != self._signature[0] or \
                not self._settle.recording_still_written(self._target):
            return False
        started = time.monotonic()
        if self._cap.grab():
            t_ns, t_utc = _stamp()
            self._held = (t_ns, t_utc, t_ns / 1e9 - started)
            return False
        return True

    def _await_rest_of_frame(self) -> Grabbed:
        """The frame just read is cut short by the end of a file still being written: wait, then position the
        capture to read it again (a frame-less Grabbed, reason ``growing``, as :meth:`_await_growth`)."""
        self._index -= 1
        self._delivered -= 1
        self._read_ms = self._before_ms  # to be read again: not read yet
        if self._read_times:
            self._read_times.pop()
        self._end_size = -1  # the next end reached seeks again, whatever the size
        time.sleep(_GROWTH_POLL_S)
        self._seek_after_last_read()
        return self._growing()

    def _stamp_by_clock(self, t_ns: int, t_utc: float, meta: dict, waited_s: float) -> tuple[int, float]:
        """(monotonic ns, UTC s) of a live frame by the stream's own clock: a reader slower than the stream
        (decoding, a busy CPU) gets its frames late from FFmpeg's and the socket's buffers, and stamping the
        grab would call them fresh. The lag is how far the stream's timestamps (``pos_msec``) fell behind
        wall-clock time since the frame that arrived most promptly since open (the minimum of grab − pts,
        so a camera clock slower than ours can only overstate it). It goes to ``meta["lag_ms"]``; past
        :data:`_CATCH_UP_S` in live mode the backlog is dropped before the next read (:meth:`_drain_backlog`, counted
        in ``buffers_skipped`` at the stream's frame rate). A stream that restarted its timestamps is
        anchored anew. ``waited_s``: how long the grab took. Until a frame was waited for (the reader caught
        up) the anchor may itself be late, so the lag is a lower bound then.

        Only timestamps that follow real time say anything: FFmpeg's raw demuxers (H.264/HEVC elementary
        streams, MJPEG over tcp:// or udp://) invent them, none (pos_msec stuck at 0) or one per frame at a
        guessed 25 fps, so a 10 fps camera read promptly looked 60 ms later per frame (caught up by
        reopening, again and again) and a 30 fps one never late. :meth:`_clock_follows_real_time` finds
        them out; from then on this connection's frames are stamped when grabbed, ``lag_ms`` None (unknown)."""
        pos_ms = meta["pos_msec"]
        offset_ms = t_utc * 1000.0 - pos_ms
        if not self._clock_follows_real_time(pos_ms, offset_ms, waited_s):
            meta["lag_ms"] = None
            return t_ns, t_utc
        if self._clock is None or pos_ms < self._clock[1] or offset_ms < self._clock[0]:
            self._clock = (offset_ms, pos_ms)
            lag_s = 0.0
        else:
            self._clock = (self._clock[0], pos_ms)
            lag_s = (offset_ms - self._clock[0]) / 1000.0
        if not lag_s:
            return t_ns, t_utc
        meta["lag_ms"] = round(lag_s * 1000.0, 1)
        if lag_s > _CATCH_UP_S and self.camera.mode != "offline":
            fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self._catch_up = max(1, round(lag_s * fps)) if 0 < fps < 1000 else 1
        return t_ns - int(lag_s * 1e9), t_utc - lag_s

    def _clock_follows_real_time(self, pos_ms: float, offset_ms: float, waited_s: float) -> bool:
        """False, for the rest of this connection, once the stream's timestamps are shown not to follow real
        time: :data:`_DRIFT_FRAMES` frames in a row on the timestamp of the frame before (none are sent; one
        repeat is no proof: OpenCV gives an RTSP H.264 stream's first two frames both 0 ms, and that one repeat
        called every RTSP camera's clock untrustworthy, so a slow reader's frames grew seconds old unmeasured),
        or frames that were waited for (a grab blocked
        ≥ :data:`_PROMPT_WAIT_S`: the frame had just arrived, so it is not late) whose grab − pts moved more
        than :data:`_CLOCK_DRIFT_MS` from the first such frame's, :data:`_DRIFT_FRAMES` times in a row (a
        network burst is one late frame, invented timestamps drift on every frame)."""
        if self._clock_state is None:
            return False
        self._repeats = self._repeats + 1 if self._clock is not None and pos_ms == self._clock[1] else 0
        if self._repeats >= _DRIFT_FRAMES:
            return self._distrust_clock("its frames carry no advancing timestamps")
        if waited_s >= _PROMPT_WAIT_S:
            reference, drifting = self._clock_state
            if reference is None:
                reference = offset_ms
            drifting = drifting + 1 if abs(offset_ms - reference) > _CLOCK_DRIFT_MS else 0
            self._clock_state = (reference, drifting)
            if drifting >= _DRIFT_FRAMES:
                return self._distrust_clock("its timestamps do not follow real time (invented by FFmpeg?)")
        return True

    def _distrust_clock(self, why: str) -> bool:
        if self._clock_state is not None:
            self._clock_state = None
            warn_once(f"camera {self.camera.name} clock", "camera '%s': %s %s: how late each frame is read "
                      "is unknown (source.lag_ms null); stream it in a container with timestamps (MPEG-TS, "
                      "RTSP) to have it measured", self.camera.name, self.describe(), why, logger=log)
        return False

    def _await_growth(self) -> Grabbed | None:
        """At the end of a one-pass recording: None at its real end; a frame-less Grabbed (reason
        ``growing``) after a short wait while the file is still being recorded or copied (changed within
        the last file_settle.SETTLE_S s, STALLED_S where its bytes say it is unfinished, or on a network share not yet
        seen settled), positioned to read on from the next frame once more has been written.

        FFmpeg stops at the end of what was there when it got there; a batch run used to end there with
        exit 0 and never inspect the rest of the recording. A file now shorter than when it was opened was
        truncated while read: a permanent SourceError (camera failed, run exit 1), not a quiet end with exit 0.
        """
        if self.kind != "file" or self.camera.loop:
            return None
        signature = self._file_signature()
        ours = signature is not None and signature[0] == self._signature[0]
        if ours and signature[1] < self._signature[1]:  # cut short under us: the frames past the cut are lost
            raise self._error(f"{self._target}: truncated while read ({self._signature[1]} → {signature[1]} "
                              f"bytes after {self._delivered} frames); the rest of the recording is lost",
                              permanent=True)
        if self._follows:  # read on by the program as it grows (ts_feed): no seek; its end is the recording's
            if not self._cap.waiting:
                self._check_whole()
                return None
            t_ns, t_utc = _stamp()
            return Grabbed(None, t_ns, t_utc, {"index": self._index}, error=f"{self._target}: still being written",
                           reason="growing")
        # gone, or the name now stands for another file (rotated: ours was renamed, a new one begun): ours ended
        if not ours:
            return None
        if not self._settle.recording_still_written(self._target):
            self._check_whole()
            return None
        time.sleep(_GROWTH_POLL_S)  # short: the capture loop checks its stop event between reads
        size = signature[1]
        # seek only when there is more: a seek may decode up to a key frame. Never in an AVI being recorded
        # (_front_holds): FFmpeg cannot seek it without its index, and its capture reads on without one
        if size != self._end_size and self._front is None:
            self._end_size = size
            self._seek_after_last_read()
        return self._growing()

    def _check_whole(self) -> None:
        """At the end of a one-pass recording no longer written, or of a looping one's pass: a permanent SourceError
        (camera failed, run exit 1) when it gave fewer frames than its container declares, beyond :data:`_COUNT_SLACK` (containers that
        estimate the count from the duration). A file cut short or damaged before it was opened (a copy cut
        off, a bad sector) stopped decoding part-way and the run ended 'ended (11 frames)' with exit 0: the
        rest of the recording was never inspected, and nothing said so."""
        declared = float(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        if math.isfinite(declared) and declared - self._index > max(_COUNT_SLACK, declared * 0.01):
            raise self._error(f"{self._target}: decoding stopped after {self._index} of the {declared:.0f} frames "
                              f"its container declares (cut short or corrupt); the rest of the recording is lost",
                              permanent=True)

    def _note_read(self, pos_ms: float) -> None:
        """The frame just grabbed, at stream time ``pos_ms``, is read (:meth:`_grab_unread`)."""
        self._before_ms = self._read_ms
        self._time_advances |= self._read_ms is not None and pos_ms > self._read_ms
        self._read_ms = pos_ms
        if self.kind != "file":  # only a file is sought back to where it was read
            return
        if self._read_times and pos_ms < min(self._read_times):  # back past all read lately: time restarted
            self._read_times.clear()
        self._read_times.append(pos_ms)

    def _grab_unread(self) -> bool:
        """:meth:`_grab`, stepping over the frames a seek back to the read position gives again: those at a stream
        time not past the last frame read. FFmpeg seeks a Matroska file still being written (no index yet) to a
        frame before the one asked for, so a recording read as it grew in 20 kB steps gave 105 frames for 100
        (3 kB steps: 151), the same part inspected and published twice. Only frames read (by their time, among the
        last :data:`_REPLAY_MAX`) are stepped over, up to the furthest read: at the end of what was there the
        decoder flushed the frames it held, an H.264 P-frame before the B-frames shown before it (not yet
        written), and stepping over every frame up to the last read lost those (3 kB steps: stopped after 77 of
        100 frames); they now come after their P-frame. Only where the stream's time advances: a stream without
        timestamps (all 0 ms) cannot tell, and reads as before."""
        stepped = 0
        while self._grab():
            pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) if self._replayed_to is not None else 0.0
            # a seek lands at most a key-frame interval back: past _REPLAY_MAX the time must have restarted
            # (concatenated segments), and frames are read, not stepped over unseen
            if self._replayed_to is None or pos_ms > self._replayed_to or stepped >= _REPLAY_MAX:
                self._replayed_to = None
                return True
            if pos_ms not in self._read_times:  # before the last read, never read itself: held back (docstring)
                return True
            stepped += 1
        return False

    def _seek_after_last_read(self) -> None:
        """Position the capture so that the next grab gives frame ``_index``. Reading packets (raw stream
        mode), a seek past the last frame lands on the last packet again (a frame read twice): seek to the
        frame already read and step over it. Frames a seek gives again are stepped over (:meth:`_grab_unread`)."""
        if self._time_advances and self._read_times:
            self._replayed_to = max(self._read_times)  # the furthest read (B-frames: not the last read)
        if self._replayed_to is not None and (self._decode is None or isinstance(self._cap, ffmpeg_live.FileFrames)):
            # a seek by count lands after the frame asked for where this decode counts more frames before it than
            # the one that read them: FFmpeg's MPEG-2 decoder drops the frame it holds at a size change, which a
            # read that ended there had flushed (measured, FFmpeg 5.1: the first frame of the next part lost); a
            # read that ended at the end of a growing file had counted a flushed P-frame before its B-frames (H.264,
            # OpenCV: those B-frames lost). So fewer by count, the rest stepped over by their own time (_grab_unread).
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, self._index - _SWITCH_MARGIN))
            return
        if self._decode is None or self.kind != "file" or self._index == 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, self._index)
            return
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, self._index - 1)
        self._cap.grab()

    def _grab(self) -> bool:
        """Grab the next frame; False at the end of a recording. Until a live connection's first frame, a grab
        that failed is tried again for ``read_timeout_s``: FFmpeg's probe hands over the packets it read, and
        those before the first key frame cannot be decoded — OpenCV's grab gives up on them at once, and that
        was said as "no frame within read_timeout_s" at 0 s (then a reconnect, joining between key frames again)."""
        started = time.monotonic()
        while not self._cap.grab():
            if self._follows and self._cap.waiting:  # the end of what is there: more is being written
                return False
            if self.finite:
                return self._end_of_recording()
            if self._index or time.monotonic() - started >= self.camera.read_timeout_s:
                raise self._error(f"no frame from {self.describe()} within {self.camera.read_timeout_s:g} s")
            time.sleep(_GRAB_RETRY_S)  # a failed grab took no time: do not spin
        return True

    def _end_of_recording(self) -> bool:
        """A recording gave no more frames: False at its end, a rewind when looping; permanent when it never played."""
        if not self.camera.loop:
            if self._delivered == 0:
                raise self._error(f"{self._target}: no decodable frame", permanent=True)
            return False
        return self._rewind()

    def skip(self) -> bool:
        """Grab without decoding (keeps a live stream's buffers drained while pacing)."""
        if self._cap is None:
            raise self._error("source is not open")
        self._drop_probed(self._probe_took_s)
        if self._held is not None or self._pending is not None:
            self._held = self._pending = None
        elif not self._grab():
            return False
        self._index += 1
        return True

    def close(self) -> None:
        self._pending = self._held = self._front = None
        self._stop_verdicts()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


# ------------------------------------------------------------------------------------------ folders
def _version(path: Path) -> tuple[int, int, int] | None:
    """(inode, size in bytes, modification time in ns) of the file ``path``; None when it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _device_of(folder: Path) -> int | None:
    """The device number (``st_dev``) of the file system ``folder`` is on; None when it cannot be stat'ed."""
    try:
        return folder.stat().st_dev
    except OSError:
        return None


def _another_version(read: tuple[int, int, int] | None, path: Path) -> bool:
    """Whether the file now at ``path`` is not the one read under its name (``read``: its :func:`_version`):
    another file (inode), another size, or modified later. A one-pass folder camera that passed over every
    name it had read never read a picture written under a reused name (a wrapping counter, a rename over an
    old file), nor a copy that paused past ``file_settle.SETTLE_S`` (given up as corrupt, then completed). A file only
    dated back (``cp -p``/``touch -d`` giving it its original's date once written) is the same file: it is
    not inspected twice."""
    now = _version(path)
    if read is None or now is None:
        return read != now
    return now[:2] != read[:2] or now[2] > read[2]



def _why_gone(path: Path) -> str:
    """Why a listed name could not be opened (FileNotFoundError): a symbolic link whose target is gone (a
    producer's ``latest.png`` left dangling) or a file deleted between the listing and the read."""
    try:
        return f"a broken symbolic link (its target {os.readlink(path)} does not exist)"
    except OSError:  # no link (EINVAL), or gone too
        return "deleted before it was read"

class FolderSource(Source):
    """Image files of a folder in name order, decoded like training images; rescanned on every pass.

    * each pass lists the folder again (hidden files skipped; subfolders are not recursed; a file is an image by
      its extension, any case, so ``x.tmp``, ``x.png.part`` and ``.x.png`` are never read: a producer writes
      there and renames into place), so files added while running are read and a deleted and recreated (or
      swapped: ``current -> releases/N``) folder is picked up again;
    * one pass (no ``loop``) reads each file once: a name already read is read again only when another
      version of the file stands there (:func:`_another_version`, by the status of the bytes read); another
      name (hard or symbolic link) of a file already read is ``same_file``, not inspected twice; a name that
      could not be read (gone, a broken link) is not polled again until another file stands there;
    * a file that vanished before it was read is counted ``missing``, not corrupt;
      one that cannot be decoded but changed within the last 2 s (30 s when its data ends cut short:
      :meth:`_recent`) is ``incomplete``
      (still being written: it is tried again on the next pass), else ``corrupt``; ``incomplete`` is
      counted once per file (name and inode), the passes that find it still being written are ``waiting``
      (not counted: a counter counts files, not polls);
    * a pass that finds nothing readable raises a transient SourceError, so the worker
      backs off instead of spinning, unless files in it are still being written: those are
      waited for (a short sleep, then a rescan), not a source failure; without ``loop`` an
      empty folder at open is permanent and the run ends after a pass that finds no new file.
    """

    kind = "folder"
    finite = True

    def __init__(self, camera: CameraSection, bit_depth: int | None = None) -> None:
        super().__init__(camera, bit_depth)
        self._folder = Path(str(camera.source))
        self._files: list[Path] = []
        self._pos = 0
        # one-pass mode: name → (inode, size, mtime ns) of the file read (or given up on) under it (_scan)
        self._seen: dict[str, tuple[int, int, int] | None] = {}
        self._pass_frames = 0
        self._pass_incomplete = 0
        self._incomplete: set[tuple[str, int]] = set()  # (name, inode) of files already counted incomplete
        self._bad: dict[str, tuple[int, int, int] | None] = {}  # looping: name → version of the bad file counted
        # one-pass mode: (device, inode) → (name, version) of the files read, to know their other names (links)
        self._files_read: dict[tuple[int, int], tuple[str, tuple[int, int, int]]] = {}
        self._settle = SettleWatch()  # whether a picture that failed to decode is still being written
        self._opened_once = False
        self._device: int | None = None  # one pass: the file system (st_dev) the folder was first opened on
        self._subfolders, self._subfolders_due = "", 0.0  # _note_subfolders: its last finding, when to look again

    def _scan(self) -> list[Path]:
        files = list_images(self._folder)
        unread = unread_image_names(self._folder)
        if unread:  # once per camera: a folder filling with GIFs would say it at every pass
            warn_once(f"camera {self.camera.name} unread", "camera '%s': %s: %d file(s) of an image format that is "
                      "not read are left out, e.g. %s (read: %s)", self.camera.name, self._folder, len(unread),
                      unread[0], ", ".join(IMAGE_EXTENSIONS), logger=log)
        self._note_subfolders()
        if not self.camera.loop:
            files = [p for p in files if p.name not in self._seen or _another_version(self._seen[p.name], p)]
        return files

    def _note_subfolders(self) -> str:
        """What :func:`subfolders_note` says of the folder (sub-folders holding images, which are not read), looked
        at most every :data:`_SUBFOLDER_CHECK_S`, warned once per camera: a camera that writes into dated
        sub-folders left a camera on their parent idle (or 'no image files') without a word."""
        now = time.monotonic()
        if now >= self._subfolders_due:
            self._subfolders_due = now + _SUBFOLDER_CHECK_S
            self._subfolders = subfolders_note(self._folder)
            if self._subfolders:
                warn_once(f"camera {self.camera.name} subfolders {self._folder}", "camera '%s': %s: %s", self.camera.name,
                          self._folder, self._subfolders, logger=log)
        return self._subfolders

    def open(self) -> None:
        why = self._unlisted()
        if why:
            raise self._error(why, permanent=not self._opened_once and not self.camera.loop)
        self._files = self._scan()
        self._pos = 0
        self._pass_frames = self._pass_incomplete = 0
        if not self._files and not (self._seen and not self.camera.loop):
            nested = self._note_subfolders() if self.kind == "folder" else ""  # not the folder of a file camera
            raise self._error(f"{self._folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})"
                              + (f"; {nested}" if nested else ""),
                              permanent=not self.camera.loop and not self._opened_once)
        if not self._opened_once:
            self._device = _device_of(self._folder)
        self._opened_once = True

    def _unlisted(self) -> str | None:
        """Why the folder cannot be listed and its files read (gone, replaced, its permission taken away), one
        phrase; None when it can. Listings take an unreadable folder for an empty one: a one-pass folder whose
        permission was lost counted each file left ``corrupt`` and ended 'ended (2 frames; 28 corrupt skipped)',
        exit 0, as if done; a looping one said 'no image files'. Judged with this process's effective ids and
        capabilities, as the reads are (a root daemon without CAP_DAC_OVERRIDE is refused too)."""
        if not self._folder.is_dir():
            return _what_stands_at(self._folder, "a folder")
        if not os.access(self._folder, os.R_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
            return f"{self._folder}: cannot be read (permission denied)"
        return None

    def _check_folder_stands(self) -> None:
        """One pass: raise a permanent SourceError when the folder is gone (deleted, replaced by a file), unreadable or is
        no longer on the file system it was opened on (a share unmounted: its mount point, empty, stands there).
        A one-pass folder deleted mid-run ended as if its pass were done (exit 0), every file not yet read
        counted ``missing``: the run must fail (exit 1), in one line naming the folder."""
        what = self._unlisted()
        if what is None and _device_of(self._folder) != self._device:
            what = f"{self._folder} is no longer on the file system it was opened on (unmounted?)"
        if what is None:
            return
        raise self._error(f"{what} while its one pass was read ({len(self._seen)} file(s) done)", permanent=True)

    def _next_pass(self) -> bool:
        """Rescan at the end of a pass; False when a one-pass run is done. A pass that gave no frame because
        files in it were still being written waits :data:`_GROWTH_POLL_S` and rescans, as a recording is read on
        as it grows: calling it a source error made a file being copied in a 'reconnecting' camera (warnings,
        status events, back-off attempts that ``reconnect.max_attempts`` turned into 'failed'). A looping pass
        that found files but none readable, none being written, is a transient SourceError (back-off)."""
        if self._files and self._pass_frames == 0:
            if self._pass_incomplete:
                time.sleep(_GROWTH_POLL_S)  # short: the capture loop checks its stop event between reads
            elif self.camera.loop:
                raise self._error(f"{self._folder}: no readable image in a whole pass")
        if not self.camera.loop:
            self._check_folder_stands()
        elif why := self._unlisted():  # replaced by a file, removed, no longer readable: say which
            raise self._error(why)
        self._files, self._pos, self._pass_frames, self._pass_incomplete = self._scan(), 0, 0, 0
        names = {p.name for p in self._files}  # a file no longer listed can no longer be waited for
        self._incomplete = {key for key in self._incomplete if key[0] in names}
        self._bad = {name: version for name, version in self._bad.items() if name in names}
        if not self._files:
            if not self.camera.loop:
                return False
            raise self._error(f"{self._folder}: no image files")
        return True

    def read(self) -> Grabbed | None:
        if self._pos >= len(self._files) and not self._next_pass():
            return None
        path = self._files[self._pos]
        meta = {"index": self._pos, "file": path.name}
        self._pos += 1
        try:
            data, st = read_file_and_stat(path)  # never waits on a FIFO that took an image name meanwhile
            if not data.size and (kind := special_file_kind(path)):  # not "an empty file": say what it is
                raise SpecialFileError(path, kind)
        except OSError as exc:
            return self._unreadable(path, meta, exc)
        t_ns, t_utc = _stamp()  # the "grab": the encoded frame is in memory
        version = st.st_ino, st.st_size, st.st_mtime_ns  # of the bytes read: a later change is another version
        first = self._first_name(path.name, st.st_dev, version)
        if first is not None:
            return Grabbed(None, t_ns, t_utc, meta, reason="same_file",
                           error=f"{path.name}: another name (a link) of {first}, already read")
        try:
            image, layout = decode_image_layout(data, path.name, self.bit_depth, order="BGR",
                                                warn_key=f"camera {self.camera.name}")
        except ImageRejected as exc:
            reason = exc.reason if exc.reason == "corrupt" else f"rejected.{exc.reason}"
            if exc.reason == "corrupt" and self._recent(path, data, version):
                self._pass_incomplete += 1
                self._files_read.pop((st.st_dev, st.st_ino), None)  # read again once written: not a link then
                return Grabbed(None, t_ns, t_utc, meta, error=f"{path.name}: still being written",
                               reason=self._incomplete_reason(path.name, version))
            self._seen[path.name] = version
            return Grabbed(None, t_ns, t_utc, meta, error=str(exc), reason=self._once_per_version(path.name, version,
                                                                                                  reason))
        self._seen[path.name] = version
        self._pass_frames += 1
        return Grabbed(image, t_ns, t_utc, meta, layout=layout)

    def _unreadable(self, path: Path, meta: dict, exc: OSError) -> Grabbed:
        """A listed name that could not be read: ``missing`` (deleted meanwhile, a broken link) or ``corrupt``
        (no permission, an I/O error). One pass remembers it as read (:func:`_version`: None when gone), so it is
        tried again only once another file stands there: a broken link was re-listed at every pass, so a
        one-pass run never ended, polled it without a pause (a CPU core) and counted it ``missing`` each time.

        Whatever the error, the folder is looked at first: gone, replaced by a file (each read then fails with
        ENOTDIR) or unmounted, it is the camera's failure (one pass) or a reconnect (looping), never its unread
        files' fault: a folder replaced by a file counted every file left in the pass ``corrupt``, one warning
        each, then ended saying all of them were done."""
        if not self.camera.loop:
            self._check_folder_stands()  # the folder itself gone: the camera's failure, not a file missing
        elif why := self._unlisted():
            raise self._error(why)
        t_ns, t_utc = _stamp()
        self._seen[path.name] = _version(path)
        if isinstance(exc, FileNotFoundError):
            return Grabbed(None, t_ns, t_utc, meta, error=f"{path.name}: {_why_gone(path)}", reason="missing")
        return Grabbed(None, t_ns, t_utc, meta, error=f"{path.name}: cannot read ({exc.strerror or exc})",
                       reason=self._once_per_version(path.name, self._seen[path.name], "corrupt"))

    def _once_per_version(self, name: str, version: tuple[int, int, int] | None, reason: str) -> str:
        """``reason`` the first time a looping camera finds this version (inode, size, modification time) of a
        bad file under ``name``; ``seen_bad`` (neither counted nor told) at every later pass: a demo looping over
        a folder with one corrupt file counted it once per pass (99 passes: corrupt 99). Another version of the
        file is counted again. One pass never reads a version twice (``_seen``): ``reason`` unchanged."""
        if not self.camera.loop:
            return reason
        if name in self._bad and self._bad[name] == version:
            return "seen_bad"
        self._bad[name] = version
        return reason

    def _first_name(self, name: str, dev: int, version: tuple[int, int, int]) -> str | None:
        """The name under which a one-pass camera already read this very file (device, inode, size, mtime): a
        hard link or a symbolic link is another name of one picture, inspected once (``same_file``); a copy is
        another file. None when not read yet, and always when looping (each pass reads every name)."""
        if self.camera.loop:
            return None
        first = self._files_read.get((dev, version[0]))
        if first is not None and first[0] != name and first[1] == version:
            self._seen[name] = version
            return first[0]
        self._files_read[(dev, version[0])] = (name, version)
        return None

    def _recent(self, path: Path, data: np.ndarray, version: tuple[int, int, int]) -> bool:
        """Whether a picture that failed to decode is still being written. One no longer the ``version`` read
        (:func:`_version`: it changed, or went, between the read and now) is: judged by a later stat alone, a
        copy caught mid-write and back-dated at once (``cp -p``) was counted corrupt as its half, then again
        whole. One whose data ends cut short (:func:`ends_cut_short`: a JPEG without its EOI, a PNG without
        IEND, a TIFF, BigTIFF, PNM or PAM short of what its header places) is waited for STALLED_S since it last
        changed: a copy that paused past SETTLE_S mid-file (a slow share, an SDK writing in bursts) was counted
        corrupt, its picture never inspected. A file whose end cannot tell (a plain-text PNM, empty) keeps
        SETTLE_S."""
        if _version(path) != version:
            return True
        return self._settle.still_written(path, STALLED_S if ends_cut_short(data) else SETTLE_S)

    def _incomplete_reason(self, name: str, version: tuple[int, int, int] | None) -> str:
        """``incomplete`` the first time this file (name, inode) is found still being written, ``waiting`` at
        every later pass: polled every 0.2 s, one file copied in over 10 s was counted 50 times."""
        key = (name, version[0] if version else -1)
        if key in self._incomplete:
            return "waiting"
        self._incomplete.add(key)
        return "incomplete"


class ImageFileSource(FolderSource):
    """One still image file as a camera: the folder camera over that one file.

    FFmpeg would open a still image as a one-frame video and decode it its own way
    (no EXIF orientation, 16-bit data cut to its high byte, no declared bit depth),
    so the file would give other pixels than ``predict`` gives it; here it goes
    through :func:`inspector.data.images.decode_image` like every other image.
    ``loop`` re-reads it (a replaced file is picked up); one pass reads it once. Like a
    video file, one that never decoded and is not being written fails the camera at once,
    looping or not: an offline source that can never give a frame ends the run.
    """

    kind = "file"

    def __init__(self, camera: CameraSection, bit_depth: int | None = None) -> None:
        super().__init__(camera, bit_depth)
        self._file = Path(str(camera.source))
        self._folder = self._file.parent
        self._decoded = False  # any frame since the source was created
        self._why = "corrupt or unsupported image"  # what the decoder said of the file last

    def read(self) -> Grabbed | None:
        grabbed = super().read()
        self._decoded = self._decoded or (grabbed is not None and grabbed.image is not None)
        if grabbed is not None and grabbed.image is None and grabbed.error:
            self._why = grabbed.error.removeprefix(f"{self._file.name}: ")
        return grabbed

    def _next_pass(self) -> bool:
        # the decoder's own reason: "corrupt or unsupported" told a 32-bit TIFF that needs a bit_depth, or a 1x1
        # picture, to be a damaged file (the reason was only in an earlier warning)
        if self._files and not self._decoded and self._pass_frames == 0 and self._pass_incomplete == 0:
            raise self._error(f"{self._file}: no decodable frame ({self._why})", permanent=True)
        return super()._next_pass()

    def _scan(self) -> list[Path]:
        if not self._file.is_file() or (not self.camera.loop and self._file.name in self._seen
                                        and not _another_version(self._seen[self._file.name], self._file)):
            return []
        return [self._file]

    def open(self) -> None:
        if not self._file.is_file() and not (self._seen and not self.camera.loop):
            raise self._error(_what_stands_at(self._file, "an image file"),
                              permanent=not self._opened_once and not self.camera.loop)
        super().open()


# ------------------------------------------------------------------------------------------ synthetic
class SyntheticSource(Source):
    """Texture frames with injected defects at ``defect_rate`` (for demos, tests and benchmarks).

    Frames are drawn from a pool of ``pool`` good and as many defective frames (real scikit-image textures
    and the defect generators of :mod:`inspector.data.synth`; a procedural texture when scikit-image is
    absent), each made the first time it is drawn (:class:`SyntheticPool`), so a frame drawn again costs
    nothing. ``meta["injected"]`` tells which frames carry a defect (the ground truth).
    """

    kind = "synthetic"

    def __init__(self, camera: CameraSection, bit_depth: int | None = None) -> None:
        super().__init__(camera, bit_depth)
        self.finite = camera.max_frames > 0
        self._pool: SyntheticPool | None = None
        self._index = 0
        self._rng = np.random.default_rng(camera.synthetic.seed)

    def open(self) -> None:
        if self._pool is None:
            self._pool = SyntheticPool(self.camera.synthetic, self.camera.name)

    @property
    def pool(self) -> SyntheticPool | None:
        """The frames it draws from (None before :meth:`open`); settable, so that benchmarks can give several
        cameras one pool made in advance (:meth:`SyntheticPool.fill`)."""
        return self._pool

    @pool.setter
    def pool(self, pool: SyntheticPool) -> None:
        self._pool = pool

    def read(self) -> Grabbed | None:
        cfg = self.camera.synthetic
        if cfg.defect_rate > 0 and self._rng.random() < cfg.defect_rate:
            image, kind = self._pool.bad(int(self._rng.integers(cfg.pool)))
        else:
            image, kind = self._pool.good(int(self._rng.integers(cfg.pool))), None
        t_ns, t_utc = _stamp()
        meta = {"index": self._index, "injected": kind}
        self._index += 1
        return Grabbed(image, t_ns, t_utc, meta)

    def describe(self) -> str:
        s = self.camera.synthetic
        return f"synthetic {s.texture} {s.size}x{s.size} defect_rate {s.defect_rate:g}"


def procedural_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A woven/grainy grey texture (float32 0..255) that needs no scikit-image."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    weave = 18 * np.sin(xx / 3.1) * np.sin(yy / 3.7) + 10 * np.sin((xx + yy) / 11.0)
    grain = cv2.GaussianBlur(rng.normal(0, 12, (size, size)).astype(np.float32), (0, 0), 1.2)
    return np.clip(128 + weave + grain, 0, 255)


# Frames are generated at most this many pixels wide and scaled up to `size`: generating costs ~1 s per MiB
# of frame (a 4096 px defective frame 25-70 s, its procedural texture 74 s; measured on 2 cores), while the
# built-in textures are 512 px photographs whose crops are scaled up from ~256 px anyway.
SYNTHETIC_DETAIL_MAX = 1024


class SyntheticPool:
    """The good and defective BGR frames (``size`` × ``size`` uint8) of a synthetic camera, each generated the
    first time it is asked for and kept. Generating all 2 × ``pool`` frames at open cost ~0.1 s per MiB
    before --check could answer (pool 4096 or size 4096: minutes) although a run draws only the frames it
    needs. Frame ``i`` depends only on (seed, i), not on the order frames are drawn in. Unknown defect kinds
    and a texture that cannot be loaded raise :class:`SourceError` here, at open."""

    def __init__(self, cfg: SyntheticSection, camera: str) -> None:
        from inspector.data import synth

        self.cfg, self.camera = cfg, camera
        self.kinds = tuple(cfg.kinds) or synth.DEFECT_KINDS
        bad_kinds = [k for k in self.kinds if k not in synth.DEFECT_KINDS]
        if bad_kinds:
            raise SourceError(f"camera '{camera}': unknown defect kind(s) {bad_kinds}; choose from "
                              f"{synth.DEFECT_KINDS}")
        self.side = min(cfg.size, SYNTHETIC_DETAIL_MAX)  # generated at this size, then scaled to cfg.size
        self._sources = self._load_texture() if cfg.texture != "procedural" else None
        self._good: dict[int, np.ndarray] = {}
        self._bad: dict[int, tuple[np.ndarray, str]] = {}

    def _load_texture(self) -> list[np.ndarray] | None:
        """The texture's source photographs, or None for the procedural texture (made on first use)."""
        from inspector.data import synth

        try:
            return synth.load_sources(self.cfg.texture)
        except DataError as exc:
            if self.cfg.texture not in synth.BUILTIN_TEXTURES:
                raise SourceError(f"camera '{self.camera}': synthetic.texture: {exc}") from None
            log.warning("camera '%s': %s; using a procedural texture instead", self.camera, exc)
            return None

    def _rgb(self, i: int) -> np.ndarray:
        """Good frame ``i`` as generated: RGB uint8 (side, side, 3)."""
        from inspector.data import synth

        if self._sources is None:
            gray = procedural_texture(2 * self.side, np.random.default_rng(self.cfg.seed))
            self._sources = [np.repeat(gray[:, :, None], 3, axis=2)]
        return synth.good_image(self._sources, self.side, np.random.default_rng([self.cfg.seed, i]))

    def _out(self, rgb: np.ndarray) -> np.ndarray:
        """A generated RGB frame as the camera delivers it: BGR, size × size."""
        size = self.cfg.size
        if rgb.shape[0] != size:
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

    def good(self, i: int) -> np.ndarray:
        if i not in self._good:
            self._good[i] = self._out(self._rgb(i))
        return self._good[i]

    def bad(self, i: int) -> tuple[np.ndarray, str]:
        """Defective frame ``i``: good frame ``i`` with one defect of kind ``kinds[i % len(kinds)]``."""
        from inspector.data import synth

        if i not in self._bad:
            kind = self.kinds[i % len(self.kinds)]
            image, _mask = synth.make_defect(self._rgb(i), kind, np.random.default_rng([self.cfg.seed, i, 1]))
            self._bad[i] = (self._out(image), kind)
        return self._bad[i]

    def fill(self, hw: tuple[int, int] | None = None) -> "SyntheticPool":
        """Make every frame now, for benchmarks that must not time the generation; ``hw``: then resize every
        frame to (height, width) (frames 1080p and above without generating at that size). Returns self."""
        for i in range(self.cfg.pool):
            self.good(i)
            if self.cfg.defect_rate > 0:
                self.bad(i)
        if hw is not None:
            def resize(frame):
                return cv2.resize(frame, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
            self._good = {i: resize(f) for i, f in self._good.items()}
            self._bad = {i: (resize(f), kind) for i, (f, kind) in self._bad.items()}
        return self


def make_synthetic_pool(cfg: SyntheticSection, camera: str) -> tuple[list[np.ndarray], list[tuple[np.ndarray, str]]]:
    """(good BGR frames, [(defective BGR frame, defect kind)]) of a synthetic camera, all made now (benchmarks
    that want the frames as arrays); the camera itself makes each when first drawn."""
    pool = SyntheticPool(cfg, camera).fill()
    good = [pool.good(i) for i in range(cfg.pool)]
    return good, [pool.bad(i) for i in range(cfg.pool)] if cfg.defect_rate > 0 else []


# ------------------------------------------------------------------------------------------ factory
def source_type(camera: CameraSection) -> str:
    """The source type of ``camera`` (explicit ``type`` or guessed from ``source``)."""
    if camera.type != "auto":
        return camera.type
    src = camera.source
    if isinstance(src, int) or (isinstance(src, str) and src.isdigit()) or _names_video_device(str(src)):
        return "device"
    src = str(src)
    if src == "synthetic" or src.startswith("synthetic:"):
        return "synthetic"
    if src.startswith("genicam://"):
        return "genicam"
    if " ! " in src:  # a pipeline, though it names a URI (rtspsrc location=rtsp://…): not FFmpeg's URL
        return "gstreamer"
    if "://" in src:
        return "url"
    if "!" in src:
        return "gstreamer"
    path = Path(src)
    if path.is_dir():
        return "folder"
    if special_file_kind(path) is not None or (path.is_symlink() and not path.exists()):
        # neither a video file nor a folder, whatever its name: a device, a FIFO, a link loop or a broken link
        raise SourceError(f"camera '{camera.name}': {_what_stands_at(path, 'a video or image file')}")
    if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        return "file"
    raise SourceError(f"camera '{camera.name}': cannot tell what source '{src}' is (no such file or folder; "
                      f"set type: file|folder|device|url|gstreamer|synthetic|genicam)")


def _what_stands_at(path: Path, wanted: str) -> str:
    """Why ``path`` is not ``wanted`` (a video or image file, a folder), naming what is there: a FIFO with a
    video's name was said "video file … not found", and one with an image's name "no such file or folder"
    (it is there). A FIFO is refused, not opened: FFmpeg's open of it waits for a writer (open(2), fifo(7)),
    and a stream fed through one is a live source (udp://, tcp://)."""
    kind = special_file_kind(path)
    if kind is not None:
        return f"{path} is {kind}, not {wanted} (stream a live feed over udp:// or tcp:// instead)"
    if path.is_dir():
        return f"{path} is a folder, not {wanted}"
    if path.exists():
        return f"{path} is a file, not {wanted}"
    if path.is_symlink():  # a link loop, or a link whose target is gone: "not found" of a name listed there
        return not_a_file(path, wanted.split(" ", 1)[1])
    return f"{wanted} {path} not found"


def _names_video_device(src: str) -> bool:
    """``/dev/videoN``, a udev persistent name (``/dev/v4l/by-id/…``, ``/dev/v4l/by-path/…``) or a link to a
    video4linux node. The persistent names are the ones that survive a camera plugged back in as another
    ``/dev/videoN``, but being links to character devices (neither a file nor a folder) they were refused as
    "cannot tell what source" unless ``type: device`` was set; absent (the camera unplugged at start) too."""
    if src.startswith(("/dev/video", "/dev/v4l/")):
        return True
    try:
        st = os.stat(src)
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == _V4L_MAJOR


# Makes the Source of a camera whose source type a plug-in provides: (camera, model bit depth) → Source.
SourceFactory = Callable[[CameraSection, int | None], Source]


def make_source(camera: CameraSection, bit_depth: int | None = None,
                kinds: Mapping[str, SourceFactory] | None = None) -> Source:
    """The :class:`Source` for ``camera``; raises SourceError for sources this machine cannot open.

    ``bit_depth``: the model's setting (sidecar), used when the camera has none. ``kinds``: source types
    that plug-ins provide (``genicam``: :data:`inspector.integrations.runtime.SOURCE_KINDS`); the pipeline
    never imports them itself.
    """
    kind = source_type(camera)
    if kinds and kind in kinds:
        return kinds[kind](camera, bit_depth)
    src = camera.source
    if kind == "file":
        if not Path(str(src)).is_file():
            raise SourceError(f"camera '{camera.name}': {_what_stands_at(Path(str(src)), 'a video or image file')}")
        if is_still_image(Path(str(src))):  # the one image decoder, not FFmpeg
            return ImageFileSource(camera, bit_depth)
        return CvSource(camera, "file", str(src), cv2.CAP_ANY, live=False, finite=True, bit_depth=bit_depth)
    if kind == "folder":
        return FolderSource(camera, bit_depth)
    if kind == "synthetic":
        return SyntheticSource(camera, bit_depth)
    if kind == "device":
        target = int(src) if isinstance(src, int) or str(src).isdigit() else str(src)
        return CvSource(camera, "device", target, cv2.CAP_ANY, live=True, finite=False, bit_depth=bit_depth)
    if kind == "url":
        video = lambda: ffmpeg_live.FullDepthUrl(camera, bit_depth, lambda: CvSource(  # noqa: E731
            camera, "url", str(src), cv2.CAP_FFMPEG, live=True, finite=False, bit_depth=bit_depth))
        if urllib.parse.urlsplit(str(src)).scheme.lower() in ("http", "https"):  # pictures, MJPEG or a video
            return SnapshotSource(camera, bit_depth, video)
        return video()
    if kind == "gstreamer":
        if not has_gstreamer():
            raise SourceError(f"camera '{camera.name}': this OpenCV build has no GStreamer support "
                              f"(pip wheels never do); build OpenCV with GStreamer or use an rtsp:// URL")
        return CvSource(camera, "gstreamer", str(src), cv2.CAP_GSTREAMER, live=True, finite=False,
                        bit_depth=bit_depth)
    if kind == "genicam":
        raise SourceError(f"camera '{camera.name}': GenICam cameras are an integration; this daemon was made "
                          "without integrations (inspector.integrations.runtime.make_daemon adds them)")
    raise SourceError(f"camera '{camera.name}': unknown source type '{kind}'")


def is_live(camera: CameraSection, source: Source) -> bool:
    """Live: keep only the newest frame. Offline: block and lose nothing."""
    if camera.mode != "auto":
        return camera.mode == "live"
    if source.kind == "synthetic":
        return camera.fps > 0
    return source.live
