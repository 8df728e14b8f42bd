"""Event wire format: [topic, header JSON, *payloads]."""

from __future__ import annotations

import json

import pytest

from inspector.events import (ConstantFields, InspectionEvent, Payload, StatsEvent, StatusEvent, decode, encode,
                              header_dict, utc_iso)


def _inspection(**kw) -> InspectionEvent:
    base = dict(type="defect", camera="cam0", seq=3, frame_id=17, event_id="r-cam0-17", decision="NG", score=0.7,
                threshold=0.5, capture={"monotonic_ns": 123, "utc": utc_iso(0)}, latency_ms={"total": 4.2},
                model={"name": "m", "precision": "fp16"}, regions=[{"bbox": [1, 2, 3, 4], "area": 9, "peak": 0.8}],
                frame={"width": 640, "height": 480},
                payloads=[Payload("thumbnail", "jpeg", b"\xff\xd8jpeg", [48, 64, 3]),
                          Payload("anomaly_map", "png", b"\x89PNG", [32, 32], extra={"range": [0, 0.8]})])
    base.update(kw)
    return InspectionEvent(**base)


def test_round_trip_with_payloads():
    event = _inspection()
    frames = encode(event)
    assert frames[0] == b"v1/defect/cam0" and frames[2:] == [b"\xff\xd8jpeg", b"\x89PNG"]
    header = json.loads(frames[1])
    assert header["schema_version"] == 1 and header["type"] == "defect"
    assert header["payloads"][1] == {"kind": "anomaly_map", "encoding": "png", "shape": [32, 32], "dtype": "uint8",
                                     "bytes": 4, "range": [0, 0.8]}
    back = decode(frames)
    assert back == event
    assert back.payloads[0].suffix == ".jpg"


def test_status_and_stats_round_trip():
    status = StatusEvent(camera="c", seq=0, state="online", previous="connecting", reason="", time_utc=utc_iso())
    stats = StatsEvent(seq=5, time_utc=utc_iso(), uptime_s=1.5, final=True, data={"totals": {"fps": 3.0}})
    assert decode(encode(status)) == status and encode(status)[0] == b"v1/status/c"
    assert decode(encode(stats)) == stats and encode(stats)[0] == b"v1/stats"
    assert "payloads" in header_dict(stats)


@pytest.mark.parametrize("frames, match", [
    ([b"v1/x"], "expected"),
    ([b"v1/x", b"{not json"], "not JSON"),
    ([b"v1/x", b'{"schema_version": 9, "type": "stats"}'], "schema_version"),
    ([b"v1/x", b'{"schema_version": 1, "type": "nope"}'], "unknown event type"),
    ([b"v1/x", b'{"schema_version": 1, "type": "stats", "payloads": [{"kind": "a", "encoding": "b"}]}'],
     "describes 1 payload"),
    ([b"v1/x", b'{"schema_version": 1, "type": "stats"}'], "lacks fields"),
])
def test_malformed(frames, match):
    with pytest.raises(ValueError, match=match):
        decode(frames)


def test_no_nan_on_the_wire():
    with pytest.raises(ValueError):
        encode(_inspection(score=float("nan")))


@pytest.mark.parametrize("event", [
    _inspection(),
    StatusEvent(camera="cam0", seq=1, state="online", previous="connecting", reason="ok", time_utc=utc_iso(0),
                details={"attempt": (1, 2)}),
    StatsEvent(seq=2, time_utc=utc_iso(0), uptime_s=1.5, final=True, data={"cpu_s": {"capture": 0.1}}),
])
def test_header_is_the_dataclass_fields_without_a_deep_copy(event):
    """The header holds every field (asdict's layout, payloads as descriptors) and the same JSON, built with
    no deep copy; encode() with a header made once sends the same bytes."""
    import dataclasses

    header = header_dict(event)
    reference = dataclasses.asdict(event)
    reference["payloads"] = [p.descriptor() for p in event.payloads]
    assert list(header) == list(reference) and json.dumps(header) == json.dumps(reference)
    if isinstance(event, InspectionEvent):
        assert header["capture"] is event.capture  # shared, not copied
    assert encode(event, header) == encode(event)


_MARK = "\ue000inspector-constant-model\ue000"


