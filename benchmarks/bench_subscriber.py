"""CPU time per event of :meth:`inspector.client.Subscriber.recv` on the real objects (a consumer's hot path).

A daemon's :class:`~inspector.pipeline.publish.Publisher` on ``ipc://`` sends ``--events`` defect events, each with
two payloads of ``--payload-kib`` KiB (a thumbnail and an anomaly map), to a real subscriber of ``v1/``; the
subscriber's thread CPU time (``time.thread_time``) over its ``recv`` calls is divided by the events received.
Why: Session 48 reads each message part in libzmq's buffer (``copy=False``) and copies it only when kept, to bound
what a rogue multipart message makes the subscriber copy; a zero-copy ``Frame`` costs more per part than a plain
``recv`` for small parts.

    python benchmarks/bench_subscriber.py                                # this checkout
    python benchmarks/bench_subscriber.py --against /path/to/old/tree    # and another, in alternating rounds

Each checkout runs in its own process (``--against`` sets its PYTHONPATH); the median over ``--rounds`` of the
per-event microseconds is reported. JSON to ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402


def one_round(events: int, payload_kib: int) -> dict:
    """Send ``events`` events and time the subscriber's recv calls in this process: {"us_per_event", "received"}."""
    import threading

    from inspector.client import Subscriber
    from inspector.events import InspectionEvent, Payload, encode
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    blob = bytes(payload_kib * 1024)
    with tempfile.TemporaryDirectory() as tmp:
        pub = Publisher(PublishSection(endpoint=f"ipc://{tmp}/ev.sock"))
        with Subscriber(pub.endpoint, ["v1/"]) as sub:
            assert pub.wait_for_subscription(5.0)
            time.sleep(0.05)
            frames = [encode(InspectionEvent(
                type="defect", camera="c", seq=i, frame_id=i, event_id=f"r-c-{i}", decision="NG", score=1.0,
                threshold=0.5, capture={}, latency_ms={}, model={}, run_id="r",
                payloads=[Payload(n, "png", blob, [64, 64]) for n in ("thumbnail", "anomaly_map")]))
                for i in range(events)]
            sender = threading.Thread(target=lambda: [pub.socket.send_multipart(f) for f in frames])
            received, cpu = 0, 0.0
            sender.start()
            while received < events:
                t = time.thread_time()
                event = sub.recv(timeout=5)
                cpu += time.thread_time() - t
                if event is None:
                    break
                received += 1
            sender.join()
        pub.close()
    return {"us_per_event": cpu / max(received, 1) * 1e6, "received": received}


def run_round(tree: Path, events: int, payload_kib: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, __file__, "--one-round", "--events", str(events), "--payload-kib",
                           str(payload_kib)], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", type=Path, default=None, help="another checkout's root, timed in alternation")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--payload-kib", type=int, default=4)
    ap.add_argument("--name", default="subscriber-cost")
    ap.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one_round:
        print(json.dumps(one_round(args.events, args.payload_kib)))
        return 0
    claim_result_or_exit(args.name)  # before the work: a user's file at the name is kept
    trees = {"this": HERE.parent, **({"against": args.against.resolve()} if args.against else {})}
    rounds: dict[str, list[dict]] = {label: [] for label in trees}
    for _ in range(args.rounds):
        for label, tree in trees.items():
            rounds[label].append(run_round(tree, args.events, args.payload_kib))
    results = {label: {"tree": str(trees[label]),
                       "us_per_event": round(statistics.median(r["us_per_event"] for r in rs), 1),
                       "received": [r["received"] for r in rs]} for label, rs in rounds.items()}
    settings = {"events": args.events, "payload_kib": args.payload_kib, "rounds": args.rounds}
    print(json.dumps(results, indent=1))
    write_result(args.name, {"settings": settings, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
