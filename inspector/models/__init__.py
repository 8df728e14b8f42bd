"""Anomaly models, registered by name (see :mod:`inspector.models.registry`)."""

from __future__ import annotations

from pathlib import Path


def model_package_names() -> tuple[str, ...]:
    """Names of the model packages (``inspector/models/<name>/model.py``), found without importing them.

    The registry (:func:`inspector.models.registry.model_names`) is the authority, but it imports
    torch; ``--help`` texts use this instead so they print in well under a second. A test keeps
    the two equal.
    """
    # Files, not importlib.util.find_spec: finding a sub-module imports its package (and torch).
    return tuple(sorted(p.parent.name for p in Path(__file__).parent.glob("*/model.py")
                        if (p.parent / "__init__.py").is_file()))
