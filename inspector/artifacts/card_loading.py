"""The one loader of the model and engine cards: schema-validated, one-line ExportError."""

from __future__ import annotations

from typing import Any, TypeVar

from inspector.config import from_file_dict
from inspector.errors import ConfigError, ExportError

Card = TypeVar("Card")


def parse_card(cls: type[Card], data: Any, where: str, label: str) -> Card:
    """``data`` (a JSON object) as the frozen dataclass ``cls``, through the configs' validated loader.

    Raises ExportError ``"<label> <where>: <what is wrong>"`` (unknown key, wrong type, value out of range).
    """
    try:
        return from_file_dict(cls, data, where)
    except ConfigError as exc:
        raise ExportError(f"{label} {exc}") from None


def validate_card(cls: type, data: Any, where: str, label: str) -> dict[str, Any]:
    """Check ``data`` as :func:`parse_card` does; returns it unchanged (callers that keep the dict)."""
    parse_card(cls, data, where, label)
    return data
