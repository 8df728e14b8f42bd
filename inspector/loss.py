"""What a subscriber missed, from the ``run_id`` and per-stream ``seq`` of the events it received.

Shared by the ZeroMQ :class:`inspector.client.Subscriber` and the MQTT
:class:`inspector.integrations.mqtt.MqttSubscriber` (the counts are described in
:mod:`inspector.client`). Depends on the event types only.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Iterable

from inspector.config import read_text
from inspector.errors import ConfigError, InspectorError
from inspector.events import Event, topic_matches, wire_json
from inspector.outputs import whole_temporaries, whole_temporary, write_whole
from inspector.textline import one_line, wire_text

UNCOUNTED_TYPES = ("stats",)  # heartbeats: a missed one carries nothing that the next one lacks
# A camera's state: the daemon re-sends its current status to every subscriber that joins (and an MQTT broker keeps
# it retained), so the status changes before the first one a subscriber hears are superseded, not missed. A late
# joiner of v1/defect and v1/status was told 'missed 1 status event(s)' beside its defects, for every camera.
SUPERSEDED_TYPES = ("status",)


# How many recent events per stream a LossTracker remembers (seq → fingerprint) to tell a re-sent event from a
# different event under a seq already seen; and how many holes (runs of missing seqs) it keeps to recognise a
# late arrival. Beyond them the oldest are forgotten: a seq that old coming back is taken as a reset.
RECENT_PER_STREAM = 1024
HOLES_PER_STREAM = 1024
# Why the daemon itself did not send events (its stats' data.daemon_dropped, inspector.pipeline.publish)
DAEMON_DROP_REASONS = {
    "unsent": "numbered but not sent (ZeroMQ refused it, or publishing failed): part of the gaps counted",
    "queue_full": "its publisher queue was full (publish.queue_size): never numbered, so no gap shows them",
    "errors": "publishing failed before they were numbered: no gap shows them",
}
# A state file (:class:`StateFile`) keeps the streams of the last STATE_RUNS runs heard, at most STATE_STREAMS
# of them: enough for every camera of a box and a few restarts, small enough to rewrite after each event.
STATE_VERSION = 1
STATE_KEYS = frozenset({"key", "saved_utc", "tracker"})  # what StateFile.save writes
STATE_RUNS = 4
STATE_STREAMS = 1024
# What a LossTracker remembers at most: the last TRACK_RUNS runs heard and the TRACK_STREAMS streams heard most
# recently (the daemon's drop counts told: as many). Wire data is untrusted: a publisher that sent a new run id or
# camera name with every event grew the tracker without bound (about 1 kB per event) and made each event slower
# than the one before (100 000 such events took 7 minutes), so a subscriber ended out of memory or fell behind
# for good. Far beyond any real box (cameras × event types × restarts heard in one session); what is forgotten
# counts anew if it comes back (a 'restart', 'missed before joining').
TRACK_RUNS = 64
TRACK_STREAMS = 4 * STATE_STREAMS
# How many events a stream can have published unheard: PLAUSIBLE_EVENTS (the bound every count from the wire
# is taken under: stats' published counts, the daemon's drops), plus MAX_EVENTS_PER_S (10 kHz per camera and
# event type, beyond any camera's frame rate) for each second since the stream was last heard (since its run
# started, for a first seq). A seq beyond it is no loss but a broken or rogue publisher: a jump by 2**52 was
# counted and printed as 4 503 599 627 370 495 events lost. It is told, and the stream counted anew from it.
PLAUSIBLE_EVENTS = 10**9
MAX_EVENTS_PER_S = 10_000
# where the events of a stream a resumed state knew nothing of went (LossTracker._unsettled); {} its saved time
_WHILE_DOWN = ("while this subscriber was not running (the state of {} knew none of them: they came after the "
               "last stats it heard)")


def _utc_seconds(text: object) -> float | None:
    """Unix seconds of an ISO 8601 UTC time from the wire (``run_started_utc``, a state's ``saved_utc``), or None
    when it is none (or in the future: no time has passed since)."""
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(str(text)[:40])
        when = (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return when if when <= time.time() else None


def _plausible(count: int, since: float | None) -> bool:
    """Whether a stream can have published ``count`` events unheard since ``since`` (unix s; None: unknown)."""
    elapsed = 0.0 if since is None else time.time() - since
    return count <= PLAUSIBLE_EVENTS + MAX_EVENTS_PER_S * max(0.0, elapsed)


def _run(text: object) -> str:
    """A run id (or start time) from the wire for a notice: cut short (:func:`~inspector.textline.wire_text`), '?'
    when empty."""
    return wire_text(text or "?")


def _fingerprint(event: Event) -> tuple:
    """What tells two events of one stream apart beyond ``seq``: a re-send (the daemon re-sends each camera's
    current status to every new subscriber, MQTT QoS 1 re-delivers) has the same one, a new event another."""
    if event.type == "status":
        return (event.state, event.previous, event.time_utc)
    return (getattr(event, "event_id", ""), getattr(event, "frame_id", 0), str(getattr(event, "capture", "")))


class _Stream:
    """The sequence state of one (run, type, camera): ``next`` = highest seq heard + 1; ``holes`` = [lo, hi, why]
    runs of seqs not (yet) heard, why = 'start' (before the first one heard) or 'gap'; ``recent``: seq →
    fingerprint of the last RECENT_PER_STREAM events heard."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: the stream is counted anew (a reset of its seq within one run)."""
        self.next = 0
        self.holes: list[list] = []
        self.recent: dict[int, tuple] = {}
        self.resumed = False  # from a state file: no event heard since, so a jump is 'missed while down'
        self.heard_at: float | None = None  # unix s of its last event heard (or of the state resumed)
        self.epoch = 0  # LossTracker.mark()s before this stream's last event
        self.joined = True  # False: known from stats only, its first event not heard yet (its join point to come)
        # counted missed before joining from stats (their re-sent one is stale), the line not said yet: it is
        # said once, with the rest, at the stream's first event or the run's next stats (LossTracker._say_untold)
        self.untold = 0

    def miss(self, lo: int, hi: int, why: str) -> None:
        if hi > lo:
            self.holes.append([lo, hi, why])
            del self.holes[:-HOLES_PER_STREAM]

    def fill(self, seq: int) -> str | None:
        """Take ``seq`` out of its hole; returns the hole's why ('start', 'gap', 'down'), or None when ``seq``
        was in none."""
        for i, (lo, hi, why) in enumerate(self.holes):
            if lo <= seq < hi:
                self.holes[i:i + 1] = [h for h in ([lo, seq, why], [seq + 1, hi, why]) if h[1] > h[0]]
                return why
        return None

    def heard(self, seq: int, fingerprint: tuple) -> None:
        self.recent[seq] = fingerprint
        self.heard_at = time.time()
        if len(self.recent) > RECENT_PER_STREAM:
            del self.recent[next(iter(self.recent))]
        self.next = max(self.next, seq + 1)


class LossTracker:
    """Counts what a subscriber missed, from the run id and per-stream ``seq`` of each received event.

    Every anomaly of a stream's sequence is counted and told (:meth:`notices`, :meth:`summary`): a jump forward
    (``gaps``, or ``missed_at_start`` for a stream's first event), an event that arrives after a later one
    (``late``: taken back out of the loss counts), the same event again (``duplicates``: a re-sent status, a QoS 1
    re-delivery), and a different event under a seq already used (``resets``: a daemon restarted without a new
    ``run_id``, e.g. one that sends none, or two publishers sharing one; the stream is counted anew from there).

    A subscriber that stops and starts again carries its accounting over in a state file (:meth:`state`,
    :meth:`resume`, :class:`StateFile`): each stream's next seq, so what was published while it was not running
    is counted (``missed_while_down``) and a daemon restart meanwhile is told (a new run id).

    ``topics``: the subscribed topic prefixes. With them, a ``v1/stats`` event also tells of streams this
    subscriber should get but never heard from (e.g. a camera that published all its defects before a late
    join): their published count is missed. None: only streams heard from are accounted.
    """

    def __init__(self, topics: Iterable[str] | None = None) -> None:
        self._topics = None if topics is None else tuple(topics)
        self.missed_at_start = 0
        self.gaps = 0
        self.restarts = 0
        self.duplicates = 0  # the same event again (re-sent status, QoS 1 re-delivery): not a loss
        self.late = 0  # out of order: arrived after a later seq (no longer counted lost)
        self.resets = 0  # a stream's seq went back to a different event within one run id
        self.daemon_dropped = 0  # events the daemon's stats say it dropped itself (not sent, or never numbered)
        self._daemon_told: dict[tuple[str, str, str], int] = {}  # (run, stream, why) → the count already told
        self.missed_while_down = 0  # published while this subscriber was not running (after a resume)
        self.resumed_from: str | None = None  # when the state resumed was saved (UTC), None: not resumed
        self._resumed_run: str | None = None  # the last run heard before the resume, until another is heard
        self.runs: dict[str, str] = {}  # run id → started_utc, in the order heard
        # run id → the topics that covered it since it was first heard (by this subscriber, or by the one whose
        # state was resumed: another --topic set); a stream of them that stats first tell of was lost in gaps,
        # one outside them was joined now. Absent: this tracker's topics.
        self._run_topics: dict[str, tuple | None] = {}
        # the runs of a resumed state: a stream of them never heard was published while the subscriber whose
        # state it is listened (a gap). In any other run a stream's join point is its first event heard: what
        # it published before (what stats tell of, however stale the one the daemon re-sends to a joiner) was
        # before joining, never a gap
        self._counted: set[str] = set()
        # the runs of a resumed state of which this subscriber has heard no stats yet: a stream of them the state
        # knew nothing of (no event, no stats count) first published after the state's last stats, so while no
        # subscriber ran (or in the earlier one's last seconds): missed while down, not lost in gaps
        self._unsettled: set[str] = set()
        self._streams: dict[tuple[str, str, str], _Stream] = {}
        self._notices: list[str] = []
        self._marks: list[str] = [""]  # what happened to the connection (mark()); a stream's epoch indexes it
        self.hint = ""  # set by the subscriber before observe(): why a gap found in that event may have happened
        self._closed: set[str] = set()  # runs whose final stats were heard: their books are closed
        self._last_stats: dict[str, tuple] = {}  # run → its last v1/stats heard (_new_stats)
        self._dropped_in: str | None = None  # the run heard last when the connection dropped (connection_dropped)
        self._back = False  # connected again since: an event of that run now means it went on

    def mark(self, what: str) -> None:
        """Something that loses events happened to this subscriber's connection (``what``: 'a reconnect at …'):
        the next gap of each stream heard before it is told as spanning it."""
        self._marks = self._marks[-63:] + [what]

    def connection_dropped(self) -> None:
        """The connection to the daemon dropped (its monitor said so): the run heard last, unless its final stats
        were heard, may have published more than arrived. Settled by what comes next: more of that run (it goes
        on after a reconnect: its gaps are counted as ever), another run (told with the restart), or nothing
        (told by :meth:`tell_unknown_end` when the subscriber closes)."""
        if self.runs:
            self._dropped_in, self._back = list(self.runs)[-1], False

    def connection_back(self) -> None:
        """Connected again after :meth:`connection_dropped`: events of the run heard last from now on are its
        going on (those read before were queued before the drop)."""
        self._back = self._dropped_in is not None

    def _unheard_end(self) -> str:
        """The tail of a line for the run heard last before a dropped connection whose final stats never came."""
        run, self._dropped_in = self._dropped_in, None
        if run is None or run in self._closed or run not in self.runs:
            return ""
        last = [f"{wire_text(kind)}/{wire_text(camera)} seq {stream.next - 1}"
                for (r, kind, camera), stream in self._streams.items()
                if r == run and stream.next > 0][-4:]
        return (f"the connection dropped before run {_run(run)} sent its final stats: events it published after "
                f"the last heard ({', '.join(last) or 'none'}) may be lost, how many is unknown")

    def tell_unknown_end(self) -> None:
        """At close: one line when the connection dropped after the last events heard of a run that never sent its
        final stats. A daemon that ended while this subscriber read slower than it published dropped what its
        queue to it still held, the final stats too, as it closed: the subscriber had heard seq 0..54 of 600 and
        summed up '0 event(s) missed'. How many came after is unknown: not counted, but said."""
        if line := self._unheard_end():
            self.note(line)

    def _gap_cause(self, stream: _Stream) -> str:
        """The tail of a gap notice: a mark since the stream's last event, else the subscriber's hint."""
        if stream.epoch < len(self._marks) - 1:
            return f" across {self._marks[-1]}"
        return self.hint

    @property
    def lost(self) -> int:
        return self.missed_at_start + self.gaps + self.missed_while_down

    def observe(self, event: Event) -> bool:
        """Account ``event``. Returns False when it is one already heard, counted in ``duplicates`` and not to be
        handed on again: the daemon re-sends each camera's last status and its last ``v1/stats`` whenever a
        subscriber joins, and ZeroMQ's XPUB sends them to every subscriber of their topics (an earlier subscriber
        printed each twice); an MQTT QoS 1 re-delivery is one too."""
        run = event.run_id
        new_run = run not in self.runs
        if self._dropped_in == run and self._back:
            self._dropped_in = None  # the run goes on after the dropped connection: its gaps tell what was lost
        if new_run:
            if self.runs:
                self.restarts += 1
                unheard = self._unheard_end()
                self._notices.append(f"daemon restarted: new run {_run(run)} (started "
                                     f"{_run(event.run_started_utc)}) after run {_run(list(self.runs)[-1])}"
                                     + self._restart_while_down() + (f"; {unheard}" if unheard else ""))
            self._add_run(run, event.run_started_utc)
            self._run_topics[run] = self._topics
        else:
            self.runs[run] = self.runs.pop(run)  # heard last: the runs are kept least recently heard first
        self._resumed_run = None
        if event.type == "stats" and not self._observe_stats(run, event):
            return False
        if event.type in UNCOUNTED_TYPES:
            return True
        camera = getattr(event, "camera", "")
        key = (run, event.type, camera)
        stream = self._heard_last(key)
        what = f"{event.type} event(s) of camera '{wire_text(camera)}'"
        if stream is None:
            stream = self._new_stream(key)
            covered = self._run_topics.get(run, self._topics)  # a stream the resumed state's topics left out joins now
            down = run in self._unsettled and (covered is None or _covers(covered, f"v1/{event.type}/{camera}"))
            when = _WHILE_DOWN.format(self.resumed_from) if down else f"before this subscriber heard run {_run(run)}"
            self._start(stream, event.seq, what, when, event.run_started_utc,
                        superseded=event.type in SUPERSEDED_TYPES, down=down)
        elif event.seq > stream.next and not _plausible(event.seq - stream.next, stream.heard_at):
            if stream.untold:  # what stats told of it is said first: the reset forgets it
                self._say_one(run, event.type, camera, stream)
            self._jumped(stream, event.seq, what, run)
        elif stream.untold and not stream.joined:
            self._join_told(stream, event, what, run)
        elif not stream.joined and event.seq > stream.next:
            self._start(stream, event.seq, what, f"before this subscriber heard its first one in run {_run(run)}",
                        event.run_started_utc, since=stream.next)
        elif stream.resumed and event.seq > stream.next:
            self._missed_while_down(stream, event.seq, what, run)
        elif event.seq > stream.next:
            self.gaps += event.seq - stream.next
            stream.miss(stream.next, event.seq, "gap")
            self._notices.append(f"lost {event.seq - stream.next} {what} (seq {stream.next}..{event.seq - 1}) "
                                 f"in run {_run(run)}{self._gap_cause(stream)}")
        elif event.seq < stream.next and not self._behind(stream, event, what, run):
            return False
        stream.heard(event.seq, _fingerprint(event))
        stream.joined = True
        stream.epoch = len(self._marks) - 1
        return True

    def _observe_stats(self, run: str, event: Event) -> bool:
        """Account the ``v1/stats`` ``event`` of ``run``: its published counts and drops; False for a duplicate."""
        if not self._new_stats(run, event):
            return False
        self._say_untold(run, event.data.get("sequences"))  # a newer count than the stats that found them
        self._unheard_streams(run, event.data.get("sequences"), before_joining=run not in self._counted,
                              down=run in self._unsettled)
        self._unsettled.discard(run)
        if isinstance(event.data.get("sequences"), dict):  # every stream published so far is known now
            self._run_topics[run] = self._topics
        self._daemon_drops(run, event.data.get("daemon_dropped"))
        if event.final:
            self._close_run(run, event.data.get("sequences"))
            self._closed.add(run)
        return True

    def _new_stats(self, run: str, event: Event) -> bool:
        """False for the ``v1/stats`` of ``run`` heard last, heard again (the one the daemon re-sends to a joiner):
        a duplicate. Stats are not counted as a stream (a missed one tells nothing the next one lacks), so only the
        last of each run is remembered."""
        fingerprint = (event.seq, event.time_utc, event.uptime_s, event.final)
        if self._last_stats.get(run) == fingerprint:
            self.duplicates += 1
            return False
        self._last_stats[run] = fingerprint
        return True

    def _add_run(self, run: str, started_utc: str) -> None:
        """Remember ``run``; the run heard least recently beyond TRACK_RUNS is forgotten, with its streams and
        the drops told of it."""
        self.runs[run] = started_utc
        while len(self.runs) > TRACK_RUNS:
            old = next(iter(self.runs))
            del self.runs[old]
            self._run_topics.pop(old, None)
            self._counted.discard(old)
            self._unsettled.discard(old)
            self._closed.discard(old)
            self._last_stats.pop(old, None)
            for key in [k for k in self._streams if k[0] == old]:
                del self._streams[key]
            for key in [k for k in self._daemon_told if k[0] == old]:
                del self._daemon_told[key]

    def _heard_last(self, key: tuple[str, str, str]) -> _Stream | None:
        """The stream ``key`` (None: not remembered), moved to the end: the streams are kept least recently heard
        first, so the one forgotten beyond TRACK_STREAMS is the stalest, never a camera that keeps publishing."""
        stream = self._streams.pop(key, None)
        if stream is not None:
            self._streams[key] = stream
        return stream

    def _new_stream(self, key: tuple[str, str, str]) -> _Stream:
        stream = self._streams[key] = _Stream()
        while len(self._streams) > TRACK_STREAMS:
            del self._streams[next(iter(self._streams))]
        return stream

    def _restart_while_down(self) -> str:
        """The tail of a restart notice when the run before it was last heard before this subscriber's restart."""
        if self._resumed_run is None or self._resumed_run not in self.runs:
            return ""
        return (f", while this subscriber was not running (state of {self.resumed_from}): what run "
                f"{_run(self._resumed_run)} published after the last events heard is unknown (its final stats "
                f"were not heard)")

    def _missed_while_down(self, stream: _Stream, seq: int, what: str, run: str) -> None:
        """The first event of a resumed stream is past the seq it was at when the state was saved."""
        n = seq - stream.next
        self.missed_while_down += n
        stream.miss(stream.next, seq, "down")
        self._notices.append(f"missed {n} {what} (seq {stream.next}..{seq - 1}) in run {_run(run)} while this "
                             f"subscriber was not running (state of {self.resumed_from})")

    def _jumped(self, stream: _Stream, seq: int, what: str, run: str) -> None:
        """A jump forward beyond what the stream can have published since it was last heard (:func:`_plausible`):
        not counted as lost; the stream is counted anew from ``seq``."""
        self.resets += 1
        self._notices.append(f"{what}: seq jumped from {stream.next - 1} to {seq} in run {_run(run)}, more than a "
                             f"daemon publishes in the time since (at most {MAX_EVENTS_PER_S}/s): not counted as "
                             f"missed (a broken or rogue publisher); counting this stream anew")
        stream.reset()
        stream.next = seq

    def _start(self, stream: _Stream, seq: int, what: str, when: str, started: object = None,
               since: int = 0, superseded: bool = False, down: bool = False) -> None:
        """A stream's first event heard (or first after a reset): seqs ``since``.. below it were published unheard
        (``since`` > 0: the count stats told of it before), as many as the stream can have published since its
        run ``started`` (UTC text from the wire; see :func:`_plausible`); none of them missed when ``superseded``
        (:data:`SUPERSEDED_TYPES`). ``down``: they were published while this subscriber was not running
        (``missed_while_down``), else before it joined (``missed_at_start``)."""
        if seq > since and not _plausible(seq, _utc_seconds(started)):
            self._notices.append(f"{what}: first seq {seq} is more than a daemon publishes since its run started "
                                 f"({wire_text(started or '?', 40)}; at most {MAX_EVENTS_PER_S}/s): not counted as missed "
                                 f"(a broken or rogue publisher)")
        elif seq > since and not superseded:
            if down:
                self.missed_while_down += seq - since
            else:
                self.missed_at_start += seq - since
            stream.miss(since, seq, "down" if down else "start")
            self._notices.append(f"missed {seq - since} {what} published {when} (first seq {seq})")
        stream.next = seq

    def _join_told(self, stream: _Stream, event: Event, what: str, run: str) -> None:
        """The first event heard of a stream that only stats told of: one line for all it missed before it, the
        stats' count (``untold``) with those published since (its seq past it) or less the one heard (within it),
        or none for a status (:data:`SUPERSEDED_TYPES`). A late joiner whose first words of a run were the stats
        the daemon re-sends (its last heartbeat, older than the join) said 'missed 29 defect event(s) of camera
        'cam' … (stats: 29 published, none received)' and, at the camera's first defect, 'missed 1 defect
        event(s) of camera 'cam' … (first seq 30)': two lines, the first one's count stale."""
        seq, missed = event.seq, stream.untold
        if seq >= stream.next:  # plausible: observe() took a jump past that as one
            self.missed_at_start += seq - stream.next
            stream.miss(stream.next, seq, "start")
            missed += seq - stream.next
        elif seq < stream.next and stream.fill(seq) == "start":
            self.missed_at_start -= 1
            missed -= 1
        stream.untold = 0
        if event.type in SUPERSEDED_TYPES:
            self.missed_at_start -= missed
            stream.holes = [h for h in stream.holes if h[2] != "start"]
        elif missed:
            self._notices.append(f"missed {missed} {what} published before this subscriber heard run {_run(run)} "
                                 f"(first seq {seq})")

    def _say_untold(self, run: str | None = None, sequences: object = None) -> None:
        """Say the counts of the streams (of ``run``; None: every run) that stats told of, none heard yet, each in
        one line; with the published counts of newer stats (``sequences``), those published since are added."""
        for (r, kind, camera), stream in self._streams.items():
            if not stream.untold or run not in (None, r):
                continue
            published = sequences.get(f"{kind}/{camera}") if isinstance(sequences, dict) else None
            if type(published) is int and stream.next < published <= stream.next + PLAUSIBLE_EVENTS:
                self.missed_at_start += published - stream.next
                stream.miss(stream.next, published, "start")
                stream.untold += published - stream.next
                stream.next = published
            self._say_one(r, kind, camera, stream)

    def _say_one(self, run: str, kind: str, camera: str, stream: _Stream) -> None:
        """The line of ``stream``'s untold count (see :meth:`_say_untold`)."""
        self._notices.append(f"missed {stream.untold} {wire_text(kind)} event(s) of camera '{wire_text(camera)}' "
                             f"published before this subscriber heard run {_run(run)} (stats: {stream.next} "
                             f"published, none received)")
        stream.untold = 0

    def say_untold(self) -> None:
        """At close: say what stats told this subscriber it missed of streams it never heard, not said yet."""
        self._say_untold()

    def _behind(self, stream: _Stream, event: Event, what: str, run: str) -> bool:
        """An event whose seq is below the stream's next: late, a duplicate (False: not heard again) or a reset."""
        seq = event.seq
        why = stream.fill(seq)
        if why is not None:
            self.late += 1
            if why == "start":
                self.missed_at_start -= 1
            elif why == "down":
                self.missed_while_down -= 1
            else:
                self.gaps -= 1
            self._notices.append(f"{what} seq {seq} arrived late (after seq {stream.next - 1}) in run {_run(run)}: "
                                 f"out of order, no longer counted missed")
            return True
        if stream.recent.get(seq) == _fingerprint(event):
            self.duplicates += 1
            # the daemon re-sends each camera's current status whenever a subscriber joins: expected, not told
            if not (event.type == "status" and seq == stream.next - 1):
                self._notices.append(f"{what} seq {seq} received again (a duplicate) in run {_run(run)}")
            return False
        self.resets += 1
        self._notices.append(f"{what}: seq went back from {stream.next - 1} to {seq} within run {_run(run)} "
                             f"(a daemon restart without a new run id, or two publishers sharing one); "
                             f"counting this stream anew")
        stream.reset()
        self._start(stream, seq, what, "before the reset")
        return True

    def _unheard_streams(self, run: str, sequences: object, before_joining: bool, down: bool = False) -> None:
        """Streams of ``run`` that stats count as published, that this subscriber subscribes to, but never heard
        from: all their events so far were missed. Sound because a daemon sends events and stats in order on one
        socket; the count becomes the stream's next seq, so its next event is no gap. ``before_joining``: no stats
        of ``run`` told its counts before (the join point of a stream is its first event heard or the first stats
        heard, never another stream's first event: a run first heard by its re-sent status or a result counted
        every defect published before the join as lost in gaps). ``down``: the first stats heard of a run of a
        resumed state, whose streams unknown to it published after it was saved (``_unsettled``)."""
        if self._topics is None or not isinstance(sequences, dict):
            return
        for stream, published in list(sequences.items())[:STATE_STREAMS]:
            kind, _, camera = str(stream).partition("/")
            key = (run, kind, camera)
            if (key in self._streams or kind in UNCOUNTED_TYPES or type(published) is not int
                    or not 0 < published <= PLAUSIBLE_EVENTS or not self._subscribed(str(stream))):
                continue
            state = self._new_stream(key)
            state.next, state.joined = published, False
            covered = self._run_topics.get(run, self._topics)
            if before_joining:  # said with its first event or the next stats (_join_told, _say_untold): one line
                self.missed_at_start += published
                state.miss(0, published, "start")
                state.untold = published
                continue
            if not (covered is None or _covers(covered, f"v1/{stream}")):
                # a stream the topics of a resumed state did not cover
                self.missed_at_start += published
                state.miss(0, published, "start")
                what = f"published in run {_run(run)} before this subscriber subscribed to them"
            elif down:
                self.missed_while_down += published
                state.miss(0, published, "down")
                what = f"in run {_run(run)} {_WHILE_DOWN.format(self.resumed_from)}"
            else:
                self.gaps += published
                state.miss(0, published, "gap")
                what = f"in run {_run(run)}"
            self._notices.append(f"missed {published} {wire_text(kind)} event(s) of camera '{wire_text(camera)}' "
                                 f"{what} "
                                 f"(stats: {published} published, none received)")

    def _subscribed(self, stream: str) -> bool:
        # cut at levels: a subscriber of v1/defect/cam1 is not told of cam10's events as missed
        return self._topics is None or _covers(self._topics, f"v1/{stream}")

    def _daemon_drops(self, run: str, dropped: object) -> None:
        """What the daemon says it dropped itself (stats ``data.daemon_dropped``: stream → reason → count so far
        in ``run``), for the streams subscribed to: each increase told, with its reason, and counted, so a
        consumer tells 'the daemon dropped under load' from 'lost on the way to me'."""
        if not isinstance(dropped, dict):
            return
        for stream, reasons in list(dropped.items())[:STATE_STREAMS]:
            kind, _, camera = str(stream).partition("/")
            if not isinstance(reasons, dict) or kind in UNCOUNTED_TYPES or not self._subscribed(str(stream)):
                continue
            for why, n in reasons.items():
                key = (run, str(stream), str(why))
                before = self._daemon_told.get(key, 0)
                if type(n) is not int or not before < n <= before + PLAUSIBLE_EVENTS:
                    continue
                self._daemon_told[key] = n
                if len(self._daemon_told) > TRACK_STREAMS:
                    del self._daemon_told[next(iter(self._daemon_told))]
                self.daemon_dropped += n - before
                reason = DAEMON_DROP_REASONS.get(str(why), f"'{wire_text(why, 32)}'")
                self._notices.append(f"the daemon itself dropped {n - before} {wire_text(kind)} event(s) of camera "
                                     f"'{wire_text(camera)}' in run {_run(run)}: {reason} ({n} in this run so far)")

    def _close_run(self, run: str, sequences: object) -> None:
        """The final stats of ``run`` give each stream's published count: count what never arrived at the end. A
        stream resumed from a state file and not heard since: missed while the subscriber was not running, as its
        next event would have counted them (they were counted lost in gaps, 'lost the last 4 defect event(s)', when
        the run ended before that event came)."""
        if not isinstance(sequences, dict):
            return
        for (r, kind, camera), stream in self._streams.items():
            published = sequences.get(f"{kind}/{camera}")
            if r == run and type(published) is int and stream.next < published <= stream.next + PLAUSIBLE_EVENTS:
                if stream.resumed:  # nothing heard since the resume: as its first event would have told it
                    self._missed_while_down(stream, published, f"{wire_text(kind)} event(s) of camera "
                                                                f"'{wire_text(camera)}'", run)
                    stream.next = published
                    continue
                if not stream.joined:  # none of it heard: all before its join point, which never came
                    self.missed_at_start += published - stream.next
                    stream.miss(stream.next, published, "start")
                    lost = "missed"
                else:
                    self.gaps += published - stream.next
                    stream.miss(stream.next, published, "gap")
                    lost = "lost the last"
                self._notices.append(f"{lost} {published - stream.next} {wire_text(kind)} event(s) of camera "
                                     f"'{wire_text(camera)}' in run {_run(run)} (final stats: {published} published)")
                stream.next = published

    def state(self) -> dict:
        """What :meth:`resume` needs to go on after this subscriber restarts: the runs heard and, per stream of
        the last STATE_RUNS of them, its next seq and its last event's fingerprint (so the status the daemon
        re-sends to a new subscriber is known as the one heard). JSON-ready."""
        # only what resume() takes back: wire text it refuses (a rogue publisher's run id of 10,000 characters)
        # made the whole file 'damaged' at the next start, and every run's accounting was lost with it
        runs = [(run, started) for run, started in self.runs.items() if _is_text(run) and _is_text(started)]
        runs = runs[-STATE_RUNS:]
        kept = {run for run, _ in runs}
        streams = []
        for (run, kind, camera), stream in self._streams.items():
            if run in kept:
                last = next(reversed(stream.recent.items()), None)
                entry = [run, kind, camera, stream.next, None if last is None else [last[0], list(last[1])]]
                if not _stream_ok(entry):
                    entry[4] = None  # a fingerprint it would refuse: the event is simply not known again
                if _stream_ok(entry):
                    streams.append(entry)
        # the daemon drops already told: the stats a restarted subscriber hears first repeat the run's totals
        told = [[run, stream, why, n] for (run, stream, why), n in self._daemon_told.items()
                if run in kept and _is_text(stream) and _is_text(why)]
        # the topics that covered each run: a subscriber resumed with other topics tells a stream it subscribes
        # to anew from one lost while this one listened
        covered = {run: list(self._run_topics.get(run, self._topics)) for run in kept
                   if self._run_topics.get(run, self._topics) is not None}
        return {"version": STATE_VERSION, "runs": [list(r) for r in runs], "streams": streams[-STATE_STREAMS:],
                "daemon_told": told[-STATE_STREAMS:], "run_topics": covered}

    def resume(self, state: object, saved_utc: str = "?") -> None:
        """Go on from :meth:`state` of an earlier subscriber. Raises ValueError (one line) when ``state`` is not
        one: nothing is taken from it then."""
        runs, streams = _checked_state(state)
        told = _checked_told(state, {r[0] for r in runs})
        covered = _checked_run_topics(state, {r[0] for r in runs})
        self.resumed_from = saved_utc
        for run, started in runs:
            self.runs[run] = started
            self._counted.add(run)  # heard by the subscriber whose state it is: one of its streams unheard is a gap
            self._unsettled.add(run)  # … once this one has heard stats of it (before: see _unsettled)
            if run in covered:
                self._run_topics[run] = _common(covered[run], self._topics)
        self._resumed_run = runs[-1][0] if runs else None
        for run, kind, camera, nxt, last in streams:
            if not self._subscribed(f"{kind}/{camera}"):
                continue  # no longer subscribed to: its final count is not this subscriber's loss
            stream = self._streams[(run, kind, camera)] = _Stream()
            stream.next, stream.resumed, stream.heard_at = nxt, True, _utc_seconds(saved_utc)
            if last is not None:
                stream.recent[last[0]] = tuple(last[1])
        for run, stream_name, why, n in told:
            self._daemon_told[(run, stream_name, why)] = n

    def heard(self) -> str:
        """What the state resumed says was heard last, for the 'resumed' line."""
        return f"last heard run {_run(list(self.runs)[-1])}" if self.runs else "no run heard yet"

    def note(self, line: str) -> None:
        """Queue a notice; it carries wire text (topics, camera names), so it is made one printable line."""
        self._notices.append(one_line(line))

    def notices(self) -> list[str]:
        """Findings since the last call, one line each."""
        out, self._notices = self._notices, []
        return out

    def summary(self) -> str:
        down = (f", {self.missed_while_down} while this subscriber was not running"
                if self.resumed_from is not None else "")
        return (f"{self.lost} event(s) missed ({self.missed_at_start} before joining a run, {self.gaps} in gaps"
                f"{down}), "
                f"{len(self.runs)} run(s) heard, {self.restarts} restart(s), {self.resets} sequence reset(s) "
                f"without a new run id, {self.late} late (out of order), {self.duplicates} duplicate(s), "
                f"{self.daemon_dropped} dropped by the daemon itself (its stats)")


def _is_text(value: object, limit: int = 256) -> bool:
    return isinstance(value, str) and len(value) <= limit


def _covers(topics: Iterable[str], topic: str) -> bool:
    return any(topic_matches(t, topic) for t in topics)


def _common(saved: list[str], current: tuple | None) -> tuple:
    """The topics covered by both ``saved`` and ``current`` (prefixes cut at levels: two of them overlap only
    when one covers the other, and then in the narrower one)."""
    if current is None:
        return tuple(saved)
    return tuple(dict.fromkeys([t for t in saved if _covers(current, t)] + [t for t in current if _covers(saved, t)]))


def _checked_run_topics(state: dict, runs: set) -> dict:
    """The topics that covered each run ({run id: [topic]}) of a state read back; absent in the states saved
    before they were kept (then the current topics are taken as having covered it). ValueError when damaged."""
    covered = state.get("run_topics", {})
    if not (isinstance(covered, dict) and all(
            run in runs and isinstance(t, list) and len(t) <= 256 and all(_is_text(v) for v in t)
            for run, t in covered.items())):
        raise ValueError("its 'run_topics' are not {run id: [topic]} of its runs")
    return covered


def _checked_state(state: object) -> tuple[list, list]:
    """(runs, streams) of a :meth:`LossTracker.state` read back, each entry checked (the file may be damaged or
    written by another version); ValueError naming the first wrong part."""
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} subscriber state")
    runs, streams = state.get("runs"), state.get("streams")
    if not (isinstance(runs, list) and len(runs) <= STATE_RUNS
            and all(isinstance(r, list) and len(r) == 2 and _is_text(r[0]) and _is_text(r[1]) for r in runs)):
        raise ValueError("its 'runs' are not a list of [run id, started]")
    known = {r[0] for r in runs}
    if not (isinstance(streams, list) and len(streams) <= STATE_STREAMS and all(map(_stream_ok, streams))
            and all(s[0] in known for s in streams)):
        raise ValueError("its 'streams' are not a list of [run id, type, camera, next seq, last] of its runs")
    return runs, streams


