"""Export is all or none: NAME.onnx, NAME.fp16.onnx and NAME.json appear together or not at all, an earlier export
at the same names is left as it was by any failure (FP16 conversion, a full disk, Ctrl-C part-way, a read-only
folder), and nothing but an earlier export is ever replaced. Real exports, real files; fakes only inject faults."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from inspector.artifacts.model_card import read_sidecar, verify_graph, write_sidecar
from file_faults import read_only_folder
from inspector.cli import main
from inspector.deploy import export as export_mod
from inspector.deploy import export_model
from inspector.errors import ExportError

NAMES = ("rs.onnx", "rs.fp16.onnx", "rs.json")


@pytest.fixture(scope="module")
def other(trained_run, tmp_path_factory):
    """A second model (the trained one with every weight scaled) and its graphs from a real export: a new export
    that differs from the earlier one in every file."""
    from inspector.models.checkpoint import load_model

    model = load_model(trained_run)[0]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.05)
    return model, export_model(model, tmp_path_factory.mktemp("other") / "rs")


@pytest.fixture
def earlier(exported_model, tmp_path) -> dict[str, bytes]:
    """tmp_path/rs.* : a complete earlier export (of the trained run); its files' bytes."""
    for name in NAMES:
        shutil.copy(exported_model.with_name(name), tmp_path / name)
    return _files(tmp_path)


