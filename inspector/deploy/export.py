"""Checkpoint → ``<base>.onnx`` (FP32) + ``<base>.fp16.onnx`` (strongly typed FP16) + ``<base>.json``.

The FP16 graph comes from the same torch model with
``model.set_compute_dtype(torch.float16)``: teacher and student run in half
precision, while normalisation, distances, upsampling, smoothing and the score
stay float32 behind explicit casts written in the model (MODELS.md
"Precision"). Each graph is checked (:mod:`inspector.deploy.checks`) and run
once on ONNX Runtime before anything is written to its final name; the graphs
and the sidecar are made under temporary names in the output folder and moved
into place together, the sidecar last, so a failed or interrupted export leaves
no half-made model behind and an earlier export at the same names as it was. Nothing is ever downgraded: a failure of the
FP16 graph is an :class:`ExportError`, never a silent FP32 copy.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from inspector import __version__
from inspector.data.images import DEFAULT_DOWNSCALE
from inspector.errors import ExportError
from inspector.outputs import claim_outputs, cut_name, named_as_outputs, new_folders_removed_on_failure, replace_together
from inspector.textline import identifier_problem
from inspector.deploy.checks import check_graph
from inspector.contract import INPUT_NAME, MAP_NAME, OUTPUT_NAMES, SCORE_NAME
from inspector.deploy.graph import export_graph
from inspector.deploy.opsets import DEFAULT_OPSET, MIN_OPSET, newest_opset
from inspector.models.base import AnomalyModel
from inspector.models.common import IMAGENET_MEAN, IMAGENET_STD
from inspector.artifacts.model_card import SCHEMA_VERSION, sha256_file, write_sidecar

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
PARITY_TOLERANCE = 1e-4  # max |Δmap| as a fraction of the map's range, ORT FP32 vs torch eager


def graph_paths(out_base: str | Path) -> dict[str, Path]:
    """``export/rs-brick`` → fp32 ``rs-brick.onnx``, fp16 ``rs-brick.fp16.onnx``, sidecar ``rs-brick.json``."""
    base = Path(out_base)
    if base.suffix in (".onnx", ".json"):
        base = base.with_suffix("")
    if base.suffix == ".fp16":
        base = base.with_suffix("")
    if not base.name or base.name in (".", ".."):
        raise ExportError(f"{out_base}: the output needs a file base name such as export/rs-brick")
    return {"fp32": base.with_name(base.name + ".onnx"), "fp16": base.with_name(base.name + ".fp16.onnx"),
            "sidecar": base.with_name(base.name + ".json")}


def _check_opset(opset: int) -> None:
    newest = newest_opset()  # the same range as export --opset (inspector.deploy.opsets)
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset {opset}: supported range is {MIN_OPSET}..{newest} (default {DEFAULT_OPSET})")


def _model_for(model: AnomalyModel, precision: str) -> AnomalyModel:
    if precision == "fp32":
        return model
    try:
        return copy.deepcopy(model).set_compute_dtype(torch.float16).eval()
    except Exception as exc:
        raise ExportError(f"{model.config.name}: cannot convert the networks to float16 "
                          f"({type(exc).__name__}: {exc})") from exc


def verify_on_onnxruntime(path: Path, reference: AnomalyModel, precision: str) -> dict:
    """Run the graph once on ONNX Runtime CPU; FP32 must match torch within PARITY_TOLERANCE."""
    import onnxruntime as ort

    h, w = reference.config.image_size
    batch = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        score, amap = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
    except Exception as exc:
        raise ExportError(f"{path}: ONNX Runtime cannot run the exported graph "
                          f"({str(exc).strip().splitlines()[0][:300]})") from None
    if not (np.isfinite(score).all() and np.isfinite(amap).all()):
        raise ExportError(f"{path}: the {precision} graph produces NaN/inf on a test batch")
    if precision != "fp32":
        return {}
    with torch.inference_mode():
        ref_score, ref_map = (t.numpy() for t in reference(torch.from_numpy(batch)))
    span = float(ref_map.max() - ref_map.min()) or 1.0
    diff = float(np.abs(amap - ref_map).max()) / span
    if amap.shape != ref_map.shape or diff > PARITY_TOLERANCE:
        raise ExportError(f"{path}: ONNX Runtime and torch disagree (max |Δmap| {diff:.2e} of the map's range, "
                          f"tolerance {PARITY_TOLERANCE:.0e})")
    return {"max_abs_map_diff_over_range": diff}


def _producer() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript

    return {"inspector": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxscript": getattr(onnxscript, "__version__", "unknown"), "onnxruntime": onnxruntime.__version__,
            "exporter": "torch.onnx.export(dynamo=True)"}


def build_sidecar(model: AnomalyModel, graphs: dict[str, dict], opset: int, *, resize: str,
                  version: str, identity: dict, training: dict | None,
                  bit_depth: int | None = None, downscale: str = DEFAULT_DOWNSCALE) -> dict[str, Any]:
    """The sidecar document (schema in :mod:`inspector.artifacts.model_card`)."""
    h, w = model.config.image_size
    fp32 = graphs["fp32"]
    map_h, map_w = fp32["map_size"]
    batch = fp32["batch"]
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": model.config.name, "preset": model.config.preset, "version": version,
                  "score_reduction": model.config.score,
                  "description": {k: v for k, v in identity.items() if k != "teachers"}},
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "batch": batch, "height": h, "width": w,
                  "channels": 3, "color": "RGB", "resize": resize,
                  "downscale": downscale,  # inspector.data.images: how larger frames are shrunk
                  # significant bits of frames whose file/camera does not say (None: the container's)
                  "bit_depth": bit_depth},
        "preprocessing": {
            "outside_graph": f"decode to RGB (grayscale replicated), resize to {h}x{w} with policy '{resize}' "
                             f"and downscale '{downscale}' (inspector.data.images.resize_image)",
            "in_graph": {"scale": 1 / 255, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        },
        "outputs": {
            SCORE_NAME: {"name": SCORE_NAME, "dtype": "float32", "shape": [batch], "reduction": model.config.score},
            MAP_NAME: {"name": MAP_NAME, "dtype": "float32", "shape": [batch, 1, map_h, map_w]},
        },
        "graphs": {p: {k: v for k, v in g.items() if k not in ("batch", "map_size", "opset")}
                   for p, g in graphs.items()},
        "opset": opset,
        "producer": _producer(),
        "teachers": identity.get("teachers", []),
        "training": training,
    }


def export_model(model: AnomalyModel, out_base: str | Path, *, resize: str = "square", bit_depth: int | None = None,
                 downscale: str = DEFAULT_DOWNSCALE,
                 opset: int = DEFAULT_OPSET, precisions: Sequence[str] = PRECISIONS, version: str = "unversioned",
                 identity: dict | None = None, training: dict | None = None) -> dict[str, Any]:
    """Export ``model`` (FP32, eval) to ONNX graphs + sidecar; returns their paths and the sidecar.

    ``precisions`` must include fp32 (the reference every other graph is compared with). All or none: every
    file is made and checked under a temporary name in the output folder, then the set is moved into place
    together, the sidecar last (:func:`inspector.outputs.replace_together`); a failure or Ctrl-C anywhere leaves
    the names as they were. An earlier export at ``out_base`` is replaced as a whole (a graph of it this export
    does not make is removed); anything else there is never replaced (:func:`check_out_base`).
    ExportError (one line) for a bad opset/precision list, a ``version`` against its rule
    (:data:`inspector.textline.IDENTIFIERS`), a place that cannot be written, or a graph that
    fails its checks; OSError when the disk fails. Both name the output files asked for, never the hidden
    folder they are made in (:func:`inspector.outputs.named_as_outputs`); a folder the export made is removed
    when it fails.
    """
    _check_opset(opset)
    if (why := identifier_problem("model version", version)) is not None:  # it goes into every event's header
        raise ExportError(f"model_version: {why}", field="model_version")
    if "fp32" not in precisions or any(p not in PRECISIONS for p in precisions):
        raise ExportError(f"precisions {list(precisions)}: choose from {list(PRECISIONS)}, fp32 included")
    if model.compute_dtype != torch.float32:
        raise ExportError(f"{model.config.name}: export starts from the FP32 model (got {model.compute_dtype})")
    folder = graph_paths(out_base)["sidecar"].parent
    # a failed export leaves no folder it made (check_out_base makes the output folder, before any work)
    with new_folders_removed_on_failure(folder):
        paths = check_out_base(out_base)
        model = model.eval()
        with _staging_folder(paths["sidecar"]) as tmp, named_as_outputs(tmp, folder):  # errors name out/NAME.onnx
            staged = {key: Path(tmp) / path.name for key, path in paths.items()}
            graphs = {precision: _stage_graph(model, precision, staged[precision], paths[precision], opset)
                      for precision in precisions}
            sidecar = build_sidecar(model, graphs, opset, resize=resize, bit_depth=bit_depth, downscale=downscale,
                                    version=version, identity=identity or model.describe(), training=training)
            write_sidecar(sidecar, staged["sidecar"])
            # graphs first, sidecar last; a graph of an earlier export that this one does not make goes too
            replace_together([(staged[key] if key in graphs or key == "sidecar" else None, paths[key])
                              for key in (*PRECISIONS, "sidecar")], Path(tmp))
    result: dict[str, Any] = {p: paths[p] for p in precisions}
    result.update(sidecar=paths["sidecar"], metadata=sidecar)
    return result


def _staging_folder(sidecar: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder beside ``sidecar`` where the export's files are made. ExportError naming the output
    folder when it cannot be made there (a place such as /sys refuses it although it looks writable: the
    error named the temporary folder, which the user never asked for)."""
    try:
        return tempfile.TemporaryDirectory(dir=sidecar.parent, prefix=f".{cut_name(sidecar.stem, 10)}-")
    except OSError as exc:
        raise ExportError(f"{sidecar.parent}: cannot write the export there ({exc.strerror or exc})") from None