def _checked_told(state: dict, runs: set) -> list:
    """The daemon drops already told ([run, stream, reason, count]) of a state read back; absent in the states
    saved before they were kept (then told once more). ValueError when present but not such a list."""
    told = state.get("daemon_told", [])
    if not (isinstance(told, list) and len(told) <= STATE_STREAMS and all(
            isinstance(t, list) and len(t) == 4 and all(_is_text(v) for v in t[:3]) and t[0] in runs
            and type(t[3]) is int and 0 < t[3] <= 2**53 for t in told)):
        raise ValueError("its 'daemon_told' are not a list of [run id, stream, reason, count] of its runs")
    return told


def _stream_ok(entry: object) -> bool:
    if not (isinstance(entry, list) and len(entry) == 5 and all(_is_text(v) for v in entry[:3])
            and type(entry[3]) is int and 0 <= entry[3] <= 2**53):
        return False
    last = entry[4]
    return last is None or (isinstance(last, list) and len(last) == 2 and type(last[0]) is int
                            and isinstance(last[1], list) and len(last[1]) <= 8
                            and all(v is None or type(v) is int or _is_text(v, 4096) for v in last[1]))


class StateInUse(ConfigError):
    """The state file ``path`` is held by another running subscriber, process ``holder`` (:meth:`StateFile.hold`)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: in use by another running subscriber (pid {holder}); two subscribers sharing one "
                         f"state tell each other's events as missed: give this one its own --state")
        self.path, self.holder = path, holder


class StateFile:
    """A subscriber's loss accounting on disk, so that a subscriber restarted later learns what was published
    while it was not running (per stream: run id × type × camera → the next seq expected) and does not tell
    again what it told before (the daemon's and the MQTT bridges' drop counts).

    What is kept is ``target.state()`` (JSON-ready), given back to ``target.resume(state, saved_utc)`` (ValueError
    when it is not one) and described by ``target.heard()``: a :class:`LossTracker`, or a subscriber that
    keeps several (:class:`inspector.integrations.mqtt.MqttSubscriber`, one per box).
    ``key`` names what the state is of (the endpoint or broker): a state of another one is not resumed.
    Written whole or not at all (:func:`inspector.outputs.write_whole`: renamed over the old one),
    so a crash leaves the old state or the new, never half of one; a damaged or foreign file is one warning line and the subscriber starts afresh. Saving
    failures (a full disk) are one warning, and the summary says the state is stale.
    """

    def __init__(self, path: str | Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.failed: str | None = None  # why the last save failed (None: saved, or never tried)
        self.saves = 0
        self._lock_fd: int | None = None  # open on the file now at ``path``, flock'ed (:meth:`hold`)
        self._made = False  # hold() made the file: nothing to resume

    def hold(self, target) -> None:
        """Take the state file for this subscriber alone, until :meth:`release` or the end of the process: an
        exclusive flock(2) on the file at ``path``, made (with ``target``'s state, before anything is heard) if
        there is none. Each save replaces the file with one locked before it is renamed into place
        (:meth:`_replace_locked`), so whatever file the path names is locked while a subscriber runs on it; the
        kernel drops the lock when the process ends, crashed or not. No lock file: nothing is added beside it.

        ConfigError (one line, the holder's pid) when another running subscriber holds it: two subscribers
        given one state (two ``subscribe --save-dir`` on one folder: its default state file) each replaced the
        other's after every event, and each one restarted resumed whatever the other wrote last, telling events
        it had saved as missed, or none of those it had missed. Where no lock can be taken (a link or no regular
        file at the path, which :meth:`load` tells; a read-only folder; a file system without locks or hard
        links) it goes on unlocked, as before."""
        for _ in range(100):  # each turn: the file was replaced or made by another process meanwhile
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                if self._make_locked(target) is not False:
                    return
                continue
            except OSError:
                return
            if not stat.S_ISREG(os.fstat(fd).st_mode) or not self._lock(fd):
                os.close(fd)
                return
            if self._names(fd):
                self._lock_fd = fd
                return
            os.close(fd)  # locked a file just replaced by another's save: its own lock shows on the new one

    def _lock(self, fd: int) -> bool:
        """flock ``fd`` for this process; False where the file system cannot lock. StateInUse: another holds it."""
        from inspector.folder_lock import lock_holder

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(fd)
            os.close(fd)
            raise StateInUse(self.path, holder) from None
        except OSError:  # ENOLCK, EOPNOTSUPP: no locks on this file system
            return False
        return True

    def _names(self, fd: int) -> bool:
        """Whether ``path`` names the file open as ``fd`` now."""
        try:
            here, held = os.stat(self.path, follow_symlinks=False), os.fstat(fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def _make_locked(self, target) -> bool | None:
        """No state file yet: make one holding ``target``'s state, locked before it gets its name (a hard link,
        which fails if another process made one meanwhile: False, lock that one). None: not made (a read-only
        folder, no hard links or locks here), the subscriber goes on unlocked and its first save tells why."""
        tmp = whole_temporary(self.path)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError:
            return None
        made = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
            with open(os.dup(fd), "wb") as fh:  # all of it (os.write may write part)
                fh.write(self._document(target))
            os.link(tmp, self.path)
            made = True
        except FileExistsError:
            made = False
        except OSError:  # ENOLCK, EOPNOTSUPP (no locks here), EPERM (no hard links), a full disk
            pass
        finally:
            if not made:
                os.close(fd)
            _unlink(tmp)
        if made:
            self._lock_fd, self._made = fd, True
        return made

    def release(self) -> None:
        """Let go of the lock :meth:`hold` took (none: nothing to do)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:  # a subscriber dropped without close(): its state is free for the next one
        self.release()

    def load(self, target) -> str | None:
        """Resume ``target`` from the file; returns one line to tell (resumed, or why not), None when absent.
        Raises ConfigError when the file is the state of another endpoint, or of a newer version: it is left as
        it is."""
        if self._made or not (self.path.exists() or self.path.is_symlink()):
            return None
        self._refuse_other_kind()
        try:  # the shared reader: a regular file of at most MAX_FILE_BYTES (not /dev/zero, a pipe, a huge file)
            doc = wire_json(read_text(self.path, "subscriber state"), str(self.path), limit=None)
        except InspectorError as exc:
            return f"warning: {exc}; starting without it"
        except ValueError:  # not JSON, or nested too deeply (a RecursionError was a traceback)
            return f"warning: {self.path}: cannot read the subscriber state (not JSON); starting without it"
        if not isinstance(doc, dict):
            return f"warning: {self.path}: not a subscriber state; starting without it"
        if doc and not doc.keys() & STATE_KEYS:
            self._refuse_other_kind(f"a JSON object with keys {', '.join(map(repr, list(doc)[:4]))[:100]}")
        self._refuse_foreign(doc)
        saved = str(doc.get("saved_utc", "?"))[:40]
        try:
            target.resume(doc.get("tracker"), saved)
        except ValueError as exc:
            return f"warning: {self.path}: damaged subscriber state ({exc}); starting without it"
        return f"resumed the subscriber state of {saved} from {self.path}: {target.heard()}"

    def _refuse_other_kind(self, what: str | None = None) -> None:
        """ConfigError (one line), the file left as it is, when it holds another kind of file than a subscriber
        state: ``what`` it is, or (None) a file whose first byte is none a state can begin with. A state is saved
        whole as compact JSON (``{"key": …``); a crash leaves the old one, or on some file systems an empty
        or zero-filled file, all read as damaged and replaced. Another file (``--state daemon.yaml``, the model
        card, the graph) was read as a damaged state too, and replaced by the subscriber's at its first save."""
        from inspector.errors import ConfigError

        if what is None:
            if not self.path.is_file():
                return  # a folder, pipe or device: read_text says so in one line (a pipe, opened, never ends)
            try:
                with self.path.open("rb") as f:
                    head = f.read(256).lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf")
            except OSError:
                return  # read_text says why in one line
            if not head or head[:1] in (b"{", b"\0"):
                return
            what = f"a file that begins {head[:24]!r}"
        raise ConfigError(f"{self.path}: not a subscriber state ({what}); not replacing it: give this subscriber "
                          f"its own --state file")

    def _refuse_foreign(self, doc: dict) -> None:
        """ConfigError (one line) for the state of another endpoint or broker, or one a newer version wrote: it
        was taken for none and replaced at the first save, so the subscriber it belongs to, restarted, no longer
        knew what it had missed (two subscribers sharing a --save-dir, hence its default state file)."""
        from inspector.errors import ConfigError

        tracker = doc.get("tracker")
        version = tracker.get("version") if isinstance(tracker, dict) else None
        if isinstance(doc.get("key"), str) and doc["key"] != self.key:
            raise ConfigError(f"{self.path}: holds the subscriber state of {one_line(doc['key'])[:80]}, not of "
                              f"{one_line(self.key)[:80]}; give this subscriber its own --state")
        if type(version) is int and version > STATE_VERSION:
            raise ConfigError(f"{self.path}: a subscriber state of version {version}, written by a newer inspector "
                              f"(this one reads version {STATE_VERSION}); give this subscriber another --state")

    def save(self, target) -> str | None:
        """Write ``target``'s state; returns a warning line on the first failure after a success (else None)."""
        try:  # whole or not at all; a stop (KeyboardInterrupt) mid-write too leaves the old state, no temporary.
            # Not fsynced: saved after every message, as it was before write_whole (a subscriber's own pace)
            if self._lock_fd is None:
                write_whole(self.path, self._document(target), durable=False)
            else:
                self._replace_locked(self._document(target))
        except OSError as exc:
            first = self.failed is None
            self.failed = exc.strerror or str(exc)
            return (f"warning: {self.path}: cannot save the subscriber state ({self.failed}); a restarted "
                    f"subscriber will not know what it missed") if first else None
        self.failed = None
        self.saves += 1
        return None

    def _document(self, target) -> bytes:
        doc = {"key": self.key, "saved_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "tracker": target.state()}
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    def _replace_locked(self, data: bytes) -> None:
        """:func:`~inspector.outputs.write_whole` for a held state: the new file is locked before it is renamed
        over the old one, whose lock is let go after, so the file at the path is locked at every moment."""
        tmp = whole_temporary(self.path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
            with open(os.dup(fd), "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        old, self._lock_fd = self._lock_fd, fd
        os.close(old)

    def remove_leftovers(self) -> str | None:
        """Remove the temporaries a subscriber killed while saving this state left beside it (``.<name>.<pid>.tmp``
        of :func:`inspector.outputs.write_whole`, and ``<name>.tmp-<pid>`` of an earlier inspector), once their
        writer is gone (:func:`inspector.leftovers.writer_gone`); the line telling how many, or None. Only this
        state file's own temporary names: never another file."""
        from inspector.leftovers import remove_leftovers

        earlier = re.compile(rf"^{re.escape(self.path.name)}\.tmp-(\d{{1,10}})\Z", re.ASCII)
        removed = sum(remove_leftovers(self.path.parent, pattern)
                      for pattern in (whole_temporaries(self.path), earlier))
        return (f"removed {removed} temporary file(s) of an interrupted save of {self.path}"
                if removed else None)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the error that stopped the write is the one to tell; a leftover is removed at the next start


class KeepsState:
    """What the ZeroMQ and MQTT subscribers share to keep their accounting in a :class:`StateFile`: loaded when
    they are made (before the first event is heard), saved after every message they take in (the quiet stats
    too: what they told is then told no more), and for an event returned to the caller only once the caller
    has handled it: it calls :meth:`handled`, or asks for the next one (:meth:`_save_taken`). Closed with an
    event taken off the wire but not handled (a SIGTERM or Ctrl-C inside ``recv`` after the message was read,
    or between ``recv`` and the caller's handling), the state is not saved: the file keeps the state from before
    that message, so the subscriber resumed from it tells the event as missed; saving it counted the event as
    heard though it was never printed nor saved. The subclass gives ``state()``, ``resume()``, ``heard()`` and
    ``_tell(line)`` (one notice line), sets ``_unhandled`` before it takes a message off the wire and
    ``_state_dirty`` once taken in, and closes with :meth:`_close_state`."""

    state_file: StateFile | None = None

    def _open_state(self, path: str | Path | None, key: str) -> None:
        if path is None:
            return
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # its first save says why in one line
        state_file = StateFile(path, key)
        state_file.hold(self)  # ConfigError when another subscriber runs on it: refused before anything is read
        try:
            self._tell(state_file.load(self))  # ConfigError for another's state: refused, nothing removed
        except BaseException:
            state_file.release()
            raise
        self.state_file = state_file
        self._tell(self.state_file.remove_leftovers())

    _state_dirty = False  # messages taken in since the last save
    _unhandled = False  # a message taken off the wire and not yet handled (being taken in, or returned)

    def handled(self) -> None:
        """The event :meth:`recv` returned last is handled (printed, saved): it counts as heard in the state
        (saved at the next ``recv`` or at close). Asking for the next event says the same."""
        self._unhandled = False

    def _close_state(self) -> None:
        """Save the state at close, unless a message taken off the wire was not handled: the file then keeps the
        state from before it (saved before it was taken), which does not count it as heard."""
        if not self._unhandled:
            self._save_state()
        if self.state_file is not None:
            self.state_file.release()

    def _save_state(self) -> None:
        self._state_dirty = False
        if self.state_file is not None:
            self._tell(self.state_file.save(self))

    def _save_taken(self) -> None:
        """Save the state when messages were taken in since the last save. Called when the next message is asked
        for (and on close), not as one is taken: the caller has handled the event returned before (printed,
        saved), so a subscriber killed while handling one leaves a state that does not count it as heard, and the
        next one resumed tells it as missed instead of it being lost unsaid."""
        self._unhandled = False
        if self._state_dirty:
            self._save_state()

    @property
    def state_stale(self) -> str:
        """'' or the summary's tail saying the state file could not be saved (and why)."""
        state = self.state_file
        if state is None or not state.failed:
            return ""
        return f"; subscriber state not saved to {state.path} ({state.failed}): a restart will not know what it missed"
