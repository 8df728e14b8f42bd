"""The pipeline's threads (threading.Thread subclasses) never reuse a name of threading.Thread's own.

threading.Thread keeps its state in private attributes and calls private methods on itself: a subclass
method or attribute of the same name replaces them. RecorderWorker._delete(files) (retention) took the place
of Thread._delete(), which CPython calls as a thread ends: every run with the recorder on printed a
TypeError traceback at its end, and the ended thread stayed listed in threading.enumerate().
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
import threading

import inspector
from inspector.pipeline.config import RecorderSection
from inspector.pipeline.recorder import RecorderWorker
from inspector.pipeline.telemetry import Counters

THREAD_NAMES = set(dir(threading.Thread)) | set(vars(threading.Thread()))
OVERRIDABLE = {"__init__", "run", "__doc__", "__module__", "__qualname__", "__annotations__", "__dict__",
               "__weakref__", "__firstlineno__", "__static_attributes__"}


def _thread_classes() -> set[type]:
    for info in pkgutil.walk_packages(inspector.__path__, "inspector."):
        if not info.name.endswith("__main__"):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional extra not installed
                pass
    found, todo = set(), [threading.Thread]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("inspector.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def _own_names(cls: type) -> set[str]:
    """The class's own attributes and every ``self.<name> = …`` its methods assign."""
    names = set(vars(cls))
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(cls)))):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                names.add(t.attr)
    return names - OVERRIDABLE


def test_no_thread_subclass_shadows_a_thread_name():
    classes = _thread_classes()
    assert any(c.__name__ == "RecorderWorker" for c in classes)
    clashes = {f"{c.__module__}.{c.__name__}": sorted(_own_names(c) & THREAD_NAMES) for c in classes}
    assert not {k: v for k, v in clashes.items() if v}


def test_an_ended_recorder_thread_is_gone(tmp_path):
    worker = RecorderWorker(RecorderSection(enabled=True, dir=str(tmp_path), min_free_bytes=0), threading.Event(),
                            Counters(), "abcdef123456", "2026-01-01T00:00:00Z", cameras=("c",))
    worker.start()
    worker.finish()
    worker.join(5)
    assert not worker.is_alive() and worker not in threading.enumerate()
