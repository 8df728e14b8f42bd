"""ZMQ_MAXMSGSIZE caps each part of a message, not the message: a publisher could feed a subscriber
(``--max-message-mib``) ``MAX_PARTS`` parts of that size each as one event (1.3 GiB at the default 128 MiB), all
copied into Python and decoded as 8 payloads. Now one message's payloads hold at most a daemon's two payloads of
that size; a larger one is skipped as malformed, told through the throttle, and the stream goes on.
Real ZeroMQ sockets (the daemon's Publisher, a PUB socket) and the real subscriber and command."""

from __future__ import annotations

import subprocess
import sys
import time

from inspector.client import Subscriber, payload_bytes_at_most
from inspector.events import InspectionEvent, Payload, StatusEvent, encode, utc_iso
from inspector.pipeline.config import PublishSection
from inspector.pipeline.publish import Publisher

PART = 2**20  # each payload: one part of 1 MiB, what --max-message-mib 1 takes
CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]


def _defect(seq: int, payloads: int) -> InspectionEvent:
    return InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r-c-{seq}", decision="NG",
                           score=1.0, threshold=0.5, capture={}, latency_ms={}, model={}, run_id="r",
                           payloads=[Payload(f"p{i}", "png", bytes(PART), [1024, 1024]) for i in range(payloads)])


def _status(seq: int) -> StatusEvent:
    return StatusEvent(camera="c", seq=seq, state="online", previous=None, reason="", time_utc=utc_iso())


def test_the_payload_budget_is_a_daemons_two_payloads_of_the_part_cap():
    assert payload_bytes_at_most(PART) == 2 * PART


def test_a_message_of_many_parts_each_under_the_cap_is_dropped_and_the_next_good_one_arrives(tmp_path):
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/ev.sock"))
    with Subscriber(pub.endpoint, ["v1/"], max_message_bytes=PART) as sub:
        assert pub.wait_for_subscription(5.0)
        time.sleep(0.05)
        pub.socket.send_multipart(encode(_defect(0, payloads=8)))  # 8 MiB in parts of 1 MiB: each under the cap
        pub.socket.send_multipart(encode(_defect(1, payloads=2)))  # a daemon's largest: two payloads at the cap
        pub.socket.send_multipart(encode(_status(0)))
        got = [sub.recv(timeout=10), sub.recv(timeout=10)]
        notices = sub.notices()
    pub.close()
    assert got[0] is not None and got[0].seq == 1 and len(got[0].payloads) == 2, got  # was seq 0 with 8 payloads
    assert got[1] is not None and got[1].type == "status", got
    assert sub.malformed == 1, notices
    told = [n for n in notices if "bytes in all" in n]
    assert len(told) == 1 and "8 payloads of 8,388,608 bytes" in told[0] and "2 payloads of --max-message-mib 1" in told[0], notices


def test_a_flood_of_oversized_messages_is_told_in_a_few_lines_and_counted(tmp_path):
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/ev.sock"))
    with Subscriber(pub.endpoint, ["v1/"], max_message_bytes=PART) as sub:
        assert pub.wait_for_subscription(5.0)
        time.sleep(0.05)
        for seq in range(30):
            pub.socket.send_multipart(encode(_defect(seq, payloads=3)))  # 3 MiB: one payload more than a daemon's two
        pub.socket.send_multipart(encode(_status(0)))
        event = sub.recv(timeout=20)
        notices = sub.notices()
    pub.close()
    assert event is not None and event.type == "status"
    assert sub.malformed == 30
    assert len([n for n in notices if "bytes in all" in n]) <= 10, notices


def test_subscribe_prints_the_good_event_after_an_oversized_one(tmp_path):
    import zmq

    endpoint = f"ipc://{tmp_path}/ev.sock"
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.bind(endpoint)
    consumer = subprocess.Popen([*CLI, "subscribe", endpoint, "--max-message-mib", "1", "--count", "1",
                                 "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the subscriber connects and subscribes (a PUB sends to nobody before)
        for frames in (encode(_defect(0, payloads=6)), encode(_defect(1, payloads=1))):
            sock.send_multipart(frames)
        out, err = consumer.communicate(timeout=60)
    finally:
        consumer.kill() if consumer.poll() is None else None
        sock.close(0)
    assert consumer.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and "#1 " in lines[0], out
    assert "1 malformed message(s) skipped" in err and "6 payloads of 6,291,456 bytes in all" in err, err
