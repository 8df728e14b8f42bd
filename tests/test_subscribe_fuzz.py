"""A bounded fuzz of ``inspector subscribe`` over a real ZeroMQ socket: a fixed seed, a few hundred messages built
from a daemon's own events and mutated (frames added or dropped, headers of random bytes, not UTF-8, not JSON, not
an object, fields of the wrong type, numbers beyond any range, NaN, lone surrogates, control characters and paths
in the names that become file names). The subscriber, a real process, must end normally, print each message as one
clean line or count it as skipped (nothing lost silently), and write nothing outside its ``--save-dir``."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time

import pytest

from inspector.events import InspectionEvent, Payload, StatsEvent, StatusEvent, encode, utc_iso
from inspector.pipeline.config import PublishSection
from inspector.pipeline.publish import Publisher

SEED = 20250611
MESSAGES = 300
# what a terminal would act on: C0 but newline and tab (one_line keeps tab; a line ends in newline), DEL, C1,
# and the line separators
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
HOSTILE_TEXT = ["../../x", "x/../../escaped", "..", "/etc/passwd", "\x1b[2J\x1b]0;pwn\x07", "a\nb\r\nc", "\u009b31m",
                "\u2028", "\ud800", "\udfff lone", "\x00nul", "C:\\x\\..\\y", "~/x", "a" * 3000, "", " ", "\t"]
HOSTILE_VALUES = [10**400, -10**400, 2**53, 2**64, -1, 1e308, float("nan"), float("inf"), -float("inf"), None, True,
                  [], {}, [1, "x"], {"a": {"b": None}}, "x", 0.5, *HOSTILE_TEXT]


def _events(rng: random.Random, seq: int) -> list[bytes]:
    """The frames of one well-formed event: a defect with two payloads, a status or a stats heartbeat."""
    kind = rng.choice(["defect", "status", "stats"])
    camera = rng.choice(["cam1", "cam2"])
    if kind == "status":
        return encode(StatusEvent(camera=camera, seq=seq, state="online", previous=None, reason="", time_utc=utc_iso(),
                                  run_id="run1"))
    if kind == "stats":
        return encode(StatsEvent(seq=seq, time_utc=utc_iso(), uptime_s=1.0, final=False, run_id="run1",
                                 data={"totals": {"fps": 2.0}, "latency_ms": {"total": {"n": 1, "p50": 3, "p99": 4}}}))
    payloads = [Payload("thumbnail", "jpeg", rng.randbytes(rng.randint(0, 64)), [8, 8, 3]),
                Payload("anomaly_map", "png", rng.randbytes(rng.randint(0, 64)), [8, 8])]
    return encode(InspectionEvent(type="defect", camera=camera, seq=seq, frame_id=seq, event_id=f"run1-{camera}-{seq}",
                                  decision="NG", score=0.9, threshold=0.5, capture={"utc": utc_iso()},
                                  latency_ms={"total": 5.0}, model={"name": "m"}, run_id="run1",
                                  regions=[{"bbox": [1, 2, 3, 4], "area": 12, "peak": 0.9}], payloads=payloads))


def _set(header: dict, rng: random.Random) -> None:
    """A field (or a payload descriptor's field, or a region's) set to a hostile value."""
    target = header
    if isinstance(header.get("payloads"), list) and header["payloads"] and rng.random() < 0.3:
        target = rng.choice(header["payloads"])
    elif isinstance(header.get("regions"), list) and header["regions"] and rng.random() < 0.2:
        target = header["regions"][0]
    if not isinstance(target, dict):
        return
    key = rng.choice(sorted(target) + ["kind", "camera", "run_id", "encoding", "bbox"])
    target[key] = rng.choice(HOSTILE_VALUES + HOSTILE_TEXT)  # the texts twice as likely


def _mutate_header(frames: list[bytes], rng: random.Random) -> list[bytes]:
    header = json.loads(frames[1])
    for _ in range(rng.randint(1, 3)):
        _set(header, rng)
    # json.dumps writes NaN/Infinity and 10**400 as Python does, and a lone surrogate as its \\u escape
    return [frames[0], json.dumps(header).encode(), *frames[2:]]


def _mutate_bytes(frames: list[bytes], rng: random.Random) -> list[bytes]:
    header = bytearray(frames[1])
    choice = rng.randrange(6)
    if choice == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 4)):
            header[rng.randrange(len(header))] = rng.randrange(256)
    elif choice == 1:  # cut short
        del header[rng.randrange(len(header)):]
    elif choice == 2:  # not UTF-8, or UTF-8 encoded surrogates (CESU), inside a string
        at = header.index(b'"camera"') + 10 if b'"camera"' in header else 1
        header[at:at] = rng.choice([b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"\x1b[2J"])
    elif choice == 3:
        header = bytearray(rng.choice([b"null", b"[]", b'"x"', b"1e999", b"NaN", b"{}", b"[" * 100000, b""]))
    elif choice == 4:
        header = bytearray(rng.randbytes(rng.randint(0, 200)))
    else:
        header = bytearray(header.replace(b'"seq":', b'"seq":1' + b"0" * rng.randint(20, 400) + b","
                                          b'"x":', 1))
    return [frames[0], bytes(header), *frames[2:]]


def _mutate_frames(frames: list[bytes], rng: random.Random) -> list[bytes]:
    choice = rng.randrange(5)
    if choice == 0:
        return frames[:1]  # the topic alone
    if choice == 1:
        return frames + [rng.randbytes(8)] * rng.randint(1, 12)  # payloads the header does not describe
    if choice == 2:
        return frames[:2] + frames[3:]  # a payload missing
    if choice == 3:  # a hostile topic (kept under v1/: ZeroMQ delivers it)
        return [b"v1/" + rng.choice([b"defect/\x1b[2J\n", b"\xff\xfe", b"../../x", b"stats/" + b"y" * 500]),
                *frames[1:]]
    return [frames[0], frames[1], *[b""] * (len(frames) - 2)]  # payload byte counts that disagree


def messages(seed: int = SEED, n: int = MESSAGES) -> list[list[bytes]]:
    """``n`` messages: about one in four a well-formed event, the rest mutated."""
    rng = random.Random(seed)
    out = []
    for seq in range(n):
        frames = _events(rng, seq)
        mutate = rng.choice([None, _mutate_header, _mutate_header, _mutate_bytes, _mutate_frames])
        out.append(frames if mutate is None else mutate(frames, rng))
    return out


def _publish(pub: Publisher, sent: list[list[bytes]]) -> None:
    assert pub.wait_for_subscription(20.0)
    time.sleep(0.3)
    for i, frames in enumerate(sent):
        pub.socket.send_multipart(frames)
        if i % 50 == 49:
            time.sleep(0.05)  # well under any queue: what is not printed must be skipped, not dropped on the way


def _files_outside(root, save_dir) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
            if not os.path.join(d, f).startswith(str(save_dir) + os.sep)]


@pytest.mark.parametrize("mode", [[], ["--json"]], ids=["lines", "json"])
def test_a_fuzzed_publisher_is_printed_or_counted_never_a_crash_nor_a_file_outside(tmp_path, mode):
    root = tmp_path / "root"
    save_dir = root / "box" / "events"
    (save_dir / "defect-x").mkdir(parents=True)  # '../' in a name would resolve through it
    endpoint = f"ipc://{tmp_path}/fuzz.sock"
    sent = messages()
    pub = Publisher(PublishSection(endpoint=endpoint))
    sender = threading.Thread(target=_publish, args=(pub, sent))
    sender.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "inspector", "subscribe", endpoint, "--topic", "v1/",
                               "--timeout", "4", "--save-dir", str(save_dir), *mode],
                              capture_output=True, timeout=120, cwd=root)
    finally:
        sender.join()
        pub.close()
    out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")  # strict: each line valid UTF-8
    assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert not CONTROL.search(out + err), [line for line in (out + err).splitlines() if CONTROL.search(line)][:3]
    summary = re.search(r"received (\d+) event\(s\);.*; (\d+) malformed message\(s\) skipped", err.splitlines()[-1])
    assert summary, err[-2000:]
    printed, skipped = int(summary[1]), int(summary[2])
    assert printed == len(out.splitlines()) and printed + skipped == len(sent), (printed, skipped, err[-3000:])
    assert 0 < printed < len(sent)
    assert _files_outside(root, save_dir) == []
