"""The backend flags of the commands that load a model file (predict, bench, calibrate, verify): which backend
reads each, and the one rule for a flag the chosen backend does not read.

Rule (the daemon config's :func:`inspector.config.refuse_unread`, on the command line): a flag given with a value
other than its default that the backend loading the model never reads is refused in one line naming it, exit 2.
Ignored, ``predict x.plan --threads 4`` ended in a TypeError traceback, and ``bench x.onnx --cuda-graphs``,
``calibrate x.plan --threads 4`` and ``verify x.onnx --cuda pycuda`` measured or wrote as if the flag had been
taken. A default written out (``--device 0``, ``--cuda cuda-python``) is accepted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.errors import ConfigError

# option dest → the backends whose constructor reads it (inspector.backends: OnnxRuntimeBackend(threads),
# TorchEagerBackend(threads), TensorRTBackend(cuda, cuda_graphs, device))
READ_BY: dict[str, tuple[str, ...]] = {
    "threads": ("onnxruntime", "torch"),
    "cuda": ("tensorrt",),
    "cuda_graphs": ("tensorrt",),
    "device": ("tensorrt",),
}
# each flag's default, its one home: the parsers read them here (``default=DEFAULTS["cuda"]``)
DEFAULTS: dict[str, object] = {"threads": None, "cuda": "cuda-python", "cuda_graphs": False, "device": 0}


def backend_name(model: str | Path, backend: str) -> str:
    """The backend that loads ``model``: ``backend``, or the one its file type names when ``backend`` is 'auto'
    (:func:`inspector.backends.backend_for_path`; BackendError, one line, for an unknown file type)."""
    from inspector.backends import backend_for_path

    return backend_for_path(model) if backend == "auto" else backend


def backend_options(args: argparse.Namespace, model: str | Path, backend: str = "auto") -> dict:
    """The keyword options for :func:`inspector.backends.load_backend` that the backend loading ``model`` reads,
    from the flags of :data:`READ_BY` that ``args`` has (a flag left at None is left out: the backend's own
    default). ConfigError naming the flag for one given, not at its default, that this backend does not read.
    An unknown backend name is the loader's to refuse: nothing is refused for it here."""
    from inspector.backends import BACKENDS

    name = backend_name(model, backend)
    options = {}
    for dest, readers in READ_BY.items():
        if not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if name in readers:
            if value is not None:
                options[dest] = value
        elif name in BACKENDS and value != DEFAULTS[dest]:
            flag = "--" + dest.replace("_", "-")
            raise ConfigError(f"{flag}: does nothing with the {name} backend ({model}); only "
                              f"{' and '.join(readers)} read{'s' if len(readers) == 1 else ''} it; leave it out")
    return options
