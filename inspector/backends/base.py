"""The backend interface shared by ONNX Runtime, TensorRT and torch eager.

A backend is loaded once, then called with uint8 image batches laid out as the
sidecar's input spec says (N, H, W, 3, RGB), and returns per-image scores and
anomaly maps. It declares its input/output spec and reports the timings of its
last call, so the daemon can fold them into its latency breakdown.
Lifecycle: construct (load) → ``infer`` many times → ``close``. A backend is
used from one thread only (the one that created it).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from inspector.contract import InputSpec  # noqa: F401  (re-exported: the spec backends declare)
from inspector.errors import BackendError


@dataclass
class InferenceResult:
    """Outputs of one batch: scores (N,) float32 and maps (N, 1, h, w) float32."""

    scores: np.ndarray
    maps: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class Backend(abc.ABC):
    """One loaded model on one runtime."""

    name: str = "backend"
    precision: str = "fp32"

    @property
    @abc.abstractmethod
    def input_spec(self) -> InputSpec:
        """The input this backend accepts."""

    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> InferenceResult:
        """Run a validated batch."""

    def infer(self, batch: np.ndarray) -> InferenceResult:
        """Score a uint8 batch (N, H, W, 3); raises BackendError on a bad input."""
        check_batch(batch, self.input_spec, self.name)
        return self._run(batch)

    def close(self) -> None:
        """Release runtime resources (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_batch(batch: np.ndarray, spec: InputSpec, where: str) -> None:
    """Raise a one-line BackendError if ``batch`` does not match ``spec``."""
    if not isinstance(batch, np.ndarray):
        raise BackendError(f"{where}: expected a numpy array, got {type(batch).__name__}")
    if batch.dtype != np.dtype(spec.dtype):
        raise BackendError(f"{where}: expected dtype {spec.dtype}, got {batch.dtype}")
    expected = (spec.height, spec.width, spec.channels)
    if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
        raise BackendError(
            f"{where}: expected a batch of shape (N, {spec.height}, {spec.width}, {spec.channels}) "
            f"{spec.color} {spec.layout}, got {tuple(batch.shape)}"
        )
    if batch.shape[0] < 1:
        raise BackendError(f"{where}: empty batch")
    if spec.max_batch is not None and batch.shape[0] > spec.max_batch:
        raise BackendError(f"{where}: batch of {batch.shape[0]} exceeds the maximum {spec.max_batch}")
