"""The publisher's inbox: batches of frames (lists), bounded by the frames they hold, not by how many batches.

The postprocess thread hands the publisher one list per inference batch, and drops the list when the inbox is full
(it never waits: a live camera's frames must not age behind a slow publisher). ``publish.queue_size`` counts frames;
a queue of ``queue_size / max_batch`` lists assumed every batch full, so at ``batching.max_batch`` 1024 (its top) it
held one list, of one frame or a few, and a publisher a moment slower than inspection dropped an offline camera's
defects though the setting said 1024 frames wait.
"""

from __future__ import annotations

import queue


class FrameQueue(queue.Queue):
    """A :class:`queue.Queue` whose size (``qsize``, ``full``, what ``maxsize`` bounds) counts the frames of the lists
    it holds; any other item (a sentinel: END, a wake-up) counts one. A list is taken while fewer than ``maxsize``
    frames are queued, so the bound may be passed by one batch (at most ``batching.max_batch - 1`` frames)."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self._frames = 0

    def _qsize(self) -> int:
        return self._frames

    def _put(self, item) -> None:
        super()._put(item)
        self._frames += _weight(item)

    def _get(self):
        item = super()._get()
        self._frames -= _weight(item)
        return item


def _weight(item) -> int:
    return max(1, len(item)) if isinstance(item, list) else 1
