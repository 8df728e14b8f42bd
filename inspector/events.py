"""Typed, versioned events and their wire format (ZeroMQ multipart).

A message is ``[topic, header, *payloads]``:

* ``topic``   — UTF-8, prefix-filterable: ``v1/defect/<camera>`` (every frame
  that is not OK: decision NG, uncertain, or error = not inspected, e.g. its
  batch failed, or an offline source's picture could not be decoded: ``frame`` 0×0), ``v1/result/<camera>`` (every frame, off by default),
  ``v1/status/<camera>`` (camera state changes; re-sent with the same ``seq``
  when a subscriber joins), ``v1/stats`` (heartbeat; the last one has
  ``final: true``; ``data.sequences`` counts the events published so far per
  ``<type>/<camera>``, so a subscriber can also count losses after its last event). A prefix matches longer camera names too
  (``v1/defect/cam1`` ⊂ ``v1/defect/cam10``): compare ``camera`` when it matters.
* ``header``  — UTF-8 JSON object with ``schema_version`` and ``type``; the
  fields of the event dataclass below.
* payloads    — raw bytes (never base64 in JSON), each described by the entry of
  the same index in ``header["payloads"]``: ``kind`` (``thumbnail`` |
  ``anomaly_map``), ``encoding`` (``jpeg`` | ``png``), ``shape``, ``dtype``,
  ``bytes`` and, for maps, ``range`` ([lo, hi]: pixel value v means
  lo + v / 255 · (hi − lo)).

``seq`` counts the events of one type for one camera (0, 1, 2 … without gaps
as published) *within one run*; ``run_id`` (random per daemon start) and
``run_started_utc`` name the daemon start that published it, so a subscriber
can count lost messages (a first ``seq`` ≠ 0 within a run = missed before
joining, a jump = lost in between) and see restarts (a new ``run_id``). ``frame_id``
counts captured frames per camera, so gaps there are frames dropped at capture.
:func:`encode` and :func:`decode` are the only code that knows this layout.

Wire data is untrusted: :func:`decode` checks every header field against the
event's annotated type (and regions and payload descriptors against the layout
above), and refuses a message whose descriptors disagree with its frames, so a
consumer never meets a half-formed event.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
import time
import types
import typing
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Union

from inspector.config import json_safe
from inspector.errors import ConfigError

SCHEMA_VERSION = 1
TOPIC_PREFIX = "v1"
DECISIONS = ("OK", "NG", "uncertain", "error")


def utc_iso(t: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2025-01-31T12:00:00.123Z``."""
    t = time.time() if t is None else t
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ZMTP heartbeat (ZeroMQ ≥ 4.2, both ends of the wire): a connection that goes dead without a FIN or a RST (a
# pulled cable, a rebooted switch, a firewall that forgot it) stays open for TCP until its retransmissions give
# up, many minutes; a subscriber on it hears nothing and does not reconnect, a publisher queues into it.
HEARTBEAT_S = 5.0
HEARTBEAT_MISSES = 3  # heartbeats unanswered before the peer is taken for dead

# How long a subscriber hears nothing at all (no event, no v1/stats) before it says so, once, with what it waits on
# and why (inspector.client.Silence; ``inspector subscribe --silence-s``). A daemon publishes v1/stats every
# publish.stats_interval_s (1 s by default), so 5 s is five heartbeats missed: long enough that a daemon restart or
# a slow start stays quiet, short enough that an operator who typed a wrong path or port is told before giving up.
# ZeroMQ's connect succeeds without a peer and retries for ever without a word, so without this an ipc path that
# does not exist or a port nobody listens on left the subscriber silent for ever.
SILENCE_S = 5.0


def set_heartbeat(sock, interval_s: float = HEARTBEAT_S) -> None:
    """Ping the peer every ``interval_s`` seconds and drop the connection when ``HEARTBEAT_MISSES`` intervals
    pass without a word from it (ZMQ_HEARTBEAT_IVL / _TIMEOUT, and _TTL asking the peer to do the same;
    zmq_setsockopt(3)). ZeroMQ then reconnects a connecting socket by itself, and the socket's monitor tells
    the disconnect. ``interval_s`` ≤ 0: no heartbeat (ZeroMQ's default)."""
    import zmq

    ms = max(0, int(round(interval_s * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_IVL, ms)
    if ms:
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ms * HEARTBEAT_MISSES)
        sock.setsockopt(zmq.HEARTBEAT_TTL, min(ms * HEARTBEAT_MISSES, 6_553_500))  # the option's limit


_MONITOR_IDS = itertools.count()


def monitor_socket(sock, events: int):
    """A PAIR socket that receives ``sock``'s monitor ``events`` (zmq_socket_monitor(3)), on an inproc address
    of its own. Raises zmq.ZMQError as ``Socket.monitor`` does.

    pyzmq's default address is ``inproc://monitor.s-<fd>``: a monitor disabled and then asked for again on the
    same socket (the publisher's subscriber count, then its drain), or a new socket that gets a closed one's fd,
    binds an address whose previous owner libzmq is still closing in its I/O thread, and fails with "Address
    already in use" (about one try in two on loopback). A counter makes every address new."""
    return sock.get_monitor_socket(events, addr=f"inproc://inspector.monitor-{next(_MONITOR_IDS)}")


def curve_key(key: bytes, where: str) -> bytes:
    """``key`` if it is a ZeroMQ CURVE key (40 z85 characters, 32 bytes), else a one-line ConfigError naming
    ``where``: libzmq takes any bytes until the socket option is set, then fails with EINVAL."""
    from zmq.utils import z85

    try:
        ok = isinstance(key, bytes) and len(key) == 40 and len(z85.decode(key)) == 32
    except (KeyError, ValueError):  # a character outside the z85 alphabet
        ok = False
    if not ok:
        raise ConfigError(f"{where}: not a CURVE key (40 z85 characters)")
    return key


def load_curve_certificate(path: str | Path, what: str) -> tuple[bytes, bytes | None]:
    """(public key, secret key or None) of a certificate file made by ``zmq.auth.create_certificates``.

    Raises ConfigError (one line naming the file) when it cannot be read, holds no public key or holds
    keys that are not CURVE keys; ``zmq.auth.load_certificate`` raised a bare ValueError or OSError.
    """
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no public key in it"
        raise ConfigError(f"{path}: {what} is not a ZeroMQ certificate ({reason})") from None
    curve_key(public, f"{path}: {what}: public-key")
    if secret is not None:
        curve_key(secret, f"{path}: {what}: secret-key")
    return public, secret


def topic_for(kind: str, camera: str | None = None) -> str:
    return f"{TOPIC_PREFIX}/{kind}" if camera is None else f"{TOPIC_PREFIX}/{kind}/{camera}"


STATS_TOPIC = f"{TOPIC_PREFIX}/stats"


def topic_matches(subscription: str, topic: str) -> bool:
    """Whether a subscription topic (``--topic``, ``Subscriber(topics=)``) covers an event's ``topic``.

    A prefix, cut only at a level ('/'): ``v1/defect/cam1`` covers camera ``cam1`` and not ``cam10`` (ZeroMQ's
    byte-prefix filter delivers both, so the subscriber filters again; MQTT filters match whole levels too, so
    both transports select the same events). One ending in '/' (``v1/``) or empty covers everything under it;
    ``v1/def`` (a level cut short) covers nothing."""
    if not subscription or subscription.endswith("/"):
        return topic.startswith(subscription)
    return topic == subscription or topic.startswith(subscription + "/")


CAMERA_TYPES = {"defect": True, "result": True, "status": True, "stats": False}  # type → whether its topic names a camera


def subscription_topic(topic: str, types: dict[str, bool] = CAMERA_TYPES) -> str:
    """``topic`` if it selects events of ``types`` (type → whether its topic has a camera level): ``v1/``,
    ``v1/<type>``, ``v1/<type>/<camera>`` (or ``''``, ``v1``: everything). Raises ConfigError (one line) for
    anything else: cut at levels (:func:`topic_matches`), a level cut short such as ``v1/def``, an unknown type
    or a camera under ``v1/stats`` would select nothing, silently."""
    levels = topic.split("/")
    kind = levels[1] if len(levels) > 1 else None
    # a trailing '/' covers what lies below a level (topic_matches): the cameras of a type that has them
    if topic in ("", TOPIC_PREFIX, f"{TOPIC_PREFIX}/") or (
            levels[0] == TOPIC_PREFIX and kind in types and len(levels) <= 2 + types[kind] and all(levels[:2])):
        return topic
    from inspector.errors import ConfigError
    from inspector.textline import one_line

    raise ConfigError(f"topic '{one_line(topic)[:80]}': not {TOPIC_PREFIX}/, {TOPIC_PREFIX}/<type> or "
                      f"{TOPIC_PREFIX}/<type>/<camera> with a type of {', '.join(types)}")


@dataclass
class Payload:
    """One binary attachment and its descriptor."""

    kind: str  # thumbnail | anomaly_map
    encoding: str  # jpeg | png
    data: bytes
    shape: list[int]
    dtype: str = "uint8"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"range": [0, 0.8]}

    def descriptor(self) -> dict[str, Any]:
        return {"kind": self.kind, "encoding": self.encoding, "shape": list(self.shape), "dtype": self.dtype,
                "bytes": len(self.data), **self.extra}

    @property
    def suffix(self) -> str:
        return {"jpeg": ".jpg", "png": ".png"}.get(self.encoding, ".bin")


class _Routed:
    """The topic rule every event shares: ``v1/<type>`` plus ``/<camera>`` for events that have a camera."""

    @property
    def topic(self) -> str:
        return topic_for(self.type, getattr(self, "camera", None))


@dataclass
class InspectionEvent(_Routed):
    """The result of inspecting one frame (topic ``v1/defect/<camera>`` or ``v1/result/<camera>``)."""

    type: str  # defect | result
    camera: str
    seq: int
    frame_id: int
    event_id: str
    decision: str
    score: float | None
    threshold: float
    capture: dict[str, Any]  # {"monotonic_ns": int, "utc": iso str}
    latency_ms: dict[str, float]
    model: dict[str, Any]  # name, version, precision, sha256, backend
    regions: list[dict[str, Any]] = field(default_factory=list)  # {"bbox": [x, y, w, h], "area", "peak"}
    frame: dict[str, int] = field(default_factory=dict)  # {"width", "height"} of the original frame
    uncertain_band: list[float] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    payloads: list[Payload] = field(default_factory=list)
    run_id: str = ""  # random per daemon start
    run_started_utc: str = ""  # when that daemon started
    schema_version: int = SCHEMA_VERSION
    truncated: dict[str, int] | None = None  # fields cut to fit MAX_HEADER_BYTES → their size before (fit_header)


@dataclass
class StatusEvent(_Routed):
    """A camera state change (topic ``v1/status/<camera>``): connecting, online, reconnecting, stalled,
    stale (an http(s) snapshot camera answering its last picture again for ``stale_after_s``), changed (the source was replaced, or its frames' size or format changed: grey/colour, depth, pixel format), ended,
    failed."""

    camera: str
    seq: int
    state: str
    previous: str | None
    reason: str
    time_utc: str
    details: dict[str, Any] = field(default_factory=dict)
    type: str = "status"
    schema_version: int = SCHEMA_VERSION
    payloads: list[Payload] = field(default_factory=list)
    run_id: str = ""
    run_started_utc: str = ""
    truncated: dict[str, int] | None = None  # as InspectionEvent's


@dataclass
class StatsEvent(_Routed):
    """The periodic heartbeat (topic ``v1/stats``): rates, drops, latency percentiles, drift."""

    seq: int
    time_utc: str
    uptime_s: float
    final: bool
    data: dict[str, Any]
    type: str = "stats"
    schema_version: int = SCHEMA_VERSION
    payloads: list[Payload] = field(default_factory=list)
    run_id: str = ""
    run_started_utc: str = ""


Event = Union[InspectionEvent, StatusEvent, StatsEvent]
_TYPES = {"defect": InspectionEvent, "result": InspectionEvent, "status": StatusEvent, "stats": StatsEvent}


def header_dict(event: Event) -> dict[str, Any]:
    """The JSON header of ``event`` (payload bytes replaced by their descriptors).

    A new top-level dict whose values are the event's own (not copies): every field already holds plain JSON
    types, so a deep copy (``dataclasses.asdict``, ~2/3 of the publisher's CPU per event) buys nothing.
    Treat nested values as read-only.
    """
    data = {name: getattr(event, name) for name in _field_names(type(event))}
    data["payloads"] = [p.descriptor() for p in event.payloads]
    return data


def encode(event: Event, header: dict[str, Any] | None = None,
           constants: "ConstantFields | None" = None) -> list[bytes]:
    """``event`` as ZeroMQ frames ``[topic, header JSON, *payloads]``; ``header``: its :func:`header_dict`
    when the caller already made one (the publisher hands the same dict to the recorder); ``constants``:
    fields pre-encoded once (the same text either way)."""
    header = header_dict(event) if header is None else header
    text = _ENCODER.encode(header) if constants is None else constants.encode(header)
    if _SURROGATE_HINT[str].search(text):  # every non-ASCII character is escaped: a lone surrogate shows here
        unicode_header(event, header)
        text = _ENCODER.encode(header)
    return [event.topic.encode(), text.encode(), *(p.data for p in event.payloads)]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unicode_header(event: Event, header: dict[str, Any]) -> None:
    """Write each lone surrogate (U+D800-U+DFFF) in the strings of ``header`` (``event``'s :func:`header_dict`)
    as its Python escape (``\\udcff``, as :func:`inspector.textline.one_line` prints it), in the header and in
    the event's own fields, so the wire, the recorder (it gets the same dict) and the taps (they get the event
    after it is published) all carry Unicode text.

    Such a string is no Unicode text (RFC 7493 §2.1): every consumer refuses it (:func:`wire_json`). It comes
    from the system, not from a config: a file whose name is not UTF-8 (Python decodes its bytes to lone
    surrogates) made a folder camera's defect event a malformed message to every subscriber, the part inspected
    and its event lost, and its recorded header no JSON a strict reader takes. Nested values are read-only
    (:func:`header_dict`): a changed one is replaced by a new object."""
    names = set(_field_names(type(event)))
    for name, value in list(header.items()):
        clean = _escaped_surrogates(value)
        if clean is not value:
            header[name] = clean
            if name in names and name != "payloads":
                setattr(event, name, clean)


def _escaped_surrogates(value: Any) -> Any:
    """``value`` (JSON types) with its strings' lone surrogates escaped; ``value`` itself when it has none."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(lambda m: repr(m.group())[1:-1], value) if _LONE_SURROGATE.search(value) \
            else value
    if isinstance(value, dict):
        items = [(_escaped_surrogates(k), _escaped_surrogates(v)) for k, v in value.items()]
        changed = any(k2 is not k or v2 is not v for (k2, v2), (k, v) in zip(items, value.items()))
        return dict(items) if changed else value
    if isinstance(value, (list, tuple)):
        items = [_escaped_surrogates(v) for v in value]
        return items if any(a is not b for a, b in zip(items, value)) else value
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _json_default(obj: Any) -> Any:
    """numpy scalars and arrays in a header: the project's one sanitiser (:func:`inspector.config.json_safe`)."""
    if hasattr(obj, "tolist"):
        return json_safe(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ``json.dumps`` with any non-default argument builds a new JSONEncoder per call (~25 % of encoding a header);
# one shared encoder gives the same text (JSONEncoder.encode keeps no state between calls).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_json_default)


class ConstantFields:
    """Header fields that hold the same object on every event of one sender, JSON-encoded once.

    ``encode(header)`` gives exactly ``_ENCODER.encode(header)``: each field whose value *is* (identity) the
    given object is encoded as a marker string, then the marker's JSON is replaced by the field's
    pre-encoded JSON. If a marker's JSON occurs anywhere else in the text (another value holding it), the
    header is encoded plainly instead. Saves ~1.5 µs per event for the model identity (issue 17).
    """

    def __init__(self, **values: Any) -> None:
        self.values = values
        self._marks = {name: f"\ue000inspector-constant-{name}\ue000" for name in values}
        self._fragments = {name: (_ENCODER.encode(self._marks[name]), _ENCODER.encode(value))
                           for name, value in values.items()}

    def encode(self, header: dict[str, Any]) -> str:
        marked = {name: self._marks[name] for name, value in self.values.items() if header.get(name) is value}
        if not marked:
            return _ENCODER.encode(header)
        text = _ENCODER.encode({**header, **marked})  # same key order: existing keys keep their place
        for name in marked:
            mark, fragment = self._fragments[name]
            if text.count(mark) != 1:
                return _ENCODER.encode(header)
            text = text.replace(mark, fragment, 1)
        return text


# What a consumer takes from the wire at most, per event. Wire data is untrusted, and parsing is where a rogue
# publisher's bytes turn into the consumer's memory and CPU: a 30 MiB header of empty objects took 840 MB and 24 s
# to parse (a 128 MiB one, under the subscriber's ZMQ_MAXMSGSIZE, several GB), and an event of 2000 empty payloads
# held ``inspector subscribe --save-dir`` for 22 s (2000 files written and fsynced, each name checked against the
# others), blind to everything published meanwhile. A daemon's header is far smaller (max_regions ≤ 10 000
# regions of < 100 bytes: ~1 MB) and carries at most two payloads (thumbnail, anomaly_map: pipeline.postprocess).
MAX_HEADER_BYTES = 4 * 2**20
MAX_PAYLOADS = 8


# What fit_header cuts, in order (field: what it becomes): the source's metadata and a status's details (free
# form, from a camera or an extension: the likely culprits) go whole, then text is cut, and regions last, from the
# end (the postprocess keeps them largest peak first): the inspection result is kept as long as it can be.
_CUTS = {"source": {}, "details": {}, "error": 1000, "reason": 1000, "regions": None}


def fit_header(event: Event, header: dict[str, Any], limit: int = MAX_HEADER_BYTES) -> bool:
    """Make ``header`` (``event``'s :func:`header_dict`) encode to at most ``limit`` bytes, the most any
    subscriber takes (:func:`wire_json`: a larger one is skipped as malformed, the event lost to every consumer):
    the fields of :data:`_CUTS` the event has are cut in order until it fits, each recorded in the header's and
    the event's ``truncated`` (field → its length before: regions, keys, characters). False when it still does
    not fit (a stats event: nothing of it can go); the caller then does not send it."""
    def size() -> int:
        return len(_ENCODER.encode(header).encode())

    cut: dict[str, int] = {}
    room = limit - 256  # for the 'truncated' record itself
    for name, to in _CUTS.items():
        value = header.get(name)
        if not value or name not in _field_names(type(event)) or size() <= room:
            continue
        cut[name] = len(value)
        if name == "regions":
            while header[name] and size() > room:  # halving: ~14 encodes for max_regions 10 000
                header[name] = header[name][:len(header[name]) // 2]
        else:
            header[name] = value[:to] if isinstance(to, int) else to
        setattr(event, name, header[name])
    if cut:  # only events with a field to cut get here, and they all have 'truncated'
        header["truncated"] = event.truncated = cut
    return size() <= limit


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf: no JSON value (RFC 8259 §6)
        raise ValueError(f"number {text[:20]} is beyond the float range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's extension, refused by every strict reader


# What may stand for a lone surrogate: a \ud800-\udfff escape, or (json.loads decodes bytes with 'surrogatepass')
# such a code point encoded as UTF-8 (ED A0..BF xx), or the code point itself in a str. A match only costs a check.
_SURROGATE_HINT = {bytes: re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]"),
                   str: re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")}


class LoneSurrogate(ValueError):
    """A string of a JSON document holds a lone surrogate (told as that, not as 'not JSON')."""


def _no_lone_surrogate(doc: Any, where: str) -> None:
    """Raise ValueError when a string of ``doc`` holds a lone surrogate: no Unicode text (RFC 7493 §2.1), so no
    UTF-8 either; a camera name of '\\ud800' ended ``inspector subscribe`` with a UnicodeEncodeError traceback
    as it printed the event's line."""
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise LoneSurrogate(f"{where}: a string holds a lone surrogate (\\ud800-\\udfff), no Unicode text") from None


def wire_json(data: bytes | str, where: str, limit: int | None = MAX_HEADER_BYTES) -> Any:
    """Strict JSON (RFC 8259: no NaN/Infinity, no number beyond the float range; I-JSON: no lone surrogate in a
    string) of untrusted bytes, at most ``limit`` bytes (None: any); every failure a one-line ValueError naming
    ``where``: too long, not UTF-8, not JSON, nested too deeply (RecursionError, which is no ValueError, escaped
    every caller as a traceback). The one parser of what comes from a wire or from a file a subscriber keeps: what
    it accepts, a consumer can print, and write back as JSON (``--json``, ``--save-dir``) that every reader takes."""
    if limit is not None and len(data) > limit:
        raise ValueError(f"{where}: {len(data)} bytes, more than the {limit} a header may have")
    try:
        doc = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
        if _SURROGATE_HINT[bytes if isinstance(data, (bytes, bytearray)) else str].search(data):
            _no_lone_surrogate(doc, where)
        return doc
    except RecursionError:
        raise ValueError(f"{where}: not JSON (nested too deeply)") from None
    except LoneSurrogate:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the two above
        raise ValueError(f"{where}: not JSON ({' '.join(str(exc).split())[:80]})") from None


def decode(frames: list[bytes]) -> Event:
    """Parse ``[topic, header, *payloads]``; raises ValueError on a malformed or foreign message (the header
    as :func:`wire_json` takes it, at most :data:`MAX_PAYLOADS` payloads, the topic the event's own)."""
    if len(frames) < 2:
        raise ValueError(f"expected [topic, header, *payloads], got {len(frames)} frame(s)")
    topic = bytes(frames[0])[:200].decode("utf-8", "replace")
    header = wire_json(bytes(frames[1]), f"{topic}: header")
    if not isinstance(header, dict) or header.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{topic}: unsupported schema_version {str(header.get('schema_version'))[:20]}"
                         if isinstance(header, dict) else f"{topic}: header is not an object")
    cls = _TYPES.get(header.get("type")) if isinstance(header.get("type"), str) else None
    if cls is None:
        raise ValueError(f"{topic}: unknown event type {str(header.get('type'))[:40]!r}")
    payloads = _payloads(topic, header.pop("payloads", []) or [], frames[2:])
    known = {k: v for k, v in header.items() if k in cls.__dataclass_fields__}
    _check_fields(topic, cls, known)
    try:
        event = cls(**known, payloads=payloads)
    except TypeError as exc:
        raise ValueError(f"{topic}: header lacks fields ({exc})") from None
    # a daemon sends each event under its own topic (encode); one routed under another's was neither shown nor
    # counted by a subscriber whose topics cover the wire topic and not the header's (v1/defect/cam1, camera cam2)
    if bytes(frames[0]) != event.topic.encode():
        raise ValueError(f"{topic}: the header is of topic {event.topic[:200]}")
    return event


def _payloads(topic: str, descriptors: Any, blobs: list) -> list[Payload]:
    """Payloads from descriptors that agree with the frames that carry them (kind, encoding, byte count)."""
    if not isinstance(descriptors, list):
        raise ValueError(f"{topic}: 'payloads' is not a list")
    if len(descriptors) > MAX_PAYLOADS:
        raise ValueError(f"{topic}: {len(descriptors)} payloads, more than the {MAX_PAYLOADS} an event may have")
    if len(descriptors) != len(blobs):
        raise ValueError(f"{topic}: header describes {len(descriptors)} payload(s), message has {len(blobs)}")
    payloads = []
    for i, (desc, blob) in enumerate(zip(descriptors, blobs)):
        data = bytes(blob)
        if not (isinstance(desc, dict) and isinstance(desc.get("kind"), str) and isinstance(desc.get("encoding"), str)):
            raise ValueError(f"{topic}: payload {i} descriptor lacks a text 'kind' and 'encoding'")
        desc = dict(desc)
        size = desc.pop("bytes", len(data))
        if size != len(data):  # never trust sizes from the wire: the frame is the truth
            raise ValueError(f"{topic}: payload {i} descriptor says {str(size)[:20]} bytes, frame has {len(data)}")
        shape, dtype = desc.pop("shape", []), desc.pop("dtype", "uint8")
        if not (isinstance(shape, list) and all(type(d) is int and 0 <= d <= MAX_WIRE_INT for d in shape)
                and isinstance(dtype, str)):
            raise ValueError(f"{topic}: payload {i} has a malformed shape or dtype")
        payloads.append(Payload(kind=desc.pop("kind"), encoding=desc.pop("encoding"), data=data, shape=shape,
                                dtype=dtype, extra=desc))
    return payloads


def _check_fields(topic: str, cls: type, header: dict[str, Any]) -> None:
    """Every present field has its annotated type; regions have the documented layout."""
    checks = _field_checks(cls)
    for name, value in header.items():
        if name != "payloads" and not checks[name](value):
            raise ValueError(f"{topic}: header field '{name}' has the wrong type ({type(value).__name__})")
    if header.get("seq", 0) < 0:
        raise ValueError(f"{topic}: negative seq")
    for region in header.get("regions") or []:
        bbox = region.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_int(v) for v in bbox)
                and _is_float(region.get("peak", 0.0))):
            raise ValueError(f"{topic}: malformed region {str(region)[:60]}")


_FIELD_CHECKS: dict[type, dict[str, Callable[[Any], bool]]] = {}


def _field_checks(cls: type) -> dict[str, Callable[[Any], bool]]:
    """Per field of ``cls``, a predicate for its annotated type, made once per class (a subscriber decodes
    every event: walking ``typing`` annotations per value cost ~80 % of :func:`decode`)."""
    if cls not in _FIELD_CHECKS:
        _FIELD_CHECKS[cls] = {name: _checker(tp) for name, tp in typing.get_type_hints(cls).items()}
    return _FIELD_CHECKS[cls]


# Integers a header may carry: I-JSON's interoperable range (RFC 7493 §2.2, ±(2**53 − 1); RFC 8259 §6). A daemon's
# counters never come near it; a rogue seq of 10**300 made ``subscribe --save-dir`` fail to save the event (file
# name too long), put a 300-digit loss count in its summary and, as that stream's last seq, made every later event
# of it a "duplicate", blinding the loss accounting.
MAX_WIRE_INT = 2**53 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_WIRE_INT <= value <= MAX_WIRE_INT


def _is_float(value: Any) -> bool:
    """A finite number that converts to a float: math.isfinite(10**400) raised OverflowError, which escaped
    decode (documented to raise ValueError) and ended ``inspector subscribe`` with a traceback."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) if isinstance(value, float) else -sys.float_info.max <= value <= sys.float_info.max


def _always(value: Any) -> bool:
    return True


_SCALAR_CHECKS: dict[Any, Callable[[Any], bool]] = {
    Any: _always, type(None): lambda v: v is None, bool: lambda v: isinstance(v, bool), int: _is_int,
    float: _is_float, str: lambda v: isinstance(v, str),
}


def _checker(tp: Any) -> Callable[[Any], bool]:
    """A predicate: does JSON ``value`` fit the annotation ``tp`` (containers checked one level deep)."""
    if tp in _SCALAR_CHECKS:
        return _SCALAR_CHECKS[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        options = tuple(_checker(a) for a in args)
        return lambda v: any(check(v) for check in options)
    if origin is dict:
        item = _checker(args[1])
        return lambda v: isinstance(v, dict) and all(item(x) for x in v.values())
    if origin is list:
        item = _checker(args[0])
        return lambda v: isinstance(v, list) and all(item(x) for x in v)
    return _always

