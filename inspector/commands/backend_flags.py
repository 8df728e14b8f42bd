"""The backend flags of the commands that load a model file (predict, bench, calibrate, verify): their defaults,
and the one rule for a flag the chosen backend does not read (which backend reads which setting:
:data:`inspector.backends.READ_BY`).

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

# each flag's default, its one home: the parsers read them here (``default=DEFAULTS["cuda"]``)
DEFAULTS: dict[str, object] = {"threads": None, "cuda": "cuda-python", "cuda_graphs": False, "device": 0}


def backend_options(args: argparse.Namespace, model: str | Path, backend: str = "auto") -> dict:
    """The keyword options for :func:`inspector.backends.load_backend` that the backend loading ``model`` reads,
    from the flags of :data:`inspector.backends.READ_BY` that ``args`` has (a flag left at None is left out: the
    backend's own default). ConfigError naming the flag for one given, not at its default, that this backend does not read.
    An unknown backend name is the loader's to refuse: nothing is refused for it here."""
    from inspector.backends import BACKENDS, READ_BY, backend_name

    name = backend_name(model, backend)
    options = {}
    for dest, readers in READ_BY.items():
        if dest not in DEFAULTS or not hasattr(args, dest):  # a daemon-config setting no command has as a flag
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