@pytest.mark.parametrize("camera, source", [
    ("cam0", {"index": 3}),
    (_MARK, {"index": 3}),  # a value that is the marker itself: encoded plainly
    ("cam0", {"note": f"x{_MARK}y", "model": _MARK}),  # the marker inside other values
])
def test_pre_encoded_constants_give_the_same_bytes(camera, source):
    """The publisher's pre-encoded model identity (issue 17) never changes an event's bytes."""
    model = {"name": "m", "precision": "fp16", "sha256": "0" * 64, "note": "é\"q"}
    constants = ConstantFields(model=model)
    event = _inspection(camera=camera, source=source, model=model)
    assert encode(event, constants=constants) == encode(event)
    # an equal model that is another object: encoded plainly, same bytes
    other = _inspection(camera=camera, source=source, model=dict(model))
    assert encode(other, constants=constants) == encode(other)


def test_pre_encoded_constant_is_used_when_the_field_holds_it():
    model = {"name": "m"}
    constants = ConstantFields(model=model)
    constants._fragments["model"] = (constants._fragments["model"][0], '{"name":"pre-encoded"}')
    header = header_dict(_inspection(model=model))
    assert json.loads(constants.encode(header))["model"] == {"name": "pre-encoded"}  # the fragment, spliced
    assert json.loads(constants.encode({**header, "model": {"name": "m"}}))["model"] == {"name": "m"}


@pytest.mark.parametrize("text", [b'"\\ud800"', b'{"c": "x\\udfffy"}', b'{"\\udc00": 1}', b'["\xed\xa0\x80"]',
                                  '"\ud800"'])
def test_a_lone_surrogate_in_a_wire_string_is_refused(text):
    """JSON's \\u escapes (and UTF-8-encoded surrogates, which json.loads of bytes passes) carry lone surrogates,
    which no UTF-8 writer takes: a camera name of '\\ud800' was decoded, and ``inspector subscribe`` ended with a
    UnicodeEncodeError traceback as it printed the event's line. Pairs stay text."""
    from inspector.events import wire_json

    with pytest.raises(ValueError, match="lone surrogate"):
        wire_json(text, "w")
    assert wire_json(b'["\\ud83d\\ude00", "\\\\ud800"]', "w") == ["\U0001F600", "\\ud800"]


def test_a_file_name_that_is_not_utf8_is_published_as_text(tmp_path):
    """A folder camera's file whose name is not UTF-8 (Python decodes its bytes to lone surrogates) made the
    frame's defect event a malformed message to every subscriber ("a string holds a lone surrogate"): the part was
    inspected and its event lost, and the recorder's header was no JSON a strict reader takes. The encoder writes
    each lone surrogate as its escape, in the header the recorder gets and in the event the taps get."""
    import os

    import cv2
    import numpy as np

    from inspector.events import wire_json
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import FolderSource

    folder = tmp_path / "cam"
    folder.mkdir()
    name = os.fsdecode(b"part\xff 7.png")
    (folder / name).write_bytes(cv2.imencode(".png", np.full((16, 16, 3), 90, np.uint8))[1].tobytes())
    source = FolderSource(CameraSection(name="cam0", source=str(folder)))
    source.open()
    meta = source.read().meta
    assert meta["file"] == "part\udcff 7.png"  # what the system gives: the camera reads the file as it is named
    for constants in (None, ConstantFields(model={"name": "m"})):
        event = _inspection(source=dict(meta), error=f"{folder / name}: note")
        header = header_dict(event)
        frames = encode(event, header, constants)
        assert wire_json(frames[1], "header")["source"]["file"] == "part\\udcff 7.png"
        assert decode(frames).error == f"{folder}/part\\udcff 7.png: note"
        json.dumps(header, ensure_ascii=False).encode("utf-8")  # the recorder's copy: Unicode text too
        assert event.source["file"] == "part\\udcff 7.png"  # and the event the taps get
    status = StatusEvent(camera="cam0", seq=0, state="online", previous="connecting", reason=f"folder {folder}/\udc80x",
                         time_utc=utc_iso(0))
    assert decode(encode(status)).reason == f"folder {folder}/\\udc80x"
    plain = _inspection(source={"file": "é ☃ \U0001F600.png"})  # Unicode text is left as it is
    assert decode(encode(plain)).source["file"] == "é ☃ \U0001F600.png"
