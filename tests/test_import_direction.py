"""The package's import direction (docs/ARCHITECTURE.md), checked on the source with ``ast``.

    commands → {training, deploy, evaluation, pipeline} → {models, backends} → artifacts → contract/config/errors/data

Every ``import inspector.…`` counts, at module level or inside a function (a
function-level import hides an edge, it does not remove it). The few edges
that go against the direction are listed with their reason in ``EXCEPTIONS``;
the list may only shrink.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "inspector"

# package (first name below inspector) → layer; a package imports lower layers only, never a higher
# one, and a sibling in layers 1-3 only when listed in SIBLINGS (layers 0 and 4 are each one unit).
LAYERS = {
    "": 0, "contract": 0, "config": 0, "errors": 0, "data": 0, "visual": 0, "events": 0, "interrupts": 0,
    "lifecycle": 0, "testing": 0, "percentile": 0, "redact": 0, "native_output": 0, "textline": 0, "outputs": 0, "loss": 0,
    "mounts": 0, "leftovers": 0, "folder_lock": 0, "silence": 0, "cores": 0, "throttle": 0,
    "artifacts": 1,
    "models": 2, "backends": 2,
    "training": 3, "deploy": 3, "evaluation": 3, "pipeline": 3, "integrations": 3, "client": 3,
    "commands": 4, "cli": 4, "__main__": 4,
}
# Sibling edges allowed one way only: the integrations plug into the daemon (pipeline.extensions) and read
# its state; the pipeline never imports them.
SIBLINGS = {("integrations", "pipeline")}
# Edges against the direction, with why they remain (see docs/ARCHITECTURE.md, "Known exceptions").
EXCEPTIONS = {
    # The torch backend runs the trained model itself: it rebuilds it from the checkpoint (models.checkpoint).
    ("inspector.backends.torch_eager", "inspector.models.checkpoint"),
}
# Packages that never import training: the checkpoint format and the run config are artifacts,
# rebuilding a model from them is models.checkpoint (docs/ARCHITECTURE.md).
NEVER_TRAINING = ("deploy", "backends", "evaluation", "pipeline", "models", "artifacts")
# Module cycles left; the list may only shrink.
KNOWN_CYCLES: list[set[str]] = []
PIPELINE_NEVER = ("models", "training", "deploy")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("inspector",) + path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "inspector":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in ("inspector", "torch"))
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {t for t in _imports(p) if t in mods or t == "torch"} - {m} for m, p in mods.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} <= set(LAYERS), "add the new package to LAYERS (and ARCHITECTURE.md)"


def _wrong_edges(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        src = _package(module)
        for target in targets - {"torch"}:
            dst = _package(target)
            if src == dst or (module, target) in EXCEPTIONS or (src, dst) in SIBLINGS:
                continue
            lower = LAYERS[dst] < LAYERS[src] or LAYERS[dst] == LAYERS[src] in (0, 4)  # base and entry points: one unit
            if not lower:
                wrong.append(f"{module} → {target}")
    return sorted(wrong)


def test_imports_follow_the_direction():
    wrong = _wrong_edges(_graph())
    assert not wrong, "imports against the direction:\n" + "\n".join(wrong)


def test_exceptions_are_still_needed():
    graph = _graph()
    stale = [f"{a} → {b}" for a, b in EXCEPTIONS if b not in graph.get(a, set())]
    assert not stale, f"remove from EXCEPTIONS (the edge is gone): {stale}"


def test_pipeline_never_imports_models_training_deploy_or_torch():
    bad = [f"{m} → {t}" for m, ts in _graph().items() if _package(m) == "pipeline"
           for t in ts if t == "torch" or _package(t) in PIPELINE_NEVER]
    assert not bad, bad
    code = ("import sys, inspector.pipeline.daemon, inspector.cli; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('inspector.models', "
            "'inspector.training', 'inspector.deploy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"loaded by the daemon: {out}"


def _training_edges(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} → {t}" for m, ts in graph.items() if _package(m) in NEVER_TRAINING
                  for t in ts if _package(t) == "training")


def test_deploy_and_backends_never_import_training():
    bad = _training_edges(_graph())
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, 10_000))
    try:  # restored: a raised limit leaked into later tests (deeply nested JSON parsed where it must not)
        for v in graph:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(before)
    return found


def test_no_new_import_cycle():
    graph = {m: {t for t in ts if t != "torch"} for m, ts in _graph().items()}
    cycles = _cycles(graph)
    new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"
    assert all(c in cycles for c in KNOWN_CYCLES), "a known cycle is gone: remove it from KNOWN_CYCLES"


def _package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package → packages it imports (inspector.pipeline.daemon → "pipeline"), self-edges dropped."""
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        packages[_package(module)].update(_package(t) for t in targets if t != "torch")
    return {p: ts - {p} for p, ts in packages.items()}


def test_no_cycle_between_packages():
    """Each package-level dependency points one way (e.g. integrations → pipeline, never back)."""
    cycles = _cycles(_package_graph(_graph()))
    assert not cycles, f"import cycles between packages: {[sorted(c) for c in cycles]}"


def test_the_checker_sees_a_wrong_edge_and_a_cycle():
    graph = _graph()
    graph["inspector.models.registry"] = graph["inspector.models.registry"] | {"inspector.training.loop"}
    assert _wrong_edges(graph) == ["inspector.models.registry → inspector.training.loop"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    graph = _graph()
    graph["inspector.deploy.export"] = graph["inspector.deploy.export"] | {"inspector.training.checkpoint"}
    assert _training_edges(graph) == ["inspector.deploy.export → inspector.training.checkpoint"]
    graph = _graph()
    graph["inspector.pipeline.sources"] = graph["inspector.pipeline.sources"] | {"inspector.integrations.genicam"}
    assert _wrong_edges(graph) == ["inspector.pipeline.sources → inspector.integrations.genicam"]
    assert {"pipeline", "integrations"} in _cycles(_package_graph(graph))