def _files(folder: Path) -> dict[str, bytes]:
    """Every entry below ``folder`` (hidden ones too) → its bytes (folders: b'<folder>')."""
    return {str(p.relative_to(folder)): (b"<folder>" if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def _fast_export(monkeypatch, other) -> None:
    """The exporter hands over the other model's graphs (made once, for real) instead of tracing again."""
    def copy_graph(model, path, height, width, opset):
        precision = "fp16" if model.compute_dtype == torch.float16 else "fp32"
        shutil.copy(other[1][precision], path)
    monkeypatch.setattr(export_mod, "export_graph", copy_graph)


def _fail_fp16(monkeypatch):
    from inspector.models.base import AnomalyModel

    def broken(self, dtype):
        raise RuntimeError("half not supported here")
    monkeypatch.setattr(AnomalyModel, "set_compute_dtype", broken)
    return ExportError


def _disk_full_at_sidecar(monkeypatch):
    def full(data, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(export_mod, "write_sidecar", full)
    return OSError


def _ctrl_c_at_move(k: int):
    """Ctrl-C as the k-th file is moved onto one of the export's names (1: the FP32 graph … 3: the sidecar)."""
    def inject(monkeypatch):
        real, seen = os.replace, []

        def replace(src, dst, **kw):
            if Path(dst).name in NAMES and not Path(src).name.startswith(".old-"):
                seen.append(dst)
                if len(seen) == k:
                    raise KeyboardInterrupt
            return real(src, dst, **kw)
        monkeypatch.setattr(os, "replace", replace)
        return KeyboardInterrupt
    return inject


@pytest.mark.parametrize("fault", [_fail_fp16, _disk_full_at_sidecar, _ctrl_c_at_move(1), _ctrl_c_at_move(2),
                                   _ctrl_c_at_move(3)], ids=["fp16", "disk-full", "ctrl-c-1", "ctrl-c-2", "ctrl-c-3"])
def test_a_failed_export_leaves_the_earlier_export_as_it_was(other, earlier, tmp_path, monkeypatch, fault):
    """A failure anywhere in an export over an earlier one: the graphs were moved in one by one and the sidecar
    written in place after them, so a full disk at the sidecar or Ctrl-C between the moves left the new graphs
    beside the old sidecar (neither export whole: each graph's sha256 mismatched). Now every name holds the
    earlier export's file, byte for byte, and no temporary file is left."""
    _fast_export(monkeypatch, other)
    raised = fault(monkeypatch)
    with pytest.raises(raised):
        export_model(other[0], tmp_path / "rs", version="new")
    assert _files(tmp_path) == earlier


def test_an_export_replaces_an_earlier_one_whole(other, earlier, tmp_path, monkeypatch):
    """An export over an earlier one (the same --out, another run): every file is the new export's, and a graph
    of the earlier one that this export does not make (its FP16 graph, with precisions fp32 only) goes with it;
    it stayed, beside a sidecar that no longer named it."""
    _fast_export(monkeypatch, other)
    export_model(other[0], tmp_path / "rs", version="new")
    assert sorted(_files(tmp_path)) == sorted(NAMES) and _files(tmp_path) != earlier
    for graph in ("rs.onnx", "rs.fp16.onnx"):
        assert verify_graph(tmp_path / graph)["model"]["version"] == "new"
    export_model(other[0], tmp_path / "rs", version="fp32-only", precisions=("fp32",))
    assert sorted(_files(tmp_path)) == ["rs.json", "rs.onnx"]
    assert verify_graph(tmp_path / "rs.onnx")["model"]["version"] == "fp32-only"


def _notes(folder: Path) -> Path:
    (folder / "rs.json").write_text('{"my": "notes"}')
    return folder / "rs.json"


def _foreign_onnx(folder: Path) -> Path:
    for name in NAMES:  # no earlier export here: only the user's model
        (folder / name).unlink()
    (folder / "rs.onnx").write_bytes(b"an ONNX model from elsewhere")
    return folder / "rs.onnx"


def _graph_the_sidecar_does_not_name(folder: Path) -> Path:
    sidecar = json.loads((folder / "rs.json").read_text())
    del sidecar["graphs"]["fp16"]
    (folder / "rs.json").write_text(json.dumps(sidecar))
    return folder / "rs.fp16.onnx"


def _link(folder: Path) -> Path:
    (folder / "mine.json").write_text("the user's file")
    (folder / "rs.json").unlink()
    (folder / "rs.json").symlink_to(folder / "mine.json")
    return folder / "rs.json"


def _folder(folder: Path) -> Path:
    (folder / "rs.onnx").unlink()
    (folder / "rs.onnx").mkdir()
    (folder / "rs.onnx" / "model.onnx").write_text("a model folder")
    return folder / "rs.onnx"


@pytest.mark.parametrize("put", [_notes, _foreign_onnx, _graph_the_sidecar_does_not_name, _link, _folder])
def test_export_never_replaces_what_export_did_not_write(trained_run, earlier, tmp_path, capsys, put):
    """A file at one of the export's names that is not of an earlier export (the user's NAME.json, an ONNX file
    from elsewhere, a graph its sidecar does not name, a link, a folder) was replaced without a word. Now one
    line naming it, exit 2, before any work, everything as it was; as train, data synth, demo and service
    install replace only what they wrote."""
    named = put(tmp_path)
    before = _files(tmp_path)
    assert main(["export", str(trained_run), "--out", str(tmp_path / "rs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {named}: ") and "--out another name" in err
    assert _files(tmp_path) == before



def test_an_export_into_a_read_only_folder_is_one_line_and_changes_nothing(other, earlier, tmp_path, monkeypatch,
                                                                          capsys, trained_run):
    """A read-only output folder holding an earlier export: the exporter raised a bare PermissionError from its
    temporary folder. Now an ExportError naming the folder, before any work, and the earlier export as it was
    (the command line refuses it in its parser, one line, exit 2)."""
    undo = read_only_folder(tmp_path)
    if undo is None:
        pytest.skip("cannot make a folder read-only here")
    try:
        _fast_export(monkeypatch, other)
        with pytest.raises(ExportError, match=f"{tmp_path}.*cannot write in {tmp_path}"):
            export_model(other[0], tmp_path / "rs")
        assert main(["export", str(trained_run), "--out", str(tmp_path / "rs")]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    finally:
        undo()
    assert _files(tmp_path) == earlier


def test_a_place_that_refuses_the_staging_folder_is_named_not_the_folder(trained_run, tmp_path, monkeypatch, capsys):
    """A folder that passes the output checks but refuses a new folder with EPERM (/sys did, as root, before kernel
    file systems were refused up front): the one line named the exporter's temporary folder
    ('/sys/.model-5apzlr64: Operation not permitted'), which the user never asked for. Now it names the output
    folder. The refusal (a real errno) is injected where the folder is made."""
    target = tmp_path / "out"

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(target / ".model-5apzlr64"))
    monkeypatch.setattr(export_mod.tempfile, "TemporaryDirectory", refuse)
    capsys.readouterr()
    assert main(["export", str(trained_run), "--out", str(target / "model.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {target}: cannot write the export there (Operation not permitted)\n", err


def test_a_sidecar_rewritten_is_whole_or_as_it_was(exported_model, tmp_path, monkeypatch):
    """A sidecar rewritten in place (``quantize`` once added its INT8 graph to the export's; it now writes the INT8
    graph's own card): a full disk cut it short and the export could no longer be loaded. Now it is written beside
    and renamed over."""
    sidecar = shutil.copy(exported_model.with_name("rs.json"), tmp_path / "rs.json")
    before = Path(sidecar).read_bytes()
    data = read_sidecar(sidecar)
    data["graphs"]["int8"] = dict(data["graphs"]["fp32"], file="rs.int8.onnx", precision="int8")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_sidecar(data, sidecar)
    assert _files(tmp_path) == {"rs.json": before}
    monkeypatch.undo()
    write_sidecar(data, sidecar)
    assert read_sidecar(sidecar)["graphs"]["int8"]["file"] == "rs.int8.onnx"
    assert sorted(_files(tmp_path)) == ["rs.json"]



def test_an_export_named_as_long_as_the_file_system_allows_is_written(trained_run, tmp_path, capsys):
    """A name of 240 bytes gives files of up to 250 (NAME.fp16.onnx): legal, but the hidden names made from them
    (the sidecar's temporary ``.NAME.json.PID.tmp``, 256 bytes) were not, and the export failed with "File name too
    long". Twice: the second export replaces the first through the backups' hidden names too."""
    out = tmp_path / ("e" * 240 + ".onnx")
    for _ in range(2):
        assert main(["export", str(trained_run), "--out", str(out)]) == 0, capsys.readouterr().err
    for graph in (out, out.with_name("e" * 240 + ".fp16.onnx")):
        verify_graph(graph)  # raises on a graph its sidecar does not describe
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["e" * 240 + ".onnx", "e" * 240 + ".fp16.onnx", "e" * 240 + ".json"])
