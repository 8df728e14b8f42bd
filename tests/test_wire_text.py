"""Untrusted wire strings (a camera name, a run id, a drop reason from any publisher) are cut short in the lines a
person reads: a rogue publisher's 10,000-character camera or run id was printed whole in every notice and event
line. Real parts: a real publisher on ipc and ``inspector subscribe`` in this process."""

from __future__ import annotations

from inspector.events import InspectionEvent, StatsEvent, StatusEvent, utc_iso
from inspector.textline import WIRE_TEXT_CHARS, wire_text
from subscribe_support import subscribe_session

LONG_CAMERA, LONG_RUN = "c" * 10_000, "r" * 5_000 + " " + "r" * 5_000  # a space: no single long word to clip


def _defect(run: str, seq: int) -> InspectionEvent:
    return InspectionEvent(type="defect", camera=LONG_CAMERA, seq=seq, frame_id=seq, event_id=f"e{seq}",
                           decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={}, model={},
                           run_id=run, run_started_utc="s" * 10_000)


def test_wire_text_keeps_short_strings_and_cuts_long_ones_saying_how_much():
    assert wire_text("cam1") == "cam1" and wire_text("") == ""
    assert wire_text("a\nb") == "a\\nb"  # still one line
    cut = wire_text("x" * 10_000)
    assert cut == "x" * WIRE_TEXT_CHARS + "…(+9936 chars)" and len(cut) < 100
    assert wire_text("\x1b" * 1000).startswith("\\x1b") and len(wire_text("\x1b" * 1000)) < 400


def test_a_rogue_publishers_long_camera_and_run_ids_are_cut_short_in_every_line(tmp_path, capsys):
    """Gaps, a daemon restart, a daemon-drop notice, a status line and the event lines all carried the whole
    strings (10,000 characters each: lines of 20-30 kB)."""
    drops = {"daemon_dropped": {f"defect/{LONG_CAMERA}": {"q" * 10_000: 3}}}
    events = [StatusEvent(camera=LONG_CAMERA, seq=0, state="online", previous=None, reason="why " * 3000,
                          time_utc=utc_iso(), run_id=LONG_RUN),
              _defect(LONG_RUN, 0), _defect(LONG_RUN, 3),  # a gap of 2
              StatsEvent(seq=0, time_utc=utc_iso(), uptime_s=1.0, final=False, data=drops, run_id=LONG_RUN),
              _defect("x" * 10_000, 0)]  # a restart
    assert subscribe_session(f"ipc://{tmp_path}/ev.sock", events, topics=("v1/",), count=5) == 0  # stats counted with v1/
    out, err = capsys.readouterr()
    lines = (out + err).splitlines()
    assert any("lost 2 defect event(s)" in line for line in lines), err
    assert any("daemon restarted: new run" in line for line in lines), err
    assert any("the daemon itself dropped 3 defect event(s)" in line for line in lines), err
    assert sum("status online" in line for line in lines) == 1 and sum("#3" in line for line in lines) == 1, out
    assert all(len(line) < 800 for line in lines), max(lines, key=len)[:300]
    assert all("(+" in line for line in lines if "lost 2" in line or "restarted" in line or "#3" in line)


def test_a_malformed_message_with_a_long_topic_is_told_cut_short_saying_how_much(tmp_path):
    """The notice quoted the decoder's message cut at 160 characters without a word that it was cut."""
    import time

    from inspector.client import Subscriber
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/ev.sock"))
    with Subscriber(pub.endpoint, ["v1/"]) as sub:
        assert pub.wait_for_subscription(5.0)
        time.sleep(0.05)
        pub.socket.send_multipart([b"v1/status/" + b"c" * 10_000, b"garbage"])
        assert sub.recv(timeout=1) is None and sub.malformed == 1
        notices = [n for n in sub.loss.notices() if "malformed" in n]
    pub.close()
    assert len(notices) == 1 and "…(+" in notices[0] and len(notices[0]) < 300, notices
