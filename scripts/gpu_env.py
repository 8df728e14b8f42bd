"""Environment report for scripts/gpu_check.sh: GPU, driver, CUDA, TensorRT and package versions as JSON.

Usage: ``python scripts/gpu_env.py OUT.json [--cuda-only]``. Prints one line per
requirement (``ok``/``MISSING``) and exits 0 when everything the check needs is
here, 3 when something is missing (the report is written either way). Nothing
here needs a GPU: on a CPU machine it reports what is missing.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "cuda-python", "cuda-bindings", "pycuda", "onnxruntime",
            "onnxruntime-gpu", "onnx", "numpy", "torch", "inspector")


def driver_gpus() -> dict:
    """GPU count and driver version from libcuda itself (independent of cuda-python and TensorRT)."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return {"count": 0, "problem": f"no NVIDIA driver library ({exc})"}
    err = lib.cuInit(0)
    if err != 0:
        return {"count": 0, "problem": f"cuInit returned CUresult {err}"}
    count, version = ctypes.c_int(0), ctypes.c_int(0)
    lib.cuDeviceGetCount(ctypes.byref(count))
    lib.cuDriverGetVersion(ctypes.byref(version))
    return {"count": count.value, "driver_cuda_version": f"{version.value // 1000}.{version.value % 1000 // 10}"}


def nvidia_smi() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    query = "--query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm"
    done = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or done.stderr.strip()


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def cuda_runtime() -> dict:
    try:
        from cuda.bindings import runtime as rt
    except ImportError as exc:
        return {"problem": f"cuda.bindings not importable ({exc})"}
    err, runtime_version = rt.cudaRuntimeGetVersion()
    return {"runtime_version": runtime_version if int(err) == 0 else f"error {err}",
            "device_count": rt.cudaGetDeviceCount()[1] if int(rt.cudaGetDeviceCount()[0]) == 0 else 0}


def requirements(report: dict, cuda_only: bool) -> list[tuple[str, bool, str]]:
    have = report["packages"]
    needs = [("NVIDIA GPU and driver", report["driver"]["count"] > 0, "an NVIDIA GPU with its driver"),
             ("cuda-bindings", bool(have["cuda-bindings"]), 'pip install -e ".[dev]"'),
             ("pytest", importlib.util.find_spec("pytest") is not None, 'pip install -e ".[dev]"')]
    if not cuda_only:
        needs += [("tensorrt", importlib.util.find_spec("tensorrt") is not None, 'pip install -e ".[tensorrt]"'),
                  ("torch (trains and exports the reduced student)", bool(have["torch"]),
                   "pip install torch, then -e \".[train]\"; or pass --export BASE")]
    return needs


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: python scripts/gpu_env.py OUT.json [--cuda-only] [--have-export]", file=sys.stderr)
        return 2
    cuda_only, have_export = "--cuda-only" in argv, "--have-export" in argv
    report = {"python": platform.python_version(), "platform": platform.platform(), "driver": driver_gpus(),
              "nvidia_smi": nvidia_smi(), "packages": versions(), "cuda_runtime": cuda_runtime()}
    needs = requirements(report, cuda_only)
    if have_export:
        needs = [n for n in needs if not n[0].startswith("torch")]
    report["requirements"] = {name: ok for name, ok, _ in needs}
    Path(argv[0]).parent.mkdir(parents=True, exist_ok=True)
    Path(argv[0]).write_text(json.dumps(report, indent=2) + "\n")
    print(f"GPUs: {report['driver'].get('count')} {report['nvidia_smi'] or report['driver'].get('problem', '')}")
    for name, ok, how in needs:
        print(f"  {'ok     ' if ok else 'MISSING'} {name}" + ("" if ok else f"  ({how})"))
    return 0 if all(ok for _, ok, _ in needs) else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
