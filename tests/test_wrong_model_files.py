"""Every command that reads an ONNX graph, given the wrong thing in its place: one line, exit 2, no traceback.

The wrong things are what people have beside their models: an ONNX graph of another project (no sidecar, or a
copied sidecar re-hashed to it), a graph cut short by a copy (its sidecar re-hashed, so the sha256 check
passes), an empty file, and a sidecar of another input size over a real graph. Each goes through the real CLI
(``inspector.cli.main``), real onnx, ONNX Runtime and OpenCV; ``build`` stops before TensorRT (not needed here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from inspector.artifacts.model_card import sha256_file
from inspector.cli import main
from tiny_graphs import write_exported

SIZE = 32


def _foreign_graph(path: Path) -> None:
    """Another project's classifier input: float32 NCHW, one Relu."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 224, 224])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "other", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _card_for(graph: Path, card: dict, **input_changes) -> None:
    """``card`` rewritten for ``graph`` (its FP32 entry re-hashed to it), the input changed, beside it."""
    card = json.loads(json.dumps(card))
    card["graphs"] = {"fp32": {**card["graphs"]["fp32"], "file": graph.name, "sha256": sha256_file(graph)}}
    card["input"].update(input_changes)
    graph.with_suffix(".json").write_text(json.dumps(card))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """name → path of each wrong model file, plus "images" (a folder of 3 PNGs) and "good" (the right graph)."""
    root = tmp_path_factory.mktemp("zoo")
    good = write_exported(root / "good", height=SIZE, width=SIZE)
    card = json.loads(good.with_suffix(".json").read_text())
    files = {"good": good}
    files["foreign"] = root / "foreign.onnx"
    _foreign_graph(files["foreign"])
    files["foreign_carded"] = root / "foreign_carded.onnx"
    _foreign_graph(files["foreign_carded"])
    _card_for(files["foreign_carded"], card)
    files["truncated"] = root / "truncated.onnx"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _card_for(files["truncated"], card)
    files["empty"] = root / "empty.onnx"
    files["empty"].write_bytes(b"")
    _card_for(files["empty"], card)
    files["other_size"] = root / "other_size.onnx"
    shutil.copy(good, files["other_size"])
    _card_for(files["other_size"], card, height=2 * SIZE, width=2 * SIZE)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        assert cv2.imwrite(str(images / f"{i:03d}.png"), rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    files["images"] = images
    return files


COMMANDS = {
    "predict": ["predict", "{model}", "{images}/000.png"],
    "calibrate": ["calibrate", "{model}", "--good-dir", "{images}", "--out", "{out}/cal.yaml"],
    "verify-candidate": ["verify", "{model}", "--reference", "{good}", "--data", "{images}", "--report",
                         "{out}/v.json"],
    "verify-reference": ["verify", "{good_fp16}", "--reference", "{model}", "--data", "{images}", "--report",
                         "{out}/v.json"],
    "bench": ["bench", "{model}", "--batch", "1", "--duration", "0.1", "--warmup", "0"],
    "quantize": ["quantize", "{model}", "--calibration", "{images}", "--max-images", "2"],
    "build": ["build", "{model}", "--out", "{out}/e.plan"],
}


@pytest.mark.parametrize("wrong", ["foreign", "foreign_carded", "truncated", "empty", "other_size"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_wrong_model_file_is_one_line(zoo, tmp_path, capsys, command, wrong):
    """Before: ``build`` and ``quantize`` of the truncated graph ended in protobuf's DecodeError traceback
    (they read the graph with onnx, unchecked), and the other-size card reached ONNX Runtime's quantizer."""
    fields = {"model": zoo[wrong], "images": zoo["images"], "good": zoo["good"], "out": tmp_path,
              "good_fp16": zoo["good"].with_name("tiny.fp16.onnx")}
    before = {p: p.read_bytes() for p in zoo[wrong].parent.glob(f"{zoo[wrong].stem}*")}
    argv = [a.format(**fields) for a in COMMANDS[command]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0 and "Traceback" not in err, err
    assert str(zoo[wrong].with_suffix("")) in err, err  # names the file (or its sidecar)
    assert {p: p.read_bytes() for p in zoo[wrong].parent.glob(f"{zoo[wrong].stem}*")} == before
    assert not list(tmp_path.iterdir())  # no report, calibration or engine of a wrong model


@pytest.mark.parametrize("command", ["quantize", "build", "verify-reference", "verify-candidate", "run"])
@pytest.mark.parametrize("wrong", ["daemon.yaml", "card.json", "best.pt", "image.png", "folder"])
def test_another_kind_of_file_for_a_graph_is_named_not_sent_to_re_export(tmp_path, capsys, command, wrong):
    """A config, a model card, a checkpoint, an image or a folder given where a graph is read (the daemon's
    model.path too): its card was looked for by name ('daemon.json: sidecar not found (re-run inspector export)', 'card.json: sha256 … does not match
    its sidecar'), sending the user to re-export a sound model. The argument is refused as no model file."""
    graph = write_exported(tmp_path / "export")
    given = tmp_path / wrong
    given.mkdir() if wrong == "folder" else given.write_bytes(b"model: {path: x.onnx}\n")
    argv = {"quantize": ["quantize", str(given), "--calibration", str(tmp_path)],
            "build": ["build", str(given)],
            "verify-reference": ["verify", str(graph), "--reference", str(given), "--data", str(tmp_path)],
            "verify-candidate": ["verify", str(given), "--reference", str(graph), "--data", str(tmp_path)],
            "run": ["run", "--config", str(tmp_path / "d.yaml"), "--check"]}[command]
    (tmp_path / "d.yaml").write_text(f"model: {{path: {given}}}\nthresholds: {{image: 0.5}}\n"
                                     f"cameras: [{{name: a, source: synthetic}}]\n")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(given) in err and "sidecar" not in err, err
    assert ("model file" if command != "run" else "is not an exported .onnx or a TensorRT .plan") in err, err


@pytest.mark.parametrize("given", ["runs/rs-brick", "runs/rs-brick/best.pt", "export/rs-brick"])
def test_a_run_or_checkpoint_as_the_daemons_model_says_to_export_it(tmp_path, capsys, given):
    """A newcomer's ``model.path: runs/rs-brick`` (the run folder, its best.pt, or the export's base name without
    .onnx) was told only "is not an exported .onnx or a TensorRT .plan/.engine ('no extension')": the line now says
    what to give and how to make it, as ``calibrate RUN`` does."""
    (tmp_path / "d.yaml").write_text(f"model: {{path: {given}}}\nthresholds: {{image: 0.5}}\n"
                                     f"cameras: [{{name: a, source: synthetic}}]\n")
    assert main(["run", "--config", str(tmp_path / "d.yaml"), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(
        "; the daemon runs an exported graph: give export/NAME.onnx, made from a run by "
        "'inspector export RUN --out export/NAME'"), err
