"""One ``inspector subscribe`` run against a real publisher, for the subscriber tests."""

from __future__ import annotations

import threading
import time

from inspector.pipeline.config import PublishSection
from inspector.pipeline.publish import Publisher


def subscribe_session(endpoint: str, events: list, *args: str, topics: tuple = ("v1/defect",),
                      count: int | None = None) -> int:
    """Run ``inspector subscribe ENDPOINT --topic v1/defect`` (or ``topics``) in this process while a real
    publisher on ``endpoint`` sends ``events`` once it has subscribed; the command waits for ``count`` events
    (default: as many as are defects; stats are heard quietly). Returns the command's exit code; ``args`` are
    added to its command line."""
    from inspector.cli import main

    pub = Publisher(PublishSection(endpoint=endpoint))

    def publish() -> None:
        assert pub.wait_for_subscription(10.0)
        time.sleep(0.2)
        for event in events:
            pub.send(event)

    sender = threading.Thread(target=publish)
    sender.start()
    try:
        if count is None:
            count = sum(event.type == "defect" for event in events)
        return main(["subscribe", endpoint, *(a for t in topics for a in ("--topic", t)), "--count", str(count),
                     "--timeout", "10", *args])
    finally:
        sender.join()
        pub.close()
