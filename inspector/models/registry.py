"""Model registry: name → entry (config class, builder, training defaults).

Each model folder declares its :class:`~inspector.models.entry.ModelEntry` as
``ENTRY``; the CLI, training, export and tests iterate over this table rather
than naming models. Entries are imported eagerly: a model whose code fails to
import is an ImportError at start-up, never an "unknown model".
"""

from __future__ import annotations

from inspector.config import from_dict, suggest
from inspector.errors import ConfigError
from inspector.models.ast.model import ENTRY as AST
from inspector.models.base import AnomalyModel, ModelConfig
from inspector.models.entry import ModelEntry
from inspector.models.glance.model import ENTRY as GLANCE
from inspector.models.meta_comparer.model import ENTRY as META_COMPARER
from inspector.models.feature_imitation.model import ENTRY as FEATURE_IMITATION
from inspector.models.mixed_teacher.model import ENTRY as MIXED_TEACHER
from inspector.models.reduced_student.model import ENTRY as REDUCED_STUDENT
from inspector.models.stfpm.model import ENTRY as STFPM

__all__ = ["ModelEntry", "model_names", "get_entry", "parse_model_config", "build_model"]

ENTRIES: dict[str, ModelEntry] = {
    "stfpm": STFPM,
    "reduced_student": REDUCED_STUDENT,
    "mixed_teacher": MIXED_TEACHER,
    "ast": AST,
    "glance": GLANCE,
    "meta_comparer": META_COMPARER,
    "feature_imitation": FEATURE_IMITATION,
}


def model_names() -> tuple[str, ...]:
    return tuple(ENTRIES)


def get_entry(name: str) -> ModelEntry:
    if name not in ENTRIES:
        raise ConfigError(f"model.name: unknown model '{str(name)[:60]}'{suggest(name, ENTRIES)}; "
                          f"known: {sorted(ENTRIES)}")
    return ENTRIES[name]


def parse_model_config(data: dict | None, where: str = "model") -> ModelConfig:
    """Build the right config class for ``data['name']`` (default: reduced_student)."""
    data = dict(data or {})
    name = data.setdefault("name", "reduced_student")
    return from_dict(get_entry(name).config_cls, data, where=where)


def build_model(config: ModelConfig) -> AnomalyModel:
    """Construct the model described by ``config`` (teacher weights resolved)."""
    return get_entry(config.name).build(config)
