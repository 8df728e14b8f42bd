"""Torch eager backend: the trained model itself, the reference for parity tests.

``TorchEagerBackend(path)`` takes a training run folder, a checkpoint file, or an
exported ``.onnx`` whose sidecar names the checkpoint it came from (the file
must still be there and match the recorded sha256). It runs the model's eval
``forward`` on CPU under ``torch.inference_mode`` — the same uint8 NHWC RGB
input and (score, map) output as the exported graphs, so backends can be
compared image for image. Not for the daemon (DESIGN.md seam 4: the daemon
never imports torch).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from inspector.backends.base import Backend, InferenceResult, InputSpec
from inspector.cores import capped_threads
from inspector.errors import BackendError


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder / checkpoint as given, or the checkpoint an exported graph's sidecar names."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        if not path.exists():
            raise BackendError(f"{path}: run folder or checkpoint not found")
        return path
    from inspector.artifacts.model_card import read_sidecar, sha256_file, sidecar_path_for

    sidecar = read_sidecar(sidecar_path_for(path))
    training = sidecar.get("training") or {}
    checkpoint = training.get("checkpoint")
    if not checkpoint or not Path(checkpoint).is_file():
        raise BackendError(f"{path}: the torch backend needs the training run; its checkpoint "
                           f"{checkpoint or '(not recorded)'} is not here — pass the run folder instead")
    recorded = training.get("checkpoint_sha256")
    if recorded and sha256_file(checkpoint) != recorded:
        raise BackendError(f"{checkpoint}: checkpoint changed since {path.name} was exported (sha256 mismatch)")
    return Path(checkpoint)


class TorchEagerBackend(Backend):
    """A trained model in torch eager mode (CPU)."""

    name = "torch"
    precision = "fp32"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import torch

        from inspector.models.checkpoint import load_model

        self.path = Path(path)
        model, config, payload = load_model(resolve_checkpoint(self.path))
        if threads is not None:
            if threads < 1:
                raise BackendError(f"torch backend: threads must be ≥ 1, got {threads}")
            torch.set_num_threads(capped_threads(int(threads), "threads"))  # process-wide in torch; fine for a reference backend
        self.model = model.eval()
        self.config = config
        self.resize = config.data.resize
        self.bit_depth = config.data.bit_depth
        self.downscale = config.data.downscale  # an old checkpoint's: load_model fills what it predates
        self.checkpoint_path = Path(payload["path"])
        # its training data summary: the training images' sizes frames are checked against (it has no card)
        self.trained = payload.get("data")
        h, w = config.model.image_size
        self._spec = InputSpec(height=int(h), width=int(w), resize=self.resize, downscale=self.downscale,
                               bit_depth=self.bit_depth)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def _run(self, batch: np.ndarray) -> InferenceResult:
        import torch

        if self.model is None:
            raise BackendError(f"{self.path}: backend is closed")
        start = time.perf_counter()
        with torch.inference_mode():
            score, amap = self.model(torch.from_numpy(np.ascontiguousarray(batch)))
        compute_ms = (time.perf_counter() - start) * 1e3
        return InferenceResult(scores=score.float().numpy(), maps=amap.float().numpy(),
                               timings_ms={"compute": compute_ms})

    def close(self) -> None:
        self.model = None

    def __repr__(self) -> str:
        return f"TorchEagerBackend({str(self.path)!r})"
