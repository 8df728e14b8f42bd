"""Whether the daemon's frame queues, filled to their configured sizes, fit in the machine's memory.

Every queue between a camera and the disk holds whole decoded frames: the camera's own (``batching.queue_size``),
the publisher's (``publish.queue_size``, frames of every camera) and the recorder's (``recorder.queue_size``,
defects, when it is on). Each is bounded by a count of frames, which ``run --check`` takes up to 10 000, 1 000 000
and 100 000: one 1080p BGR frame is 6.2 MB, so a disk that stalls behind a full recorder queue of 100 000 such
frames asks for 620 GB, and the kernel's OOM killer ends the daemon (every queued defect lost with it) long
before the queue's own full-drop rule, which counts and tells, ever applies. The frame's size is known only when a
camera delivers one, so the check runs then (:class:`~inspector.pipeline.capture.CaptureWorker`, at its first
frame and at each size change) and at ``run --check`` for sources read without waiting on a camera.
"""

from __future__ import annotations

import os

# Queues may hold at most this share of physical memory before a warning: the model, its runtime and the
# frames in flight need the rest (an edge box shares its memory with the GPU: Jetson's is unified).
MEMORY_SHARE = 0.5


def physical_memory_bytes() -> int | None:
    """Installed memory in bytes (POSIX sysconf: ``_SC_PHYS_PAGES`` × ``_SC_PAGE_SIZE``), None where unknown."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def queued_frames_at_most(camera_queue: int, publish_queue: int, recorder_queue: int | None) -> int:
    """Frames of one camera the queues can hold at once: its own queue, the publisher's (which its frames alone
    can fill) and the recorder's (``None``: the recorder is off)."""
    return camera_queue + publish_queue + (recorder_queue or 0)


def queue_memory_warning(camera: str, frame_bytes: int, frames: int, settings: str,
                         memory: int | None = None) -> str | None:
    """One line when ``frames`` frames of ``frame_bytes`` bytes exceed :data:`MEMORY_SHARE` of ``memory`` (bytes;
    None: :func:`physical_memory_bytes`), naming ``camera``, the sizes and the ``settings`` to lower; else None."""
    memory = physical_memory_bytes() if memory is None else memory
    need = frames * frame_bytes
    if memory is None or need <= MEMORY_SHARE * memory:
        return None
    fits = max(1, int(MEMORY_SHARE * memory // max(frame_bytes, 1)))
    return (f"camera '{camera}': its frames ({frame_bytes / 1e6:.1f} MB each) fill the daemon's queues with "
            f"{frames} of them at most ({settings}): {need / 1e9:.1f} GB against this machine's "
            f"{memory / 1e9:.1f} GB of memory. A stalled disk or a slow publisher would run it out of memory and "
            f"the kernel would end the daemon, queued defects with it; lower them to hold ≤ {fits} frames in all")
