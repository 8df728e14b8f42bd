"""One JSON sanitiser (inspector.config.json_safe) for reports and published events: strict JSON out."""

from __future__ import annotations

import json

import numpy as np

from inspector.config import json_safe
from inspector.events import StatsEvent, decode, encode


def test_numpy_tuples_and_non_finite_become_strict_json():
    data = {"f": np.float32(1.5), "i": np.int64(3), "t": (1, float("nan")), "a": np.array([1.0, np.inf]),
            "n": -np.inf, 7: object}
    out = json_safe(data)
    assert out == {"f": 1.5, "i": 3, "t": [1, None], "a": [1.0, None], "n": None, "7": str(object)}
    json.dumps(out, allow_nan=False)  # strict: would raise on NaN/inf


def test_an_event_header_with_numpy_values_encodes_through_it():
    event = StatsEvent(seq=1, time_utc="2026-01-01T00:00:00Z", uptime_s=np.float64(1.25), final=False,
                       data={"fps": np.float32(2.5)})
    header = json.loads(encode(event)[1])
    assert header["uptime_s"] == 1.25 and header["data"]["fps"] == 2.5
    assert decode(encode(event)).type == "stats"


def test_flat_dict_fast_path_sanitises_like_the_general_path():
    """The flat plain-dict shortcut (a frame's source metadata, per event: issue 17) returns a copy and never
    skips a value the general path would change."""
    plain = {"index": 3, "file": "a.png", "live": True, "gain": 1.5, "note": None}
    out = json_safe(plain)
    assert out == plain and out is not plain
    assert json_safe({"a": 1, "b": float("nan")}) == {"a": 1, "b": None}
    assert json_safe({"a": 1, "b": np.float32(0.5)}) == {"a": 1, "b": 0.5}
    assert type(json_safe({"a": np.int64(2)})["a"]) is int
    assert json_safe({1: "x"}) == {"1": "x"}
