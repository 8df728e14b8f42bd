"""No function in inspector/ runs over 60 lines (def to last line, docstring included): split it into named
steps. An exception goes in ``ALLOWED`` with its reason; the list may only shrink."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "inspector"
MAX_LINES = 60
# "path/relative/to/inspector.py:qualified.name" → why it stays long
ALLOWED: dict[str, str] = {}


def long_functions(source: str, filename: str = "<source>") -> dict[str, int]:
    """``{"Class.method": lines}`` of the functions in ``source`` longer than MAX_LINES."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > MAX_LINES:
                        found[name] = lines
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source, filename), "")
    return found


def test_no_function_over_60_lines():
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name, lines in long_functions(path.read_text(), str(path)).items():
            found[f"{rel}:{name}"] = lines
    new = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not new, f"functions over {MAX_LINES} lines (split them into named steps): {new}"
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"no longer over {MAX_LINES} lines: remove from ALLOWED: {stale}"


def test_the_check_sees_a_long_function():
    body = [f"        x{i} = {i}" for i in range(MAX_LINES)]
    source = "\n".join(["class A:", "    def long(self):", *body, "        return 0",
                         "def short():", "    return 1", ""])
    assert long_functions(source) == {"A.long": MAX_LINES + 2}