def _stage_graph(model: AnomalyModel, precision: str, staged: Path, target: Path, opset: int) -> dict[str, Any]:
    """Export, check and run the ``precision`` graph at ``staged`` (named ``target`` once the set is complete);
    its sidecar entry. ExportError when a check fails."""
    h, w = model.config.image_size
    log.info("exporting %s graph to %s", precision, target)
    export_graph(_model_for(model, precision), staged, h, w, opset)
    summary = check_graph(staged, precision, h, w)
    if summary["opset"] != opset:
        raise ExportError(f"{target}: asked for opset {opset}, the exporter wrote {summary['opset']}")
    summary.update(verify_on_onnxruntime(staged, model, precision))
    return {"file": target.name, "sha256": sha256_file(staged), "precision": precision,
            "bytes": staged.stat().st_size, **summary}


def check_out_base(out_base: str | Path) -> dict[str, Path]:
    """The export's file names at ``out_base`` (:func:`graph_paths`), once it is known they may be written:
    the folder can be made and written in, and each name is free or holds a file of an earlier export there
    (a sidecar written by export, and the graphs it names), which a new export replaces as a whole. ExportError
    (one line naming the file) otherwise: a user's ``NAME.json`` (notes, a config), an ONNX file from elsewhere,
    a link or a folder at one of the names was replaced without a word, as ``train`` refuses a folder holding
    another run's files and ``data synth``/``demo``/``service install`` replace only what they wrote
    (:func:`inspector.outputs.claim_outputs`)."""
    paths = graph_paths(out_base)
    claim_outputs(out_base, list(paths.values()), paths["sidecar"], _files_of_export, ExportError, command="export",
                  card_noun="sidecar", file_noun="graph")
    return paths


