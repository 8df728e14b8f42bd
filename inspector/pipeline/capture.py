"""Capture: one thread per camera, feeding a shared :class:`FrameHub`.

Each :class:`CaptureWorker` opens its source, grabs frames (stamped at grab),
and puts them into its camera's channel of the hub:

* **live** cameras keep only the newest frame: an unconsumed frame is
  overwritten and counted as a drop;
* **offline** cameras (files, folders) block while their channel is full and
  lose nothing.

**Fair share** (max-min fairness across cameras, work-conserving): batches
fill round-robin, one frame per camera with frames waiting per round, until
the batch is full. A live camera's turns are ``share = ⌈max_batch ÷
cameras⌉`` frames per batch (the number of rounds a full batch needs), so:

* a live camera whose rate is above its fair share gets ``share`` frames per
  batch, as many as each offline camera: an offline backlog can never take its
  turns (its older frames are dropped, counted as ``dropped_live``);
* a live camera below its fair share gets every frame, and the offline
  cameras fill the rest of the batch, so batches stay full (no throughput is
  given up for fairness);
* offline cameras share what is left equally (round-robin).

Batch periods vary (a slow inference, a fill that waited), so a live camera
below its share *on average* still sees some periods with more than ``share``
frames. Its turns are a token bucket (:meth:`FrameHub.take`): ``share`` tokens
per batch, what it left unused carried over up to one more share, one token
per frame taken; its channel keeps as many frames as its next batch may take
(``share`` to ``2·share``). Live frames are taken first, up to the tokens,
then the batch fills round-robin. A camera at or above its share uses every
token, so it keeps ``share`` frames and gets ``share`` per batch as before; a
slower one absorbs a period up to twice the mean. (Measured: a live camera at
15 frames/s, below its ~21 frames/s share beside three offline backlogs, had
86-93 % of its frames inspected with a fixed ``share``-deep channel, 100 % with
the tokens, at a p99 30-90 ms higher; benchmarks/README.md "Session 27".)

**Bounded wait**: whatever the shares, a camera with a frame ready at the start of
``⌈cameras ÷ max_batch⌉`` batches in a row and none of them its turn (the batches one
frame per camera needs) is *overdue*: the next batch takes one frame of each overdue
camera first, longest-waiting first. With as many live cameras as a batch holds the
live frames filled every batch, so an offline camera (a file, a folder back from a
reconnect) was never inspected and a slow one's frames waited whole rotations; now
every camera with a frame ready gets a turn within ``2·⌈cameras ÷ max_batch⌉``
batches. Below that (the usual case) nobody is ever overdue and nothing changes.

Age: a live frame waits at most about two batch periods, one when its camera
is at or above its share; with 8 or more cameras ``share`` is 1.

**Freshness**: a live source paced by ``fps`` keeps grabbing (without
decoding) at its own rate and decodes only the frame that is due, so the
decoder's buffers never age; skipped grabs are counted as ``dropped_pacing``.
The capture stamp is the grab time of the frame actually inspected.

A source that fails transiently is reconnected with exponential back-off and jitter
(saturating at ``max_s`` for any attempt count); a permanent error (a file that can
never be decoded) fails the camera at once; reopens that cannot help (frames refused for one reason after
each) are said once as a configuration error and retried at ``reconnect.max_s`` (:meth:`CaptureWorker._futile_reopen`);
the state changes (connecting, online, reconnecting, stalled, ended, failed)
go to ``on_status``. A watchdog (:meth:`CaptureWorker.check_watchdog`, called
by the supervisor) flags a source that stopped delivering.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import threading
import time
from typing import Callable

import numpy as np

from inspector.data.images import FrameLayout
from inspector.errors import SourceError
from inspector.pipeline.config import CameraSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.sources import Source, SourceChanged, SourceMisconfigured, SourceWaiting, is_live
from inspector.pipeline.worker import Throttled, Worker, WorkerContext, sleep_until
from inspector.pipeline.telemetry import Counters
from inspector.redact import redact

log = logging.getLogger("inspector.capture")
# Grabbed.reason values of frames a source gave up on (not "growing": a recording read on as it grows; nor
# "incomplete": a folder's file still being written, read again on the next pass; nor "waiting": such a file
# found still being written again; nor "seen_bad": a looping folder's bad file found unchanged on a later pass)
# "same_file": another name (a hard or symbolic link) of a file a one-pass folder camera already read
# "concealed": a live frame its decoder made up around data the stream lost (ffmpeg_live.Concealment)
# "before_key_frame": a live frame output before the first key frame since the (re)connect (ffmpeg_live)
# "repeat": a snapshot camera's answer that is its last picture again (http_sources.SnapshotPictures)
_SKIP_REASONS = ("missing", "corrupt", "concealed", "before_key_frame", "same_file", "repeat")  # + "rejected.<why>"
# of those, an offline source's frames that are a part not inspected (published decided 'error': _tell_unread);
# "missing" (deleted before it was read) and "same_file" (a link to a part already read) are no part of their own,
# and a damaged recording's made-up frames ("concealed", tens per damage) are said once for the file
UNREAD_PART_REASONS = ("corrupt",)
NO_PIXELS = np.zeros((0, 0, 3), np.uint8)  # the image of a frame that could not be decoded (read-only, shared)
NO_PIXELS.flags.writeable = False


# A live camera's read that gave no decodable frame at once (a driver returning True with an empty frame): the
# next read waits this long, so a camera stuck that way is polled, not spun on (it took a core, 11,000 reads/s)
_UNDECODABLE_PAUSE_S = 0.01
# Undecodable frames that are no fault of a live stream's data (files being written, links, files seen before,
# a stream joined between key frames: a reopen would join it between key frames again, and never get one where
# the key-frame interval is longer than read_timeout_s; the watchdog says a stream that sends none)
_NOT_STREAM_FAULTS = ("missing", "incomplete", "growing", "waiting", "same_file", "seen_bad", "before_key_frame",
                      "repeat")  # a frozen camera answers fine: a reopen would give its picture again (stale)
_WRITTEN_POLL_S = 0.5  # a source whose file is still being written (SourceWaiting) is opened again after this
# reopens in a row, no frame delivered, each ended by frames undecodable for the same reason: past the first (which may
# clear a decoder stuck after a hiccup) they cannot help, and the camera is told to be misconfigured (_futile_reopen)
_FUTILE_REOPENS = 2
_STOP_BACKSTOP_S = 0.5  # longest a producer blocked on a full channel may take to see ``stop`` unwoken


class FrameHub:
    """Per-camera bounded channels behind one lock, drained round-robin by the batcher.

    One condition per waiter kind over the same lock (the bounded-buffer pattern of :class:`queue.Queue`):
    the batcher waits on ``_not_empty``, each offline camera's producer on its own ``_not_full[camera]``.
    A put wakes only the batcher and a take only the producers whose channel it emptied a slot of; with one
    shared condition and ``notify_all`` every frame woke every blocked producer (measured: process CPU per
    frame through the hub 53 µs at 8 offline cameras against 17-20 µs at 1-4).

    A blocked offline producer is woken only once its channel has drained to half its capacity (the
    low-water mark, :meth:`low_water`), then refills it without waiting: one wake-up per
    ``capacity - low_water`` frames instead of one per take. Waking it at the first free slot made it wake
    once per batch per camera, i.e. once per frame at 8 cameras (each take frees one slot of each channel),
    and the capture role's CPU per frame grew with the camera count (issue 17). Nothing is lost or
    reordered, and the batcher never waits on it: the channel still holds ``low_water`` frames.
    """

    def __init__(self, counters: Counters, batch_size: int = 1) -> None:
        self.batch_size = max(1, batch_size)  # frames per batch: sets a live camera's share (module docstring)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full: dict[str, threading.Condition] = {}
        self._queues: dict[str, collections.deque] = {}
        self._capacity: dict[str, int] = {}
        self._low_water: dict[str, int] = {}
        self._live: dict[str, bool] = {}
        self._tokens: dict[str, int] = {}  # live cameras: frames they may still take (module docstring)
        self._open: set[str] = set()
        self._order: list[str] = []
        self._next = 0
        self._next_live = 0  # where the live-first pass of the next take starts (FrameHub.take)
        self._skipped: dict[str, int] = {}  # batches in a row a camera had a frame ready and no turn
        self._served: set[str] = set()  # cameras that had a turn in the batch being filled
        self.counters = counters

    def add_camera(self, camera: str, live: bool, capacity: int) -> None:
        with self._lock:
            self._queues[camera] = collections.deque()
            self._not_full[camera] = threading.Condition(self._lock)
            self._capacity[camera] = max(1, capacity)  # offline only: a live channel keeps its share
            self._low_water[camera] = self.low_water(self._capacity[camera])
            self._live[camera] = live
            if live:
                self._tokens[camera] = 0
            self._open.add(camera)
            self._order.append(camera)
            self._skipped[camera] = 0

    @staticmethod
    def low_water(capacity: int) -> int:
        """Frames left in a full offline channel when its blocked producer is woken: half its capacity
        (0 for a capacity of 1: woken when empty)."""
        return capacity // 2

    def put(self, frame: Frame, stop: threading.Event) -> bool:
        """Hand ``frame`` on; False if ``stop`` was set while an offline channel was full."""
        cam = frame.camera
        with self._lock:
            q = self._queues[cam]
            if self._live[cam]:
                while len(q) >= self._live_depth(cam):
                    q.popleft()
                    self.counters.add(f"{cam}.dropped_live")
            else:
                while len(q) >= self._capacity[cam]:
                    if stop.is_set():
                        return False
                    # A backstop only: the daemon wakes every waiter when it stops (wake_all). Each timed
                    # wake-up costs ~30 µs of CPU; at 50 ms, one blocked producer per offline camera made
                    # them most of the capture role's CPU per event (0.04 ms at 4 cameras, issue 17).
                    self._not_full[cam].wait(_STOP_BACKSTOP_S)
            q.append(frame)
            self._not_empty.notify()  # one consumer: the batcher
        return True

    def wake_all(self) -> None:
        """Wake every waiting producer and the batcher (after ``stop`` was set: they see it at once)."""
        with self._lock:
            self._not_empty.notify_all()
            for cond in self._not_full.values():
                cond.notify_all()

    def close(self, camera: str) -> None:
        """The producer of ``camera`` is done."""
        with self._lock:
            self._open.discard(camera)
            self._not_empty.notify_all()

    def share(self) -> int:
        """Frames per camera per full batch: ⌈batch_size ÷ open cameras⌉ (a live camera's tokens per batch)."""
        return -(-self.batch_size // max(1, len(self._open) or len(self._order)))

    def _live_depth(self, cam: str) -> int:
        """Frames a live channel keeps: what its next batch may take (``share`` to ``2·share``); lock held."""
        share = self.share()
        return min(2 * share, self._tokens[cam] + share)

    def _next_batch(self) -> None:
        """A batch begins: each live camera earns ``share`` tokens, up to ``2·share`` held; a camera with a frame
        ready that had no turn in the last batch counts one more batch skipped; lock held."""
        share = self.share()
        for cam in self._tokens:
            self._tokens[cam] = min(2 * share, self._tokens[cam] + share)
        for cam, q in self._queues.items():
            self._skipped[cam] = self._skipped[cam] + 1 if q and cam not in self._served else 0
        self._served.clear()

    def _take_overdue(self, max_n: int, out: list[Frame], taken: dict[str, int]) -> None:
        """One frame of each camera skipped for a whole rotation (module docstring, "Bounded wait"), longest
        skipped first; lock held."""
        rotation = -(-len(self._order) // self.batch_size)
        overdue = [cam for cam in self._order if self._skipped[cam] >= rotation and self._queues[cam]]
        for cam in sorted(overdue, key=lambda c: -self._skipped[c])[:max_n]:
            self._take_one(cam, out, taken)

    def take(self, max_n: int, timeout: float, taken: dict[str, int] | None = None) -> list[Frame]:
        """Up to ``max_n`` frames, live cameras' first (up to their tokens), then round-robin across cameras;
        waits up to ``timeout`` s for the first.

        ``taken``: frames per camera in the batch being filled, updated in place; an empty one marks the first
        take of a batch (a new batch's tokens, module docstring), so pass the same dict for the whole fill.
        """
        taken = {} if taken is None else taken
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(self._queues.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._open:
                    return []
                self._not_empty.wait(min(remaining, 0.05))
            out: list[Frame] = []
            if not taken:
                self._next_batch()
                self._take_overdue(max_n, out, taken)
            n_cams = len(self._order)
            start, served = self._next_live, None
            for k in range(n_cams):  # live first, from the camera after the one served last: none always first
                cam = self._order[(start + k) % n_cams]
                if cam in self._tokens:
                    while self._queues[cam] and self._tokens[cam] > 0 and len(out) < max_n:
                        self._take_one(cam, out, taken)
                        served = (start + k) % n_cams
            if served is not None:
                # its own position: started from the round-robin one, which moves only when the batch is not
                # full of live frames, the first live camera took every batch smaller than the live cameras
                # (max_batch 1, three cameras: 19 inspections against 2 and 2, those 3 s old)
                self._next_live = served + 1
            idle = 0
            while len(out) < max_n and idle < n_cams:
                cam = self._order[self._next % n_cams]
                self._next += 1
                if self._queues[cam] and self._tokens.get(cam, 1) > 0:
                    self._take_one(cam, out, taken)
                    idle = 0
                else:
                    idle += 1
            for cam in {f.camera for f in out}:
                if not self._live[cam] and len(self._queues[cam]) <= self._low_water[cam]:
                    self._not_full[cam].notify()  # its blocked producer (one per camera): refill now
            return out

    def _take_one(self, cam: str, out: list[Frame], taken: dict[str, int]) -> None:
        frame = self._queues[cam].popleft()
        # Stamped on leaving the queue, so the "queued" stage is the time spent
        # waiting and "preprocessed" is preprocessing alone.
        frame.stamp("queued")
        out.append(frame)
        taken[cam] = taken.get(cam, 0) + 1
        self._served.add(cam)
        if cam in self._tokens:
            self._tokens[cam] -= 1

    def has_live(self) -> bool:
        """Whether a live camera's producer is open (its frames are the newest only: they age while waiting)."""
        with self._lock:
            return any(self._live[cam] for cam in self._open)

    def drained(self) -> bool:
        """All producers finished and every channel is empty."""
        with self._lock:
            return not self._open and not any(self._queues.values())

    def pending(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())


class Backoff:
    """Exponential back-off with ± jitter: ``min(max_s, initial_s · factor^attempt · (1 ± jitter))``.

    The power is never evaluated past the attempt where it reaches ``max_s``, so the
    delay saturates at ``max_s`` for any attempt count (no OverflowError after hours
    of outage), and jitter never pushes it above ``max_s``.
    """

    def __init__(self, initial_s: float, max_s: float, factor: float, jitter: float,
                 rng: random.Random | None = None) -> None:
        self.initial_s, self.max_s, self.factor, self.jitter = initial_s, max_s, factor, jitter
        self.attempt = 0
        self._rng = rng or random.Random()
        # first attempt whose un-jittered delay reaches max_s; from the logs, as max_s / initial_s is past the float
        # range for the smallest initial_s the config takes (reconnect.initial_s 1e-320: OverflowError at start)
        logs = math.log(max_s) - math.log(initial_s) if initial_s > 0 else 0.0
        self._saturates_at = math.ceil(logs / math.log(factor)) if factor > 1 and logs > 0 else 0

    def base_delay(self, attempt: int) -> float:
        """The un-jittered delay of ``attempt`` (0-based), in seconds, ≤ max_s."""
        if attempt >= self._saturates_at:
            return self.max_s if self.factor > 1 else min(self.initial_s, self.max_s)
        try:
            return min(self.max_s, self.initial_s * self.factor ** attempt)
        except OverflowError:  # factor ** attempt past the float range (a tiny initial_s): far beyond max_s
            return self.max_s

    def next_delay(self) -> float:
        base = self.base_delay(self.attempt)
        self.attempt += 1
        return min(self.max_s, max(0.0, base * (1.0 + self.jitter * self._rng.uniform(-1.0, 1.0))))

    def reset(self) -> None:
        self.attempt = 0


StatusCallback = Callable[[str, str, "str | None", str, dict], None]


class CaptureWorker(Worker):
    """Reads one camera's source into the hub; reconnects live sources; reports state changes."""

    def __init__(self, camera: CameraSection, source: Source, hub: FrameHub, stop: threading.Event,
                 counters: Counters, on_status: StatusCallback, capacity: int = 8,
                 context: WorkerContext | None = None, queued_frames: tuple[int, str] | None = None) -> None:
        super().__init__(f"capture-{camera.name}", stop, context)
        self.camera, self.source, self.hub, self.counters = camera, source, hub, counters
        self.live = is_live(camera, source)
        self.on_status = on_status
        rc = camera.reconnect
        self.backoff = Backoff(rc.initial_s, rc.max_s, rc.factor, rc.jitter)
        self.state: str | None = None
        self.reason = ""  # what its last state change said (redacted): a failed camera's cause, for the summary
        self._state_lock = threading.Lock()
        self.last_frame_ns = time.monotonic_ns()
        self.frames = 0  # decoded frames delivered
        self.unread = 0  # an offline source's parts delivered undecoded, decided 'error' (_tell_unread)
        self.reconnects = 0
        # "open" / "read" while inside the source, which may block for up to open_timeout_s / read_timeout_s
        # (a silent or stalled network camera): the daemon's shutdown does not wait for such a call
        self.source_call: str | None = None
        self._layout: FrameLayout | None = None  # of the last frame delivered (_check_layout)
        self._undecodable_since: float | None = None  # monotonic s of a live camera's first undecodable frame in a row
        self._repeats: tuple[float, int] | None = None  # (monotonic s of the first, count) of repeats in a row
        self._waiting_for: str | None = None  # what the source said while its file was still being written
        # (reason, count) of reopens in a row ended by frames undecodable for that reason (_futile_reopen); quiet:
        # told once that they cannot help, so the reopens' own state changes are logged at DEBUG only
        self._futile: tuple[str, int] = ("", 0)
        self._quiet = False
        self._misconfigured_told = False  # a SourceMisconfigured said (_misconfigured), until the source opens
        self._throttle = Throttled(log)
        # (frames of this camera the daemon's queues hold at most, the settings that say so): checked against
        # the machine's memory at its first frame and each size change (_check_layout); None: not checked
        self.queued_frames = queued_frames
        self._queue_checked_bytes = 0  # the largest frame checked so far: a warning is told once per larger size
        hub.add_camera(camera.name, self.live, capacity)

    # -- state ------------------------------------------------------------------------------
    def set_state(self, state: str, reason: str = "") -> None:
        reason = redact(reason)  # logged and published: an exception's text may hold the camera's address
        with self._state_lock:
            previous = self.state
            if previous == state:
                return
            self.state, self.reason = state, reason
        level = logging.WARNING if state in ("reconnecting", "stalled", "stale", "failed", "changed") else logging.INFO
        if self._quiet and state in ("online", "reconnecting"):
            level = logging.DEBUG  # a futile reopen's flap, said once (_futile_reopen); the status event still goes
        log.log(level, "camera '%s': %s%s", self.camera.name, state, f" ({reason})" if reason else "")
        self.on_status(self.camera.name, state, previous, reason,
                       {"source": self.source.describe(), "live": self.live, "frames": self.frames,
                        "reconnects": self.reconnects})

    def check_watchdog(self, now_ns: int | None = None) -> None:
        """Flag an online source whose next frame is ``watchdog_s`` overdue. A camera paced by ``fps`` owes a
        frame only one period after the last, so a slow pace (fps 0.05: one part every 20 s) is not a stall."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        limit_s = self.camera.watchdog_s + (1.0 / self.camera.fps if self.camera.fps > 0 else 0.0)
        if self.state == "online" and now_ns - self.last_frame_ns > limit_s * 1e9:
            self.counters.add(f"{self.camera.name}.stalls")
            self.set_state("stalled", f"no frame for {limit_s:g} s")

    # -- loop -------------------------------------------------------------------------------
    def loop(self) -> None:
        try:
            while not self.stop_event.is_set():
                if not self._connect():
                    break
                if self._pump():
                    break
        except Exception as exc:  # noqa: BLE001 - one camera's bug must not stop the healthy ones
            log.exception("camera '%s': capture failed", self.camera.name)
            self.set_state("failed", f"unexpected error: {exc!r}")
        finally:
            self.source.close()
            self.hub.close(self.camera.name)

    def _connect(self) -> bool:
        """Open the source, retrying with back-off; False when stopping or out of attempts."""
        self.set_state("connecting" if self.state is None else "reconnecting", self.source.describe())
        while not self.stop_event.is_set():
            try:
                self._in_source("open", self.source.open)
                self.last_frame_ns = time.monotonic_ns()
                self._undecodable_since = None
                self._opened_again()
                self.set_state("online", self.source.describe())
                return True
            except SourceWaiting as exc:
                if not self._wait_written(str(exc)):
                    return False
            except SourceError as exc:
                if exc.permanent:
                    self.set_state("failed", str(exc))
                    return False
                self._misconfigured(exc)
                if not self._wait_retry(str(exc)):
                    return False
        return False

    def _wait_written(self, reason: str) -> bool:
        """A source whose file is still being written (:class:`SourceWaiting`): said once per wait (INFO), opened
        again after :data:`_WRITTEN_POLL_S`, spending no reconnect attempt and no back-off, as a folder camera
        waits for a picture being copied in (a recording written for minutes, retried with back-off, logged a
        'reconnecting' warning per attempt and failed the camera at ``reconnect.max_attempts``). False: stopping."""
        if reason != self._waiting_for:
            self._waiting_for = reason
            log.info("camera '%s': waiting (%s)", self.camera.name, redact(reason))
        return sleep_until(self.stop_event, time.monotonic() + _WRITTEN_POLL_S)

    def _wait_retry(self, reason: str) -> bool:
        limit = self.camera.reconnect.max_attempts
        if limit and self.backoff.attempt >= limit:
            self.set_state("failed", f"{reason}; gave up after {limit} attempts")
            return False
        delay = self.backoff.next_delay()
        if self._quiet:  # reopens that cannot help (_futile_reopen): the slowest retry, attempts counted as ever
            delay = self.camera.reconnect.max_s
        self.set_state("reconnecting", reason)
        log.log(logging.DEBUG if self._quiet else logging.INFO, "camera '%s': retrying in %.2f s (attempt %d)",
                self.camera.name, delay, self.backoff.attempt)
        return sleep_until(self.stop_event, time.monotonic() + delay)

    def _pump(self) -> bool:
        """Read frames until the source ends (True), fails (False: reconnect) or we stop (True)."""
        cam = self.camera
        period = 1.0 / cam.fps if cam.fps > 0 else 0.0
        # a real-time stream: never let its buffers age (a snapshot camera has none: it sleeps like a file)
        skip_to_pace = bool(period) and self.source.live and self.source.buffered
        next_due = time.monotonic()
        while not self.stop_event.is_set():
            try:
                if period and not self._pace(next_due, skip_to_pace):
                    return True if self.stop_event.is_set() else self._ended()
                if period:
                    now = time.monotonic()
                    next_due = max(next_due + period, now - period)
                started = time.monotonic()
                grabbed = self._in_source("read", self.source.read)
                if grabbed is not None and grabbed.image is None:
                    self._skipped(grabbed)
                    self._tell_unread(grabbed)
                    self._repeated(grabbed, started, period)
                    self._undecodable(grabbed, started)
                    continue
            except SourceError as exc:
                return self._source_failed(exc)
            if grabbed is None:
                return self._ended()
            self._deliver(grabbed)
            if cam.max_frames and self.frames >= cam.max_frames:
                self.set_state("ended", f"max_frames {cam.max_frames} reached")
                return True
        return True

    def _in_source(self, call: str, method: Callable[[], object]):
        """``method()`` (a source's open, read or skip) with :attr:`source_call` set to ``call`` meanwhile."""
        self.source_call = call
        try:
            return method()
        finally:
            self.source_call = None

    def _pace(self, next_due: float, skip: bool) -> bool:
        """Wait for the next due frame: grab-and-drop on live sources, sleep otherwise; False = stop/end."""
        if not skip:
            return sleep_until(self.stop_event, next_due)
        while time.monotonic() < next_due:
            if self.stop_event.is_set() or not self._in_source("read", self.source.skip):
                return False
            self.counters.add(f"{self.camera.name}.dropped_pacing")
        return True

    def _ended(self) -> bool:
        if self.frames == 0 and self.source.finite and not self.stop_event.is_set():
            self.set_state("failed", f"{self.source.describe()}: ended without one decodable frame")
        else:
            self.set_state("ended", f"{self.frames} frames{self._skipped_summary()}")
        return True

    def _skipped_summary(self) -> str:
        """'; 4 missing, 1 corrupt' — what this camera skipped, for its 'ended' line: a one-pass folder
        emptied while read ended as 'ended (4 frames)' with the 4 files it never read said nowhere but
        in the summary counters."""
        prefix = f"{self.camera.name}."
        counts = {key[len(prefix):]: n for key, n in self.counters.snapshot().items() if key.startswith(prefix)}
        parts = [f"{n} {reason}" for reason, n in sorted(counts.items())
                 if n and (reason in _SKIP_REASONS or reason.startswith("rejected."))]
        return f"; {', '.join(parts)} skipped" if parts else ""

    def _skipped(self, grabbed) -> None:
        cam = self.camera.name
        if grabbed.reason in ("waiting", "seen_bad"):
            return  # a file already counted (incomplete, bad) found again: counters count files, not polls
        self.counters.add(f"{cam}.{grabbed.reason}")
        if grabbed.reason in ("missing", "incomplete", "growing", "same_file", "before_key_frame", "repeat"):
            return  # a file deleted, still being written or already read, a stream joined, a picture given again
            # (a frozen camera is said once, as 'stale'): not a fault of the data
        if grabbed.reason == "concealed" and not self.source.live:
            return  # a damaged video file's made-up frames: said once by the source (CvSource._damaged)
        self._throttle.warning(f"{grabbed.reason}-{cam}", "camera '%s': skipped a frame (%s): %s",
                               cam, grabbed.reason, grabbed.error)

    def _tell_unread(self, grabbed) -> None:
        """An offline source's part whose picture could not be decoded (:data:`UNREAD_PART_REASONS`: a corrupt or
        truncated file or frame, one refused as too small) goes on as a frame decided
        ``error`` with no pixels (0×0): a ``v1/defect`` event names its file (``source``) and why (``error``), as a
        frame whose preprocessing or inference failed is. It was counted and logged only, so a subscriber acting
        on defect events (a reject gate) never heard of the part, and its next frames took its ``frame_id``.
        A live camera's undecodable frame is a lost frame, not a part: counted only, as before."""
        if self.live or not (grabbed.reason in UNREAD_PART_REASONS or grabbed.reason.startswith("rejected.")):
            return
        cam = self.camera.name
        frame = Frame(camera=cam, frame_id=self.frames + self.unread, image=NO_PIXELS, capture_ns=grabbed.t_ns,
                      capture_utc=grabbed.t_utc, meta=grabbed.meta)
        frame.decision, frame.error = "error", f"not inspected ({grabbed.reason}): {grabbed.error}"
        self.unread += 1
        self.hub.put(frame, self.stop_event)  # already counted by its reason (_skipped)

    def _repeated(self, grabbed, started: float, period: float) -> None:
        """A snapshot camera answered its last picture again (``grabbed.reason == "repeat"``; read from monotonic
        ``started``): once the repeats in a row span ``stale_after_s``, the camera is ``stale`` (one warning
        naming it and its URL; counted ``stale``), until a new picture comes. Unpaced (fps 0), the next GET
        waits :data:`_UNDECODABLE_PAUSE_S`: a 304 comes back at once, hundreds a second."""
        if grabbed.reason != "repeat":
            return
        now = time.monotonic()
        since, count = self._repeats or (now, 0)
        self._repeats = (since, count + 1)
        if now - since >= self.camera.stale_after_s and self.state in ("online", "stalled"):
            self.counters.add(f"{self.camera.name}.stale")
            self.set_state("stale", f"{self.source.describe()} answered the same picture {count + 1} times in a row "
                                    f"over {now - since:.1f} s (stale_after_s {self.camera.stale_after_s:g}); "
                                    f"not inspected again until it changes")
        if not period and now - started < _UNDECODABLE_PAUSE_S:
            sleep_until(self.stop_event, started + _UNDECODABLE_PAUSE_S)

    def _undecodable(self, grabbed, started: float) -> None:
        """A live camera's frame that could not be decoded (read from monotonic ``started``). Raises a transient
        SourceError (a reconnect, with back-off) once none could be decoded for ``read_timeout_s``, as a read that
        gives no frame for that long does; waits :data:`_UNDECODABLE_PAUSE_S` when the read gave it at once.

        A camera whose grab kept succeeding with an empty frame (a V4L2 driver after a USB hiccup, a decoder
        stuck after a lost key frame) stayed 'online' then 'stalled' for ever, read about 11,000 times a second,
        each counted ``corrupt``: it was never reopened, which is what brings such a camera back."""
        if not self.source.live or grabbed.reason in _NOT_STREAM_FAULTS:
            return
        now = time.monotonic()
        if self._undecodable_since is None:
            self._undecodable_since = now
        elif now - self._undecodable_since >= self.camera.read_timeout_s:
            self._undecodable_since = None
            self._futile_reopen(grabbed)
            raise SourceError(f"camera '{self.camera.name}': no decodable frame from {self.source.describe()} for "
                              f"{self.camera.read_timeout_s:g} s (read_timeout_s; last: {grabbed.error}); reopening")
        if now - started < _UNDECODABLE_PAUSE_S:
            sleep_until(self.stop_event, started + _UNDECODABLE_PAUSE_S)

    def _futile_reopen(self, grabbed) -> None:
        """Count a reopen forced by frames undecodable for ``grabbed.reason``; at the :data:`_FUTILE_REOPENS`-th in a
        row for one reason (no frame delivered between), say once that it is the camera's configuration, not a
        transient fault, and from then on retry at ``reconnect.max_s``, quietly (one line, not one per retry).

        A camera whose every frame is refused for what it is (32-bit samples without ``bit_depth``, a pixel format
        the daemon does not decode) was reopened at the back-off for ever, a 'reconnecting' warning and an 'online'
        line each time, as if a reopen might help."""
        reason, count = self._futile
        count = count + 1 if reason == grabbed.reason else 1
        self._futile = (grabbed.reason, count)
        if count != _FUTILE_REOPENS:
            return
        self._quiet = True  # _wait_retry: max_s from here on
        log.warning("camera '%s': configuration error, not a transient fault: %d reopens in a row gave only frames "
                    "refused (%s: %s); fix the camera's settings or this camera's entry in the config (e.g. "
                    "bit_depth); retrying every %g s (reconnect.max_s) without saying so again",
                    self.camera.name, count, grabbed.reason, redact(str(grabbed.error)), self.camera.reconnect.max_s)

    def _misconfigured(self, exc: SourceError) -> None:
        """A camera that answered that this camera's settings are wrong (:class:`SourceMisconfigured`: a login
        refused, a path it has not: RTSP or HTTP 401, 403, 404): said once as a configuration error naming its
        address (password masked), then retried at ``reconnect.max_s``, quietly, as futile reopens are
        (:meth:`_futile_reopen`); told again once it opens. Such a camera was retried at the back-off as if it had
        hiccupped: a failed login each time (cameras lock an account after a few), ``reconnect.max_attempts``
        spent in seconds, and never called a configuration error."""
        if not isinstance(exc, SourceMisconfigured) or self._misconfigured_told:
            return
        self._misconfigured_told = self._quiet = True  # _wait_retry: max_s from here on
        log.warning("camera '%s': configuration error, not a transient fault: %s; fix the camera's entry in the "
                    "config (its URL, user, password or path) or the camera; retrying every %g s (reconnect.max_s) "
                    "without saying so again", self.camera.name, redact(str(exc)).removeprefix(
                        f"camera '{self.camera.name}': "), self.camera.reconnect.max_s)

    def _opened_again(self) -> None:
        """The source opened: a configuration error told (:meth:`_misconfigured`) is over, said once."""
        if self._misconfigured_told:
            log.info("camera '%s': opens again (%s)", self.camera.name, self.source.describe())
            self._misconfigured_told = self._quiet = False

    def _source_failed(self, exc: SourceError) -> bool:
        """Count and react to a read error: True to end the camera, False after reconnect back-off."""
        cam = self.camera.name
        self.source.close()
        if exc.permanent:
            self.counters.add(f"{cam}.source_errors")
            self.set_state("failed", str(exc))
            return True
        if isinstance(exc, SourceChanged):
            self.counters.add(f"{cam}.source_changed")
            self.set_state("changed", str(exc))
            self.backoff.reset()
        else:
            self.counters.add(f"{cam}.source_errors")
            self._misconfigured(exc)
        self.reconnects += 1
        self.counters.add(f"{cam}.reconnects")
        return not self._wait_retry(str(exc))

    def _check_layout(self, grabbed) -> None:
        """Frames that come out of the source's decoder otherwise than before still get inspected (every frame
        is made uint8 (H, W, 3) and resized to the model's input), but the model now sees parts at another scale,
        or grey replicated where it learnt colour, or another depth's levels, than it was trained and calibrated
        on: a camera reconfigured (binning, ROI, pixel format, bit depth), an RTSP profile changed, a looping file
        replaced. Said once per change (state 'changed', then 'online' with the next frame; counters
        ``size_changes``, ``format_changes``) rather than decided silently. Compared: the decoded samples'
        :class:`FrameLayout` (the source's where it knows more than the uint8 image tells, e.g. a folder of
        pictures switching to grey, or a video whose decoder rescales: :mod:`inspector.pipeline.sources`).

        Size is compared for ``one_size`` sources only: a folder of pictures may hold several sizes."""
        layout = grabbed.layout or FrameLayout.of(grabbed.image)
        before, self._layout = self._layout, layout
        if grabbed.image.nbytes > self._queue_checked_bytes:
            self._check_queue_memory(grabbed.image.nbytes)
        if before is None or layout == before:
            return
        cam, said = self.camera.name, []
        if self.source.one_size and (layout.height, layout.width) != (before.height, before.width):
            self.counters.add(f"{cam}.size_changes")
            said.append(f"frame size {before.width}x{before.height} → {layout.width}x{layout.height}: parts appear "
                        f"at another scale than the model was calibrated on")
        if layout[2:] != before[2:]:  # channels, dtype, declared bits, pixel format
            self.counters.add(f"{cam}.format_changes")
            said.append(f"frames changed from {before.describe()} to {layout.describe()}: still inspected (made "
                        f"8-bit RGB and resized like every frame), but the model was calibrated on the former")
        shown = grabbed.image.shape[:2]
        if said and shown != (layout.height, layout.width):
            said.append(f"the decoder rescales them to {shown[1]}x{shown[0]}")
        if said:
            self.set_state("changed", f"{self.source.describe()}: " + "; ".join(said))

    def _check_queue_memory(self, frame_bytes: int) -> None:
        """A log warning, once per larger frame size, when this camera's frames, at ``frame_bytes`` each, fill
        the daemon's queues past the machine's memory (:mod:`inspector.pipeline.queue_memory`)."""
        from inspector.pipeline.queue_memory import queue_memory_warning

        self._queue_checked_bytes = frame_bytes
        if self.queued_frames is not None:
            frames, settings = self.queued_frames
            said = queue_memory_warning(self.camera.name, frame_bytes, frames, settings)
            if said:
                log.warning("%s", said)

    def _deliver(self, grabbed) -> None:
        cam = self.camera.name
        frame = Frame(camera=cam, frame_id=self.frames + self.unread, image=grabbed.image, capture_ns=grabbed.t_ns,
                      capture_utc=grabbed.t_utc, meta=grabbed.meta)
        self.frames += 1
        self.last_frame_ns = grabbed.t_ns
        self._undecodable_since = self._repeats = None
        if self._quiet:
            log.info("camera '%s': frames decodable again", cam)
        self._futile, self._quiet = ("", 0), False
        self._check_layout(grabbed)
        if grabbed.meta.get("buffers_skipped"):  # a live camera's older queued frames, passed over for this one
            # while paced by fps the camera sends frames only to be passed over: those are the pace's drops
            reason = "dropped_pacing" if self.camera.fps > 0 else "dropped_live"
            self.counters.add(f"{cam}.{reason}", grabbed.meta["buffers_skipped"])
        if self.state in ("stalled", "stale", "reconnecting", "changed"):
            self.set_state("online", "frames flowing again")
        self.backoff.reset()
        if self.hub.put(frame, self.stop_event):
            self.counters.add(f"{cam}.captured")
