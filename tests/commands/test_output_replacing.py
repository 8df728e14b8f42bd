"""A command's one output file replaces only an earlier output of that command, and says so; anything else there
is refused in one line naming the file and the option, before any work, and left as it was
(:func:`inspector.outputs.claim_file`, the rule export, build and quantize already follow).

``verify --report``, ``bench --json`` and ``calibrate --out`` replaced whatever was at the name without a word:
``calibrate --out inspector.yaml`` (the daemon's config, by a slip) was gone after minutes of scoring; and a new
report over an earlier one was not told, so the earlier verdict vanished unnoticed."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main

CASES = {  # command → (argv with {model} {fp16} {good} {out}, the option, the line's words when replaced)
    "calibrate": (["calibrate", "{model}", "--good-dir", "{good}", "--out", "{out}"], "--out",
                  "wrote {out} (replaced the earlier calibration)"),
    "bench": (["bench", "{model}", "--duration", "0.05", "--warmup", "1", "--batch", "1", "--json", "{out}"], "--json",
              "wrote {out} (replaced the earlier results)"),
    "verify": (["verify", "{fp16}", "--reference", "{model}", "--data", "{good}", "--report", "{out}"], "--report",
               "  report: {out} (replaced the earlier report)"),
}
NOUNS = {"calibrate": "a calibration file", "bench": "a benchmark results file", "verify": "a verify report"}


def _setup(tmp_path):
    import cv2
    import numpy as np
    from tiny_graphs import write_exported

    model = write_exported(tmp_path / "export", fp16=True)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(4):
        cv2.imwrite(str(good / f"{i:03d}.png"), np.full((32, 32, 3), 40 * i, np.uint8))
    return {"model": str(model), "fp16": str(model.with_name("tiny.fp16.onnx")), "good": str(good)}


def _argv(command: str, names: dict) -> list[str]:
    return [a.format(**names) for a in CASES[command][0]]


@pytest.mark.parametrize("command", list(CASES))
def test_an_earlier_output_of_the_command_is_replaced_and_the_line_says_so(command, tmp_path, capsys):
    names = {**_setup(tmp_path), "out": str(tmp_path / "out" / "result.file")}
    assert main(_argv(command, names)) in (0, 1)  # verify: 1 is a failed gate, its report written all the same
    first = capsys.readouterr().out
    assert "replaced" not in first, first
    before = (tmp_path / "out" / "result.file").stat().st_ino
    assert main(_argv(command, names)) in (0, 1)
    lines = capsys.readouterr().out.splitlines()
    assert CASES[command][2].format(**names) in lines, lines
    assert (tmp_path / "out" / "result.file").stat().st_ino != before  # written anew, whole (renamed over it)


FOREIGN = {
    "daemon config": b"model: {path: export/rs.onnx}\ncameras: [{name: line1, source: synthetic}]\n",
    "notes": b"shift 2: line 3 recalibrated by hand\n",
    "another command's": None,  # the output of one of the other two commands
}


@pytest.mark.parametrize("what", list(FOREIGN) + ["link"])
@pytest.mark.parametrize("command", list(CASES))
def test_anything_else_there_is_refused_before_any_work_and_kept(command, what, tmp_path, capsys):
    names = {**_setup(tmp_path), "out": str(tmp_path / "taken")}
    taken = tmp_path / "taken"
    if what == "link":
        (tmp_path / "target.yaml").write_bytes(FOREIGN["notes"])
        taken.symlink_to(tmp_path / "target.yaml")
    elif FOREIGN[what] is None:
        other = next(c for c in CASES if c != command)
        assert main(_argv(other, names)) in (0, 1)
    else:
        taken.write_bytes(FOREIGN[what])
    capsys.readouterr()
    before = {p: (p.is_symlink(), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()}
    assert main(_argv(command, names)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    option = CASES[command][1]
    reason = (f"a symbolic link, not {NOUNS[command]} of an earlier '{command}'" if what == "link"
              else f"exists and is not {NOUNS[command]} written by 'inspector {command}'")
    assert err == (f"error: {taken}: {reason}; 'inspector {command}' replaces only its own files: {option} another "
                   f"name, or move it"), err
    assert {p: (p.is_symlink(), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_report_is_recognised_by_its_content_not_its_name(tmp_path):
    """JSON of the right shape from another tool is not taken for a report of ours."""
    from inspector.evaluation.bench import is_bench_results
    from inspector.evaluation.verify import is_verify_report

    assert not is_verify_report(json.dumps({"passed": True}).encode())
    assert not is_bench_results(json.dumps([1, 2]).encode())


def test_the_daemon_summary_replaces_only_an_earlier_summary(tmp_path, capsys):
    """summary_json is rewritten at every run's end: a file there that is no run summary (a report, a config named
    by a slip) was lost at shutdown, after --check said OK. An earlier run's summary passes."""
    from tiny_graphs import write_exported

    model = write_exported(tmp_path / "export", fp16=False)
    summary = tmp_path / "summary.json"
    config = tmp_path / "daemon.yaml"
    config.write_text(f"model: {{path: {model}}}\nthresholds: {{image: 0.5}}\n"
                      f"cameras: [{{name: line1, source: synthetic}}]\nsummary_json: {summary}\n"
                      f"publish: {{endpoint: 'ipc://{tmp_path}/ev.sock'}}\n")
    summary.write_bytes(FOREIGN["notes"])
    assert main(["run", "--config", str(config), "--check"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {config}: summary_json: {summary}: exists and is not a run summary written by 'inspector run'; "
        f"'inspector run' replaces only its own files: set summary_json to another name, or move it")
    assert summary.read_bytes() == FOREIGN["notes"]
    summary.write_text(json.dumps({"cameras": {"line1": {"processed": 3}}, "totals": {"inferred_frames": 3}}))
    assert main(["run", "--config", str(config), "--check"]) == 0, capsys.readouterr().err


def test_predict_replaces_only_its_own_overlays_and_says_so(tmp_path, capsys):
    """`predict --out DIR` wrote each overlay over any file of its name without a word (a user's own picture,
    a photo named like an image). Its overlays now carry a tag (a PNG text chunk): an earlier one is replaced and
    the last line counts it; anything else is refused in one line before any inference, and kept."""
    import cv2

    names = _setup(tmp_path)
    out = tmp_path / "overlays"
    images = sorted(str(p) for p in (tmp_path / "good").iterdir())
    assert main(["predict", names["model"], *images, "--out", str(out)]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"wrote 4 overlay(s) to {out}"
    assert cv2.imread(str(out / "000.png")) is not None  # the tag leaves a valid PNG
    assert main(["predict", names["model"], *images, "--out", str(out)]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"wrote 4 overlay(s) to {out} (replaced 4 earlier overlay(s))")
    mine = cv2.imencode(".png", cv2.imread(images[2]))[1].tobytes()  # a PNG, but not one predict wrote
    (out / "002.png").write_bytes(mine)
    assert main(["predict", names["model"], *images, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before any inference
    assert captured.err.strip() == (f"error: {out / '002.png'}: exists and is not an overlay written by 'inspector "
                                    f"predict'; 'inspector predict' replaces only its own files: --out another name, "
                                    f"or move it")
    assert (out / "002.png").read_bytes() == mine


def test_the_mqtt_bridge_state_file_replaces_only_an_earlier_state(tmp_path, capsys, caplog):
    """The bridge rewrites its state file at a shutdown with the broker away: a file there that is not its state
    (a config or notes, by a slip in publish.mqtt.state_file) was written over. ``run --check`` refuses it in one
    line; one put there after the check is left as it was at shutdown, and the counts not kept, said."""
    import logging

    from tiny_graphs import write_exported

    from inspector.integrations.mqtt import _read_untold, _write_untold

    model = write_exported(tmp_path / "export", fp16=False)
    state = tmp_path / "bridge.json"
    config = tmp_path / "daemon.yaml"
    config.write_text(f"model: {{path: {model}}}\nthresholds: {{image: 0.5}}\n"
                      f"cameras: [{{name: line1, source: synthetic}}]\n"
                      f"publish: {{endpoint: 'ipc://{tmp_path}/ev.sock', mqtt: {{url: 'mqtt://127.0.0.1:5821', "
                      f"box: b1, state_file: {state}}}}}\n")
    state.write_bytes(FOREIGN["daemon config"])
    assert main(["run", "--config", str(config), "--check"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {config}: publish.mqtt.state_file: {state}: exists and is not a state file of the MQTT bridge "
        f"written by 'inspector run'; 'inspector run' replaces only its own files: set publish.mqtt.state_file to another "
        f"name, or move it")
    with caplog.at_level(logging.WARNING, logger="inspector.integrations.mqtt"):
        _write_untold(state, [{"run_id": "r2", "offered": 2, "final": True}])
    assert state.read_bytes() == FOREIGN["daemon config"]
    assert any("final counts not delivered and not kept" in r.getMessage() for r in caplog.records)
    state.unlink()
    _write_untold(state, [{"run_id": "r1", "offered": 1, "final": True}])  # an earlier run's state: replaced
    assert main(["run", "--config", str(config), "--check"]) == 0, capsys.readouterr().err
    _write_untold(state, [{"run_id": "r1", "offered": 1, "final": True}, {"run_id": "r2", "offered": 2, "final": True}])
    assert [c["run_id"] for c in _read_untold(state)] == ["r1", "r2"]


# The file-set commands follow the same rule (README "Outputs": "A command replaces only what an earlier run of the
# same command wrote, and says so"): export and quantize replaced an earlier set without a word, although calibrate,
# bench, verify, predict --out and service install said so. enroll: tests/pipeline/test_meta_comparer_enroll.py.
def _export_argv(tmp_path, trained_run, tiny_dataset):
    return ["export", str(trained_run), "--out", str(tmp_path / "x" / "rs")]


def _quantize_argv(tmp_path, trained_run, tiny_dataset):
    from tiny_graphs import write_exported

    model = tmp_path / "q" / "tiny.onnx"
    if not model.exists():
        write_exported(model.parent, height=32, width=32)
    return ["quantize", str(model), "--calibration", str(tiny_dataset), "--batch-size", "4", "--max-images", "4",
            "--check-images", "0"]


SETS = {"export": (_export_argv, "(replaced the earlier export)"),
        "quantize": (_quantize_argv, "(replaced the earlier INT8 graph)")}


@pytest.mark.parametrize("command", list(SETS))
def test_a_file_set_command_says_it_replaced_its_earlier_set(command, trained_run, tiny_dataset, tmp_path, capsys):
    argv = SETS[command][0](tmp_path, trained_run, tiny_dataset)
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "replaced" not in first, first
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(SETS[command][1]), last
