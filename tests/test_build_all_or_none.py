"""Engine build is all or none, as export is: NAME.plan, NAME.build.log and the engine card NAME.json appear
together or not at all, an earlier build at the same names is left as it was by any failure (the engine does not
deserialise, a full disk at the card, an error or Ctrl-C between the moves, a read-only folder), and nothing but an
earlier build is ever replaced. Real builds through the stand-in TensorRT of tests/fake_tensorrt.py (TensorRT is
not installed here) on real files; fakes only inject faults."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import inspector.backends.cuda as cuda_mod
from fake_tensorrt import TRT10, FakeCuda, make_fake_trt
from file_faults import disk_full_at, read_only_folder
from inspector.artifacts.engine_card import read_engine_sidecar
from inspector.cli import main
from inspector.deploy.engine_build import BuildOptions, build_engine
from inspector.errors import ExportError
from tiny_graphs import write_exported

NAMES = ("tiny.fp16.plan", "tiny.fp16.build.log", "tiny.fp16.json")
OPTIONS = BuildOptions(max_batch=4, timing_cache="")  # the timing cache is every build's, not one build's file


def _fake_tensorrt(monkeypatch, faults=frozenset()) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(TRT10, [], faults))
    monkeypatch.setattr(cuda_mod, "open_cuda", lambda api="cuda-python", device=0: FakeCuda(device))


@pytest.fixture
def graphs(tmp_path, monkeypatch) -> list[Path]:
    """Two FP16 graphs named tiny.fp16.onnx that differ in every weight (the earlier build's, the new one's), and
    the stand-in TensorRT: engines made from them differ in every byte but the header."""
    _fake_tensorrt(monkeypatch)
    return [write_exported(tmp_path / name, seed=seed).with_name("tiny.fp16.onnx") for name, seed in (("a", 0),
                                                                                                      ("b", 1))]


@pytest.fixture
def engines(graphs, tmp_path) -> Path:
    """tmp_path/engines holding a complete earlier build (of the first graph) at tiny.fp16.*."""
    build_engine(graphs[0], tmp_path / "engines" / NAMES[0], OPTIONS)
    assert sorted(_files(tmp_path / "engines")) == sorted(NAMES)
    return tmp_path / "engines"


def _files(folder: Path) -> dict[str, bytes]:
    """Every entry below ``folder`` (hidden ones too) → its bytes (folders: b'<folder>', links: their target)."""
    return {str(p.relative_to(folder)): (f"<link {os.readlink(p)}>".encode() if p.is_symlink() else
                                         b"<folder>" if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def _engine_does_not_deserialise(monkeypatch, folder):
    _fake_tensorrt(monkeypatch, {"deserialize"})
    return ExportError


def _disk_full_at_card(monkeypatch, folder):
    disk_full_at(monkeypatch, "tiny.fp16.json")
    return OSError


def _at_move(k: int, error: type[BaseException]):
    """``error`` as the k-th file is moved onto one of the build's names (1: the engine, 2: the log, 3: the card)."""
    def inject(monkeypatch, folder):
        real, seen = os.replace, []

        def replace(src, dst, **kw):
            if Path(dst).parent == folder and Path(dst).name in NAMES and not Path(src).name.startswith(".old-"):
                seen.append(dst)
                if len(seen) == k:
                    raise error(f"injected at move {k}")
            return real(src, dst, **kw)
        monkeypatch.setattr(os, "replace", replace)
        return error
    return inject


@pytest.mark.parametrize("fault", [_engine_does_not_deserialise, _disk_full_at_card, _at_move(1, KeyboardInterrupt),
                                   _at_move(2, KeyboardInterrupt), _at_move(3, KeyboardInterrupt),
                                   _at_move(2, OSError)],
                         ids=["deserialise", "disk-full-card", "ctrl-c-1", "ctrl-c-2", "ctrl-c-3", "error-2"])
