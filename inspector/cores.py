"""CPU cores this process may use, and thread counts held to them.

A thread count a config accepts (``train.threads`` up to 4096, ``model.threads`` up to 1024, ``predict
--threads``) is sized for the largest machine; on a smaller one the excess only slows a run down. ONNX Runtime's
intra-op threads and torch's OpenMP threads meet on a barrier after every operator, and each barrier waits for
the threads the kernel has descheduled: ``train.threads 4096`` on 2 cores turned a 13 s one-epoch run into more
than 120 s, ``model.threads 1024`` made ``run --check`` take 139 s. More threads than cores never runs faster.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def capped_threads(value: int | None, key: str) -> int | None:
    """``value`` (a thread count; None or 0: the library's default) at most the usable cores.

    A value above them is said once in a warning naming ``key`` (the setting, e.g. ``train.threads``)."""
    cores = usable_cores()
    if not value or value <= cores:
        return value
    log.warning("%s: %d exceeds the %d usable core(s) of this machine; using %d", key, value, cores, cores)
    return cores
