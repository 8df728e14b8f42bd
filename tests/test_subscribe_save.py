"""``inspector subscribe --save-dir``: an event's files appear whole or not at all, and never over a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from inspector.events import InspectionEvent, Payload

_SIZE_LIMITED = """
import json, resource, signal, sys
from pathlib import Path
from inspector.commands.subscribe import MqttSaver, save
from inspector.events import InspectionEvent, Payload
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like ENOSPC
folder = Path(sys.argv[1])
folder.mkdir()
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
def event(seq, sizes):
    return InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r-c-{seq}", decision="NG",
                           score=1.0, threshold=0.5, capture={}, latency_ms={}, model={}, run_id="r",
                           payloads=[Payload(f"k{i}", "png", bytes([65 + i]) * n, [n]) for i, n in enumerate(sizes)])
errors = []
for seq, sizes in enumerate([(100, 9000), (100, 200)]):  # seq 0: its second payload is over the limit
    try:
        save(event(seq, sizes), folder)
    except OSError as exc:
        errors.append(exc.strerror)
saver = MqttSaver(folder)
saver.payload("b", "inspector/b/v1/defect/c/e1/big", b"x" * 9000)
saver.payload("b", "inspector/b/v1/defect/c/e2/small", b"y" * 10)
saver.finish()
print(json.dumps({"errors": errors, "unsaved_payloads": saver.unsaved_payloads}))
"""


def test_an_event_cut_short_by_a_full_disk_leaves_no_file(tmp_path):
    """A payload write that failed (a full disk; here a real EFBIG from a file size limit, in a child process)
    after the header was written left the header and a short payload under the event's names: evidence that
    looked whole. Now nothing of that event is left (no temporary either), the next event is saved whole, and
    the MQTT saver's payload cut short leaves no file while the next one is saved."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", _SIZE_LIMITED, str(tmp_path / "saved")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"errors": ["File too large"], "unsaved_payloads": 1}
    files = {p.name: p.read_bytes() for p in (tmp_path / "saved").iterdir()}
    assert sorted(files) == ["defect-c-r-0000001.json", "defect-c-r-0000001.k0.png", "defect-c-r-0000001.k1.png",
                             "payload-inspector-b-v1-defect-c-e2-small.bin"], sorted(files)
    assert files["defect-c-r-0000001.k1.png"] == b"B" * 200 and json.loads(files["defect-c-r-0000001.json"])["seq"] == 1


def _event(kinds: list[str]) -> InspectionEvent:
    return InspectionEvent(type="defect", camera="c", seq=0, frame_id=0, event_id="r-c-0", decision="NG",
                           score=1.0, threshold=0.5, capture={}, latency_ms={}, model={}, run_id="r",
                           payloads=[Payload(k, "png", k.encode(), [1]) for k in kinds])


def test_payload_kinds_that_differ_only_in_case_get_names_apart(tmp_path):
    """On a case-insensitive file system (macOS, SMB, FAT) 'Heat' and 'heat' are one file: the second payload's
    name was taken by the first, so the event could not be placed under any name. Kinds are told apart
    case-folded, and the saved names differ in more than case."""
    from inspector.commands.subscribe import save

    written = save(_event(["Heat", "heat"]), tmp_path)
    names = [p.name for p in written]
    assert len({n.casefold() for n in names}) == 3, names
    assert sorted(p.read_bytes() for p in written[1:]) == [b"Heat", b"heat"]


def test_an_mqtt_payload_name_taken_gets_the_next_free_one(tmp_path):
    """Two orphan payloads (no header came) whose topics sanitise alike ('e/1' and 'e-1' both give 'e-1'): the
    second one's exclusive create failed and it was counted unsaved, its bytes dropped."""
    from inspector.commands.subscribe import MqttSaver

    saver = MqttSaver(tmp_path)
    saver.payload("b", "inspector/b/v1/defect/c/e-1/k", b"first")
    saver.payload("b", "inspector/b/v1/defect/c/e/1-k", b"second")
    saver.finish()
    assert saver.unsaved_payloads == 0, saver.take()
    assert sorted(p.read_bytes() for p in tmp_path.iterdir()) == [b"first", b"second"]
