"""Which frames of a video file its decoder made up around damage, for a file whose pixels OpenCV reads: a pass of
the ``ffmpeg`` program that decodes the file and writes no pixels (:class:`VerdictPass`).

OpenCV's FFmpeg backend conceals a damaged part of a file (bytes flipped by a bad sector, TS packets lost on the way to
a recorder, bytes cut out of a key frame) as the program's decoder does, and hands the made-up frames on as any
other, unmarked: an 8-bit H.264 file with its second key frame's middle third flipped gave its 25 made-up frames to
inspection as parts (measured, OpenCV 5.0). The program's log tells them (:class:`ffmpeg_live.Concealment`); a file
read *through* the program (:class:`ffmpeg_live.FileFrames`) has them counted ``concealed`` and never inspected.
Reading every inter-coded 8-bit file so costs the pipe: each frame's BGR bytes copied out of the program and into
this process (benchmarks/README.md, Session 40). This pass decodes the same file beside OpenCV with no output
(``-f null``, no colour conversion, no deblocking: a loss is met while the bitstream is parsed, never in the loop
filter) and hands on each frame's verdict by its count from the file's start. The reader waits for the verdict of
each frame before it hands it on; the pass, doing less per frame than OpenCV, is normally ahead.

A frame the pass does not vouch for (made up, before the file's first key frame, or past the pass's end) ends the
split: the file is read on from that frame by the program (:class:`ffmpeg_live.FileFrames`), whose own verdicts then
judge every frame, so the two decoders never need to agree on a frame count past a damaged part (OpenCV's FFmpeg is
another build). Only a damaged file pays for the program's pixels.

The decoder runs on one thread (:data:`ffmpeg_live.ONE_THREAD`, as the live path's): FFmpeg 5.1's H.264 decoder
marks a concealed frame only through its error-resilience pass, which slice threading turns off (no "concealing … errors", no "corrupt decoded frame": 0 of 5
runs marked the file above) and which frame threading races (unmarked in all 8 runs of this command with frame
threads, in 2 of 5 writing the frames to /dev/null). An MPEG-TS file is fed through a pipe (:class:`ts_feed.FileFeed`), so that segments joined with ``cat`` are no
loss, as for the program's reader. A recording still being written is not watched so: the program reads it as it grows
(:meth:`inspector.pipeline.sources.CvSource._will_follow`).
"""

from __future__ import annotations

import bisect
import os
import subprocess
import threading

from inspector.pipeline import ffmpeg_live, programs, ts_feed
from inspector.pipeline.recording_ends import is_ts

# the decoder alone, on one thread, without its loop filter (module docstring)
DECODER_OPTIONS = [*ffmpeg_live.ONE_THREAD, "-skip_loop_filter", "all"]


def verdict_command(path: str, fed: bool) -> list[str]:
    """The program decoding the video file ``path`` (``fed``: an MPEG-TS given on stdin) with no output but a
    showinfo line a frame (its key flag: :class:`ffmpeg_live.Concealment`), none dropped or repeated."""
    source = ["-f", "mpegts", "-i", "pipe:0"] if fed else ["-i", f"file:{os.path.abspath(path)}"]
    return [*ffmpeg_live.PROGRAM, *DECODER_OPTIONS, *source, "-map", "0:v:0", "-vf", "showinfo=checksum=0",
            "-vsync", "passthrough", "-f", "null", "-"]


class VerdictPass:
    """The verdicts of the frames of the video file ``path``, by their count from its start (:meth:`verdict`), told by
    the program decoding it on a thread of its own (module docstring). Raises OSError when the program cannot start
    or the file cannot be opened."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ts = is_ts(path)
        self._cond = threading.Condition()
        self._frames = 0  # frames the program output so far, counted from the file's start
        self._bad_starts: list[int] = []  # runs of frames not vouched for: first frame, end (exclusive), why
        self._bad: list[tuple[int, int, str]] = []
        self._ended = self._closed = False
        self._proc: subprocess.Popen | None = None
        self._feed: ts_feed.FileFeed | None = None
        self._feeder: threading.Thread | None = None
        self._start(0)
        self._thread = threading.Thread(target=self._run, name="ffmpeg-verdicts", daemon=True)
        self._thread.start()

    def _start(self, offset: int) -> None:
        """Start the program on the file from byte ``offset`` (an MPEG-TS is fed: :class:`ts_feed.FileFeed`)."""
        self._feed = ts_feed.FileFeed(self.path, False, offset) if self._ts else None
        self._proc = subprocess.Popen(verdict_command(self.path, self._ts), stdout=subprocess.DEVNULL,
                                      stdin=subprocess.PIPE if self._ts else subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)  # buffered: its lines are read one by one
        if self._feed is not None:
            self._feeder = threading.Thread(target=self._feed.run, args=(self._proc.stdin,), name="ffmpeg-feed",
                                            daemon=True)
            self._feeder.start()

    def _run(self) -> None:
        """Read each program's log to its end; one whose feed stopped before an MPEG-2 sequence of another format
        (:class:`ts_feed.FileFeed`) is followed by a new one from there, as :class:`ffmpeg_live.FileFrames` does."""
        while True:
            self._drain(ffmpeg_live.Concealment(self._feed.joins.dts if self._feed else None))
            self._proc.wait()
            with self._cond:  # started under the lock: close() kills this program or the next, never neither
                cut = self._feed.cut if self._feed is not None and not self._closed else None
                try:
                    if cut is not None:
                        self._start(cut)
                        continue
                except OSError:
                    pass
                self._ended = True
                self._cond.notify_all()
                return

    def _drain(self, concealment: ffmpeg_live.Concealment) -> None:
        """Take the program's lines: each frame's verdict noted, in order."""
        try:
            for raw in self._proc.stderr:
                line = raw.decode("utf-8", "replace").strip()
                level, text = ffmpeg_live.Concealment.parse(line)
                verdict = concealment.frame_verdict(level, text, ffmpeg_live.Concealment.context(line))
                if verdict is not None:
                    self._note(verdict)
        except (OSError, ValueError):  # closed under it
            pass

    def _note(self, verdict: str) -> None:
        with self._cond:
            if verdict and self._bad and self._bad[-1][1] == self._frames and self._bad[-1][2] == verdict:
                self._bad[-1] = (self._bad[-1][0], self._frames + 1, verdict)
            elif verdict:
                self._bad.append((self._frames, self._frames + 1, verdict))
                self._bad_starts.append(self._frames)
            self._frames += 1
            self._cond.notify_all()

    def verdict(self, index: int) -> str | None:
        """Frame ``index``'s verdict (0: the file's first frame), waited for: "" for a frame decoded whole,
        :data:`ffmpeg_live.CONCEALED` or :data:`ffmpeg_live.BEFORE_KEY_FRAME` otherwise; None for a frame the pass
        did not output (past its end: unknown)."""
        with self._cond:
            self._cond.wait_for(lambda: self._frames > index or self._ended or self._closed)
            if index >= self._frames:
                return None
            at = bisect.bisect_right(self._bad_starts, index) - 1
            return self._bad[at][2] if at >= 0 and index < self._bad[at][1] else ""

    def close(self) -> None:
        """Kill the program and wait for it (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._feed is not None:
            self._feed.stop()
        programs.stop(self._proc, [self._thread, *([self._feeder] if self._feeder else [])])
