"""Where training runs: device choice, mixed precision, memory format and data placement.

On CPU, ``precision: auto`` trains in bf16 autocast where the CPU multiplies bf16 in
hardware (:func:`cpu_has_native_bf16`; measured 1.5x faster per epoch on a Zen 4 core
with the same validation loss, benchmarks/README.md "Session 23") and in plain FP32
elsewhere, where oneDNN would only emulate bf16. Weights, optimizer state, the cached
teacher targets and everything fitted after training stay FP32. On CUDA
(``train.device: auto`` when ``torch.cuda.is_available()``, or ``cuda``):

- mixed precision with ``torch.autocast`` — bf16 where the GPU supports it,
  else fp16 with a ``GradScaler`` (PyTorch AMP recipe: fp16 gradients underflow
  without loss scaling; bf16 has fp32's exponent range and needs none);
- the networks in channels-last memory format (NHWC), which Tensor-Core
  convolutions use without layout transposes;
- the decoded images and cached teacher targets kept on the GPU when they fit
  in a fraction of its free memory, else in pinned host memory with
  ``non_blocking`` copies per batch.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from inspector.errors import ConfigError
from inspector.training.config import TrainConfig

# Data may take this fraction of the GPU's free memory; the rest is for activations and gradients.
DATA_MEMORY_FRACTION = 0.5
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(requested: str) -> torch.device:
    """``auto`` → cuda when ``torch.cuda.is_available()`` else cpu; ``cuda`` without CUDA → ConfigError."""
    if requested == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"train.device: 'cuda' requested but torch sees no CUDA device (torch {torch.__version__}, "
                          f"{build}); use --device cpu or auto")
    return torch.device("cuda") if available else torch.device("cpu")


# /proc/cpuinfo flags of hardware bf16 dot products: x86 AVX512-BF16 (Cooper Lake, Zen 4 and later) and AMX-BF16
# (Sapphire Rapids and later); Arm's BF16 extension (Armv8.6-A: Neoverse V1/V2, Grace) is 'bf16' in 'Features'.
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes bf16 in hardware and torch's oneDNN can use it (Linux ``/proc/cpuinfo``).

    False when the file is unreadable (other systems), on CPUs without those flags (oneDNN
    would emulate bf16 there, slower than FP32) and on torch builds without oneDNN.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return bool(_NATIVE_BF16_FLAGS & set(value.split()))
    return False


def resolve_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` on ``device``; None means plain FP32.

    CPU: ``auto`` is bf16 where :func:`cpu_has_native_bf16`, else FP32; ``bf16`` is bf16 even
    where it is emulated; ``fp16`` raises ConfigError (CPU autocast has no fp16 loss scaling).
    """
    if device.type != "cuda":
        if requested == "fp16":
            raise ConfigError(f"train.precision: 'fp16' needs a CUDA device; on CPU use bf16, fp32 or auto "
                              f"({platform.machine()} CPU, native bf16: {'yes' if cpu_has_native_bf16() else 'no'})")
        if requested == "bf16" or (requested == "auto" and cpu_has_native_bf16()):
            return torch.bfloat16
        return None
    if requested == "fp32":
        return None
    if requested == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return _DTYPES[requested]


@dataclass
class TrainingDevice:
    """The device a run trains on and how: move data/model there, run the step in its precision."""

    device: torch.device
    amp_dtype: torch.dtype | None = None  # None: FP32
    channels_last: bool = False

    def __post_init__(self) -> None:
        fp16 = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "TrainingDevice":
        device = resolve_device(cfg.device)
        on_cuda = device.type == "cuda"
        return cls(device, resolve_precision(cfg.precision, device), cfg.channels_last and on_cuda)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> dict:
        """For summary.json: what the run used."""
        info = {"device": str(self.device), "precision": _name(self.amp_dtype), "channels_last": self.channels_last}
        if self.is_cuda:
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device (channels-last when set); returns it."""
        if self.is_cuda:
            torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest conv algorithms once
        if self.channels_last:
            return model.to(self.device, memory_format=torch.channels_last)
        return model.to(self.device)

    def autocast(self):
        """Context for forward passes and losses: autocast on CUDA with AMP, else nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, non_blocking=True)

    def place(self, tensor: torch.Tensor, resident: bool) -> torch.Tensor:
        """Where a whole data array lives: on the device when ``resident``, else in (pinned) host memory."""
        if resident:
            return tensor.to(self.device)
        return tensor.pin_memory() if self.is_cuda else tensor

    def fits(self, nbytes: int) -> bool:
        """True when ``nbytes`` of data may stay on the device (always False on CPU: nothing to move)."""
        if not self.is_cuda:
            return False
        free, _ = torch.cuda.mem_get_info(self.device)
        return nbytes <= DATA_MEMORY_FRACTION * free

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """loss.backward() + optimizer.step(), with fp16 loss scaling when AMP runs in fp16."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)  # skips the step when scaled gradients overflowed
        self.scaler.update()


def _name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
