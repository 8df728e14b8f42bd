"""Feature taps as data, and the truncated multi-output extractor built from them.

A backbone network declares, in execution order, the module paths that its
feature path runs through (``feature_steps``) and which tap is read after which
step (``feature_taps``). :class:`FeatureExtractor` keeps only the steps up to the
deepest requested tap, deletes every other submodule (later stages, head,
classifier) so an exported graph holds nothing unused, and returns one tensor
per requested tap. Submodules keep their original names, so the extractor's
state-dict keys are the original network's keys (minus the deleted tail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from inspector.config import suggest
from inspector.errors import ModelError


@dataclass(frozen=True)
class FeatureTap:
    """One feature output: its name, channel count and stride w.r.t. the input."""

    name: str
    channels: int
    stride: int


@dataclass(frozen=True)
class TapPoint:
    """Where a tap is read: after the step (a module path) named ``after``."""

    tap: FeatureTap
    after: str


def select_taps(backbone: str, points: Sequence[TapPoint], names: Sequence[str]) -> tuple[TapPoint, ...]:
    """Return the tap points for ``names`` in that order; ModelError with a hint if one is unknown."""
    if isinstance(names, str) or not names:
        raise ModelError(f"{backbone}: taps must be a non-empty list of names, got {names!r}")
    by_name = {p.tap.name: p for p in points}
    chosen = []
    for name in names:
        if name not in by_name:
            raise ModelError(
                f"{backbone}: unknown feature tap '{name}'{suggest(str(name), by_name)}; "
                f"available: {', '.join(by_name)}"
            )
        chosen.append(by_name[name])
    return tuple(chosen)


def _prune(module: nn.Module, prefix: str, keep: frozenset[str]) -> None:
    """Delete every submodule that is neither a kept step, inside one, nor on the way to one."""
    for child_name, _child in list(module.named_children()):
        path = prefix + child_name
        if path in keep or any(path.startswith(k + ".") for k in keep):
            continue
        if any(k.startswith(path + ".") for k in keep):
            _prune(getattr(module, child_name), path + ".", keep)
        else:
            delattr(module, child_name)


class FeatureExtractor(nn.Module):
    """A backbone truncated after its deepest requested tap.

    ``forward(x)`` takes a float NCHW batch that is already ImageNet-normalised
    and returns a list with one tensor per tap of :attr:`feature_info`, in that
    order. Control flow in ``forward`` depends only on the module structure,
    never on data, so tracing and ``torch.export`` capture it fully.

    It is an ordinary module: built in eval mode, parameters trainable, and
    ``train()`` works as usual, so a random-init copy can serve as a student
    (STFPM). Freezing a teacher is the owning model's job: ``requires_grad_(False)``
    and ``.eval()`` again inside its ``train()`` override, so BatchNorm never
    switches to batch statistics.
    """

    feature_info: tuple[FeatureTap, ...]
    weights_source: str

    def __init__(self, body: nn.Module, steps: Sequence[str], points: Sequence[TapPoint], weights_source: str):
        super().__init__()
        steps = tuple(steps)
        missing = [p.after for p in points if p.after not in steps]
        if missing:
            raise ModelError(f"feature step '{missing[0]}' is not one of the network's steps")
        last = max(steps.index(p.after) for p in points)
        self._steps = steps[: last + 1]
        _prune(body, "", frozenset(self._steps))
        self.body = body
        # For each kept step: which output slots take its result.
        self._slots = tuple(
            tuple(j for j, p in enumerate(points) if p.after == step) for step in self._steps
        )
        self.feature_info = tuple(p.tap for p in points)
        self.weights_source = weights_source
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = [x] * len(self.feature_info)
        for step, slots in zip(self._steps, self._slots):
            x = self.body.get_submodule(step)(x)
            for j in slots:
                outputs[j] = x
        return outputs

    def extra_repr(self) -> str:
        taps = ", ".join(f"{t.name}({t.channels}ch/{t.stride})" for t in self.feature_info)
        return f"taps=[{taps}], weights={self.weights_source}"