def test_a_failed_build_leaves_the_earlier_build_as_it_was(graphs, engines, monkeypatch, fault):
    """A failure anywhere in a build over an earlier one: the engine was written in place, then the card, then the
    log, so a full disk at the card, an engine that did not deserialise, or Ctrl-C after the engine left the new
    engine beside the old card (the pair no longer loaded: sha256 mismatch) and the old log. Now every name holds
    the earlier build's file, byte for byte, and no temporary file is left."""
    earlier = _files(engines)
    raised = fault(monkeypatch, engines)
    with pytest.raises(raised):
        build_engine(graphs[1], engines / NAMES[0], OPTIONS)
    assert _files(engines) == earlier


def test_a_build_replaces_an_earlier_one_whole(graphs, engines):
    """A build over an earlier one: every file is the new build's; an engine of the earlier build under the other
    suffix (NAME.engine, whose card NAME.json this build takes over) goes with it, as export removes a graph of
    an earlier export that it does not make."""
    earlier = _files(engines)
    card = build_engine(graphs[1], engines / NAMES[0], OPTIONS)
    now = _files(engines)
    assert sorted(now) == sorted(NAMES) and all(now[name] != earlier[name] for name in ("tiny.fp16.plan",
                                                                                        "tiny.fp16.json"))
    assert read_engine_sidecar(engines / NAMES[0]) == card and card["onnx"]["path"] == str(graphs[1])
    build_engine(graphs[0], engines / "tiny.fp16.engine", OPTIONS)
    assert sorted(_files(engines)) == ["tiny.fp16.build.log", "tiny.fp16.engine", "tiny.fp16.json"]
    assert read_engine_sidecar(engines / "tiny.fp16.engine")["engine"]["file"] == "tiny.fp16.engine"


# what is put at one of the build's names: (name, what: file bytes, "model card", "link" or "folder", whether it
# stands alone, with no earlier build beside it)
FOREIGN = {
    "notes": ("tiny.fp16.json", b'{"my": "notes"}', False),  # the user's NAME.json
    "engine-from-elsewhere": ("tiny.fp16.plan", b"an engine built by trtexec", True),
    "engine-the-card-does-not-name": ("tiny.fp16.engine", b"an engine built by trtexec", False),
    "link": ("tiny.fp16.build.log", "link", False),
    "folder": ("tiny.fp16.json", "folder", False),  # one at --out itself is refused by the argument parser
}


def _put(folder: Path, name: str, what: bytes | str, alone: bool) -> Path:
    for old in NAMES if alone else ():
        (folder / old).unlink()
    path = folder / name
    path.unlink(missing_ok=True)
    if what == "model card":
        path.write_bytes((folder.parent / "a" / "tiny.json").read_bytes())
    elif what == "link":
        (folder / "mine.log").write_text("the user's file")
        path.symlink_to(folder / "mine.log")
    elif what == "folder":
        path.mkdir()
        (path / "notes.txt").write_text("a folder")
    else:
        path.write_bytes(what)
    return path


