"""A command whose output cannot be stored (a full disk, a quota, a file size limit) says so in one line naming the
output the user asked for, and leaves no folder it made behind.

Before: ``evaluate --out new/eval`` on a full disk said "inspector evaluate: cannot write its output: No space left
on device" (write() names no file) and left an empty ``new/eval``; ``export`` said
"out/.rs-4mq7_lpm/rs.onnx: torch.onnx export failed (OSError: [Errno 28] …)", the hidden folder it works in, gone
once it ended. The fault is real: a file size limit (RLIMIT_FSIZE: EFBIG part-way, as a full disk's ENOSPC;
replayed by hand on a 64 kB tmpfs: the same lines with "No space left on device")."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from file_faults import file_size_limit
from inspector.cli import main
from inspector.errors import ExportError
from inspector.outputs import named_as_outputs, new_folders_removed_on_failure, write_whole


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_evaluate_on_a_full_disk_names_the_file_and_leaves_no_new_folder(trained_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "new" / "eval"
    with file_size_limit(100):  # metrics.json, the first file written, is larger
        code = main(["evaluate", str(trained_run), "--data", str(tiny_dataset), "--out", str(out), "--no-plots",
                     "--no-per-level"])
    assert code == 2
    assert _error_lines(capsys) == [f"error: {out / 'metrics.json'}: File too large"]
    assert not (tmp_path / "new").exists()


def test_export_on_a_full_disk_names_the_graph_not_its_hidden_folder(trained_run, tmp_path, capsys):
    base = tmp_path / "new" / "rs"
    with file_size_limit(1 << 20):  # the FP32 graph is some MB
        code = main(["export", str(trained_run), "--out", str(base)])
    assert code == 2
    assert _error_lines(capsys) == [f"error: {base}.onnx: File too large"]
    assert not (tmp_path / "new").exists()


def test_a_whole_write_names_its_file_never_its_temporary_or_none(tmp_path):
    path = tmp_path / "report.json"
    with pytest.raises(OSError) as caught, file_size_limit(10):
        write_whole(path, b"x" * 100)
    assert caught.value.errno == errno.EFBIG and caught.value.filename == str(path)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / path.name).mkdir()  # open() of the temporary succeeds, the rename over a folder fails
    with pytest.raises(OSError) as caught:
        write_whole(tmp_path / "ro" / path.name, b"{}")
    assert caught.value.filename == str(tmp_path / "ro" / path.name) and not caught.value.filename2
    assert sorted(os.listdir(tmp_path / "ro")) == [path.name]


def test_errors_of_files_made_in_a_staging_folder_name_the_outputs(tmp_path):
    staging, folder = tmp_path / ".rs-abc123", tmp_path
    with pytest.raises(OSError) as caught, named_as_outputs(staging, folder):
        raise OSError(errno.ENOSPC, "No space left on device", str(staging / "rs.onnx"))
    assert caught.value.filename == str(folder / "rs.onnx") and caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as caught, named_as_outputs(staging, folder):
        raise OSError(errno.EISDIR, "Is a directory", str(staging / "rs.json"), None, str(folder / "rs.json"))
    assert (caught.value.filename, caught.value.filename2) == (str(folder / "rs.json"), str(folder / "rs.json"))
    with pytest.raises(ExportError) as caught, named_as_outputs(staging, folder):
        raise ExportError(f"{staging / 'rs.fp16.onnx'}: no float16 convolution", field="precision")
    assert str(caught.value) == f"{folder / 'rs.fp16.onnx'}: no float16 convolution"
    assert caught.value.field == "precision"
    with pytest.raises(OSError) as caught, named_as_outputs(staging, folder):  # another file: as it was
        raise OSError(errno.ENOENT, "No such file or directory", "/elsewhere/x")
    assert caught.value.filename == "/elsewhere/x"


def test_only_the_folders_a_failed_block_made_and_left_empty_are_removed(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError), new_folders_removed_on_failure(tmp_path / "kept" / "a" / "b"):
        (tmp_path / "kept" / "a" / "b").mkdir(parents=True)
        raise RuntimeError("failed")
    assert os.listdir(tmp_path / "kept") == []
    with pytest.raises(RuntimeError), new_folders_removed_on_failure(tmp_path / "x" / "y"):
        (tmp_path / "x" / "y").mkdir(parents=True)
        (tmp_path / "x" / "other.txt").write_text("someone's")
        raise RuntimeError("failed")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["other.txt"]  # y went, x holds a file: kept
    with new_folders_removed_on_failure(tmp_path / "ok"):
        (tmp_path / "ok").mkdir()
    assert Path(tmp_path / "ok").is_dir()


def test_train_failing_at_its_first_checkpoint_takes_back_what_it_wrote_and_runs_again(tiny_dataset, tmp_path,
                                                                                       capsys):
    """A full disk at the first best.pt left the run folder with the config.yaml train had written, and the same
    command, once room was made, was refused: "holds config.yaml, which a new run would overwrite, and no best.pt
    to resume". The error now takes back what that start wrote (as a stop by a signal did), folders it made too."""
    out = tmp_path / "new" / "run"
    args = ["train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "1", "--set",
            "model.image_size=[32,32]", "--set", "train.batch_size=4"]
    with file_size_limit(64 << 10):  # config.yaml fits, the checkpoint does not
        assert main(args) == 2
    assert _error_lines(capsys) == [f"error: {out / 'best.pt'}: File too large"]
    assert not (tmp_path / "new").exists()
    assert main(args) == 0 and (out / "best.pt").is_file()