def _files_of_export(data: Any) -> set[str] | None:
    """The graph file names a sidecar written by export names (any schema version: an export made by an earlier
    inspector is still one); None when ``data`` is no such sidecar (the user's own JSON)."""
    graphs = data.get("graphs") if isinstance(data, dict) and "schema_version" in data else None
    if not isinstance(graphs, dict):
        return None
    return {entry["file"] for entry in graphs.values()
            if isinstance(entry, dict) and isinstance(entry.get("file"), str)}


def export_run(run_dir: str | Path, out_base: str | Path, opset: int = DEFAULT_OPSET,
               precisions: Sequence[str] = PRECISIONS, version: str | None = None) -> dict[str, Any]:
    """Export a training run folder (or checkpoint file): ``{"fp32": path, "fp16": path, "sidecar": path, …}``."""
    # a failed export (a bad checkpoint, a full disk) leaves no folder check_out_base made
    with new_folders_removed_on_failure(graph_paths(out_base)["sidecar"].parent):
        check_out_base(out_base)  # before loading: a name that may not be written is told at once
        return _export_loaded(run_dir, out_base, opset, precisions, version)


def _export_loaded(run_dir: str | Path, out_base: str | Path, opset: int, precisions: Sequence[str],
                   version: str | None) -> dict[str, Any]:
    """:func:`export_run` once its output place is known to be writable."""
    from inspector.models.checkpoint import load_model

    model, config, payload = load_model(run_dir)
    checkpoint = Path(payload["path"])
    digest = sha256_file(checkpoint)
    # The checkpoint's own describe() was taken at training time, when the teacher's
    # weights source was known; the rebuilt model only knows it loaded a state dict.
    identity = payload.get("model") or model.describe()
    training = {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": digest,
        **{k: payload.get(k) for k in ("phase", "epoch", "val_loss")},
        "data": payload.get("data"),
        "config": payload.get("config"),
    }
    # config.data.downscale of a checkpoint that predates the key is what it was trained with (load_model)
    return export_model(model, out_base, resize=config.data.resize, bit_depth=config.data.bit_depth, opset=opset,
                        downscale=config.data.downscale,
                        precisions=precisions,
                        version=version or digest[:12], identity=identity, training=training)