@pytest.mark.parametrize("case", FOREIGN)
def test_build_never_replaces_what_build_did_not_write(graphs, engines, capsys, case):
    """A file at one of the build's names that is not of an earlier build (the user's NAME.json, a model card, an
    engine from elsewhere or one the card does not name, a link, a folder) was replaced without a word, after
    the whole build. Now one line naming it, exit 2, before any work, everything as it was; as export."""
    named = _put(engines, *FOREIGN[case])
    before = _files(engines)
    assert main(["build", str(graphs[1]), "--out", str(engines / NAMES[0]), "--timing-cache", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {named}: ") and "--out another name" in err, err
    assert _files(engines) == before


def test_a_build_into_a_read_only_folder_is_one_line_and_changes_nothing(graphs, engines):
    """A read-only engines folder holding an earlier build: the engine's write failed with a bare PermissionError
    after the whole build. Now an ExportError naming the folder, before any work, and the earlier build as it
    was."""
    earlier = _files(engines)
    undo = read_only_folder(engines)
    if undo is None:
        pytest.skip("cannot make a folder read-only here")
    try:
        with pytest.raises(ExportError, match=f"cannot write in {engines}"):
            build_engine(graphs[1], engines / NAMES[0], OPTIONS)
    finally:
        undo()
    assert _files(engines) == earlier


def test_the_card_names_the_engine_it_was_built_with(graphs, engines):
    """The card is written from the staged engine: its sha256 and size are those of the file at its name."""
    from inspector.artifacts.model_card import sha256_file

    card = json.loads((engines / "tiny.fp16.json").read_text())
    assert card["engine"] == {"file": "tiny.fp16.plan", "sha256": sha256_file(engines / NAMES[0]),
                              "bytes": (engines / NAMES[0]).stat().st_size}


def _report_on_earlier_engine(engines: Path) -> bytes:
    """A precision report beside the earlier build, as ``inspector verify ENGINE`` leaves it."""
    report = json.dumps({"candidate": {"path": str(engines / NAMES[0])}, "passed": True}).encode()
    (engines / "tiny.fp16.verify.json").write_bytes(report)
    return report


def test_a_rebuild_takes_the_report_on_the_earlier_engine_away_with_it(graphs, engines, monkeypatch):
    """NAME.verify.json judged the earlier engine; after a rebuild it stayed and passed off that verdict as the new
    engine's. Now it goes in the same move as the engine it judged, and a failed rebuild leaves it as it was."""
    report = _report_on_earlier_engine(engines)
    _fake_tensorrt(monkeypatch, {"deserialize"})
    with pytest.raises(ExportError):
        build_engine(graphs[1], engines / NAMES[0], OPTIONS)
    assert (engines / "tiny.fp16.verify.json").read_bytes() == report
    _fake_tensorrt(monkeypatch)
    build_engine(graphs[1], engines / NAMES[0], OPTIONS)
    assert sorted(_files(engines)) == sorted(NAMES)


def test_a_report_with_no_build_beside_it_is_not_replaced(graphs, engines, capsys):
    """A report at the name with no engine card naming its engine is someone else's file: refused, as the rest."""
    _report_on_earlier_engine(engines)
    for name in NAMES:
        (engines / name).unlink()
    assert main(["build", str(graphs[1]), "--out", str(engines / NAMES[0]), "--timing-cache", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {engines / 'tiny.fp16.verify.json'}: exists and is not a file"), err
    assert sorted(_files(engines)) == ["tiny.fp16.verify.json"]


def _graph_beside(folder: Path, which: str, tiny_dataset) -> tuple[Path, str]:
    """(graph to build, its card's name) in ``folder`` (the export holding tiny.onnx, tiny.fp16.onnx, tiny.json)."""
    if which == "int8":
        from inspector.deploy.quantize import quantize_model

        quantize_model(folder / "tiny.onnx", tiny_dataset, batch_size=4, check_images=0)  # real ONNX Runtime
        return folder / "tiny.int8.onnx", "tiny.int8.json"
    if which == "fp16-with-report":  # the FP16 graph's precision report, as 'inspector verify GRAPH' leaves it
        (folder / "tiny.fp16.verify.json").write_text(json.dumps({"candidate": {"path": "tiny.fp16.onnx"}}))
    return folder / f"tiny.{'fp16' if which.startswith('fp16') else ''}.onnx".replace("..", "."), "tiny.json"


# (graph built, --out beside it): the names the engine's card and report took without its suffix were the graph's
BESIDE = {"int8": ("int8", "tiny.int8.plan"),  # tiny.int8.json: the INT8 graph's own card
          "int8-as-plain": ("int8", "tiny.plan"),  # tiny.json: the export's sidecar
          "fp16": ("fp16-with-report", "tiny.fp16.plan")}  # tiny.fp16.verify.json: the FP16 graph's report


@pytest.mark.parametrize("case", BESIDE)
def test_an_engine_built_beside_its_graph_names_its_files_after_the_whole_engine_name(graphs, tiny_dataset, capsys,
                                                                                     case):
    """``build export/m.int8.onnx --out export/m.int8.plan`` was refused: the engine card's name, m.int8.json, is
    the INT8 graph's own card (and export/m.plan's, m.json, the export's sidecar; export/m.fp16.plan's report,
    m.fp16.verify.json, the FP16 graph's). Beside its graph an engine's card, log and report are now named after
    the whole engine name (m.int8.plan.json …); the graph's files are left as they were, and the engine card
    names the card it was built from."""
    from inspector.artifacts.engine_card import verify_report_path
    from inspector.artifacts.model_card import sha256_file

    folder = graphs[0].parent
    graph, card_name = _graph_beside(folder, BESIDE[case][0], tiny_dataset)
    engine = folder / BESIDE[case][1]
    before = _files(folder)
    for _ in range(2):  # a first build, then a rebuild over it
        assert main(["build", str(graph), "--out", str(engine), "--timing-cache", ""]) == 0, capsys.readouterr().err
    now = _files(folder)
    made = {f"{engine.name}{ext}" for ext in ("", ".json", ".build.log")}
    assert set(now) == set(before) | made and all(now[name] == before[name] for name in before)
    card = read_engine_sidecar(engine)
    assert card is not None and card["engine"]["file"] == engine.name and card["onnx"]["file"] == graph.name
    assert card["onnx"]["card"] == card_name and card["onnx"]["card_sha256"] == sha256_file(folder / card_name)
    assert json.loads((folder / f"{engine.name}.json").read_text()) == card
    if graph.name == "tiny.int8.onnx":  # the INT8 graph's own card, with what it was quantized from
        assert card["precision"] == "int8" and card["model"]["derived_from"]["graph"] == "tiny.onnx"
    assert verify_report_path(engine) == folder / f"{engine.name}.verify.json"


def test_an_engine_in_its_own_folder_keeps_the_short_names(graphs, engines):
    """Away from its graph (the default engines/ folder) nothing changes: NAME.json, NAME.build.log, and the
    engine card records the export's sidecar it was built from."""
    card = read_engine_sidecar(engines / NAMES[0])
    assert sorted(_files(engines)) == sorted(NAMES) and card["onnx"]["card"] == "tiny.json"


# README "Outputs": "A command replaces only what an earlier run of the same command wrote, and says so". Build
# replaced an earlier engine and its card without a word, while export, quantize, calibrate and evaluate said so.
def _built_line(argv: list[str], capsys) -> str:
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("built "), out
    return out[-1]


def _mtime_text(path: Path) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@pytest.mark.parametrize("out", ["given", "default", "other suffix"])
def test_a_build_says_it_replaced_an_earlier_engine_and_when_that_was_built(graphs, tmp_path, monkeypatch, capsys,
                                                                              out):
    """--out given, the default engines/<model>.<precision>.plan, and the same engine under the other suffix
    (tiny.fp16.engine, which shares the card and log of tiny.fp16.plan): each is said in the built line."""
    monkeypatch.chdir(tmp_path)
    first = ["build", str(graphs[0]), "--timing-cache", ""]
    if out != "default":
        first += ["--out", str(Path("engines") / ("tiny.fp16.engine" if out == "other suffix" else NAMES[0]))]
    assert "replaced" not in _built_line(first, capsys)
    earlier = Path("engines") / ("tiny.fp16.engine" if out == "other suffix" else NAMES[0])
    os.utime(earlier, (1.8e9, 1.8e9))  # 2027-01-15 08:00 UTC: told from now
    when = _mtime_text(earlier)
    again = ["build", str(graphs[1]), "--timing-cache", ""] + ([] if out == "default" else
                                                              ["--out", str(Path("engines") / NAMES[0])])
    line = _built_line(again, capsys)
    name = " tiny.fp16.engine" if out == "other suffix" else ""
    assert line.endswith(f" (replaced the earlier engine{name}, built {when})"), line
    assert when == "2027-01-15 08:00 UTC"


def test_the_build_help_states_the_rule(capsys):
    assert main(["build", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "An earlier build at the same names is replaced, and the line saying what was built says so" in text
