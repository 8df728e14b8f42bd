"""Inference backends behind one small interface (see :mod:`inspector.backends.base`).

:func:`load_backend` picks the backend from the file type or an explicit name and
imports it lazily, so the daemon never pays for (or needs) torch or TensorRT
unless it runs them.
"""

from __future__ import annotations

from pathlib import Path

from inspector.backends.base import Backend, InferenceResult, InputSpec, check_batch
from inspector.config import suggest
from inspector.errors import BackendError

BACKENDS = ("onnxruntime", "tensorrt", "torch")
from inspector.artifacts import ENGINE_SUFFIXES  # noqa: E402

__all__ = ["Backend", "InferenceResult", "InputSpec", "check_batch", "load_backend", "BACKENDS"]


def backend_for_path(path: str | Path) -> str:
    """The default backend for a model file: engines → tensorrt, ONNX → onnxruntime."""
    suffix = Path(path).suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    if suffix == ".onnx":
        return "onnxruntime"
    if Path(path).is_dir() or suffix in (".pt", ".ckpt"):
        return "torch"
    raise BackendError(f"{path}: unknown model file type '{suffix}' (expected .onnx, .plan or a training run folder)")


# setting (a daemon config's model.* key, a command's flag) → the backends whose constructor reads it
# (OnnxRuntimeBackend, TorchEagerBackend, TensorRTBackend); given for another backend it does nothing
READ_BY: dict[str, tuple[str, ...]] = {
    "threads": ("onnxruntime", "torch"),
    "spinning": ("onnxruntime",), "spin_us": ("onnxruntime",), "spin_after_run": ("onnxruntime",),
    "replicas": ("onnxruntime",),
    "cuda": ("tensorrt",), "cuda_graphs": ("tensorrt",), "device": ("tensorrt",),
}


def backend_name(path: str | Path, backend: str = "auto") -> str:
    """The backend that loads ``path``: ``backend``, or the one its file type names when ``backend`` is 'auto'
    (:func:`backend_for_path`; BackendError, one line, for an unknown file type)."""
    return backend_for_path(path) if backend == "auto" else backend


def load_backend(path: str | Path, backend: str = "auto", **options) -> Backend:
    """Load ``path`` on ``backend`` ('auto', 'onnxruntime', 'tensorrt' or 'torch')."""
    name = backend_name(path, backend)
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{name}'{suggest(name, BACKENDS)}; choose one of {list(BACKENDS)}")
    if name == "onnxruntime":
        from inspector.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)
    if name == "tensorrt":
        from inspector.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path, **options)
    from inspector.backends.torch_eager import TorchEagerBackend

    return TorchEagerBackend(path, **options)
