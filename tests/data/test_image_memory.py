"""Images that would not fit in memory once decoded (training, evaluation, calibration) are one line before any is
decoded (the kernel killed such a run with no message)."""

from __future__ import annotations

from inspector.cli import main
from inspector.data import memory


def test_available_memory_is_read_from_the_kernels_meminfo(tmp_path):
    assert memory.available_memory_bytes() > 0  # this machine's /proc/meminfo
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:          100000 kB\nMemAvailable:    2000000 kB\n")
    assert memory.available_memory_bytes(str(meminfo)) == 2_000_000 * 1024
    meminfo.write_text("MemTotal:       16000000 kB\n")  # a kernel before 3.14: not known, no check
    assert memory.available_memory_bytes(str(meminfo)) is None
    assert memory.available_memory_bytes(str(tmp_path / "absent")) is None


def test_training_images_that_do_not_fit_in_memory_are_one_line_exit_2(tiny_dataset, tmp_path, capsys, monkeypatch):
    # a machine with 1 MiB available: low memory is what a real part cannot be made to have here
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1 << 20)
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_dataset), "--out", str(out), "--set", "model.image_size=[256,256]",
            "--set", "train.max_epochs=1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(tiny_dataset) in err and "at 256x256 need about" in err, err
    assert "GiB is available: lower model.image_size or data.input_pixels, or train on fewer images" in err, err
    assert not (out / "best.pt").exists()


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:") and "Traceback" not in err, err
    return err


def test_a_test_set_that_does_not_fit_in_memory_is_one_line_and_the_earlier_evaluation_stays(
        trained_run, tiny_dataset, tmp_path, capsys, monkeypatch):
    """evaluate keeps the test set, its maps and masks decoded together: a large one was killed for memory."""
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-plots", "--no-per-level"]) == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 100_000)  # 10 test images at 64x64: 480 kB
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-plots", "--no-per-level"]) == 2
    err = _one_error_line(capsys)
    assert str(tiny_dataset) in err and "10 test image(s) at 64x64 need about" in err and "smaller test set" in err
    assert (out / "metrics.json").read_bytes() == before


def test_calibration_images_that_do_not_fit_in_memory_are_one_line(exported_model, tiny_dataset, tmp_path, capsys,
                                                                 monkeypatch):
    """calibrate keeps every good image's float32 map until it chooses the threshold."""
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 10_000)  # 4 maps at 64x64: 128 kB
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", str(exported_model), "--data", str(tiny_dataset), "--split", "test",
                 "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert "image(s) at 64x64 need about" in err and "--good-dir with a subset" in err and not out.exists(), err
