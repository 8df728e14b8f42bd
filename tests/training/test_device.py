"""Training device: resolution rules (CPU here), the AMP/channels-last path, a real CUDA run (torch_cuda)."""

import json
import math

import pytest
import torch

from inspector.cli import main
from inspector.errors import ConfigError
from inspector.models.registry import build_model
from inspector.training.checkpoint import load_model
from inspector.training.config import TrainConfig, load_run_config
from inspector.training.device import TrainingDevice, cpu_has_native_bf16, resolve_device, resolve_precision
from inspector.training.loop import default_phases, fit, load_training_images, train

CUDA = torch.cuda.is_available()
no_cuda = pytest.mark.skipif(CUDA, reason="checks the behaviour without a CUDA device")


def test_auto_picks_cuda_only_when_torch_sees_one():
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu").type == "cpu"
    cpu_auto = torch.bfloat16 if cpu_has_native_bf16() else None  # bf16 only where the CPU has it in hardware
    assert resolve_precision("auto", torch.device("cpu")) is cpu_auto
    assert resolve_precision("fp32", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16


X86_FLAGS = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512bw {extra}\n"
ARM_FEATURES = "processor\t: 0\nFeatures\t: fp asimd sve {extra}\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize("text, native", [
    (X86_FLAGS.format(extra="avx512_vnni avx512_bf16"), True),  # Zen 4, Cooper Lake
    (X86_FLAGS.format(extra="amx_tile amx_bf16 amx_int8"), True),  # Sapphire Rapids
    (X86_FLAGS.format(extra="avx512_vnni"), False),  # Cascade Lake, Zen 3: oneDNN would only emulate bf16
    (X86_FLAGS.format(extra="avx512_bf16_not_a_flag"), False),
    (ARM_FEATURES.format(extra="i8mm bf16"), True),  # Neoverse V1/V2, Grace
    (ARM_FEATURES.format(extra="i8mm"), False),
    ("", False),
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, text, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    assert cpu_has_native_bf16(str(cpuinfo)) is native
    assert cpu_has_native_bf16(str(tmp_path / "absent")) is False  # not Linux: FP32


@no_cuda
def test_cuda_without_a_gpu_is_a_one_line_error(tiny_dataset, tmp_path, capsys):
    with pytest.raises(ConfigError, match="train.device: 'cuda' requested but torch sees no CUDA device"):
        resolve_device("cuda")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: train.device: 'cuda'") and "\n" not in err
    assert not (out / "best.pt").exists()


def test_device_settings_are_checked(tmp_path, capsys):
    with pytest.raises(ConfigError, match="'fp16' needs a CUDA device; on CPU use bf16, fp32 or auto"):
        resolve_precision("fp16", torch.device("cpu"))
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "train.device=gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.device: 'gpu' is not one of" in err and "\n" not in err


def test_cpu_device_moves_nothing():
    cpu = TrainingDevice.from_config(TrainConfig(device="cpu"))
    data = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    assert not cpu.fits(1) and cpu.place(data, resident=False) is data and cpu.to_device(data) is data
    assert cpu.scaler is None and cpu.describe()["device"] == "cpu" and not cpu.describe()["channels_last"]
    assert cpu.describe()["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")
    forced = TrainingDevice.from_config(TrainConfig(device="cpu", precision="fp32"))
    assert forced.amp_dtype is None and forced.describe()["precision"] == "fp32"


def test_autocast_and_channels_last_path_trains(tiny_dataset):
    """The mixed-precision code path (autocast bf16, channels-last weights) runs end to end on CPU autocast."""
    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [64, 64]},
                                   "data": {"path": str(tiny_dataset)}, "train": {"epochs": 1, "batch_size": 4}})
    train_imgs, val_imgs, _ = load_training_images(config)
    model = build_model(config.model)
    device = TrainingDevice(torch.device("cpu"), amp_dtype=torch.bfloat16, channels_last=True)
    device.prepare_model(model)
    convs = [p for p in model.student.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    result = fit(model, default_phases(model, config.train)[0], train_imgs, val_imgs,
                 lambda e, v: None, device=device)
    assert result.epochs_run == 1 and all(math.isfinite(h["val_loss"]) for h in result.history)


@pytest.mark.torch_cuda
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_trains_on_cuda_and_the_checkpoint_loads_on_cpu(tiny_dataset, tmp_path, precision):
    assert CUDA, f"a GPU is present but torch {torch.__version__} cannot use it (CPU-only build?)"
    run_dir = tmp_path / "run"
    config = load_run_config(base={
        "model": {"name": "reduced_student", "image_size": [64, 64], "smoothing_sigma": 1.0},
        "data": {"path": str(tiny_dataset)},
        "train": {"epochs": 2, "batch_size": 4, "device": "cuda", "precision": precision},
    })
    summary = train(config, run_dir)
    assert summary["device"]["device"].startswith("cuda") and summary["device"]["channels_last"]
    assert summary["device"]["precision"] in (("bf16", "fp16") if precision == "auto" else ("fp16",))
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in history)
    model, _, payload = load_model(run_dir)  # map_location cpu
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())
    with torch.no_grad():
        score, amap = model(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    assert torch.isfinite(score).all() and amap.shape == (1, 1, 64, 64)


@pytest.mark.torch_cuda
def test_frozen_teacher_stays_in_eval_mode_on_cuda(tiny_dataset):
    assert CUDA, f"a GPU is present but torch {torch.__version__} cannot use it (CPU-only build?)"
    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [64, 64]},
                                   "data": {"path": str(tiny_dataset)},
                                   "train": {"epochs": 1, "batch_size": 4, "device": "cuda"}})
    train_imgs, val_imgs, _ = load_training_images(config)
    model = build_model(config.model)
    device = TrainingDevice.from_config(config.train)
    device.prepare_model(model)
    modes = []
    fit(model, default_phases(model, config.train)[0], train_imgs, val_imgs,
        lambda e, v: modes.append((model.teacher.training, model.student.training)), device=device)
    assert modes == [(False, True)]
    convs = [p for p in model.student.parameters() if p.dim() == 4]
    assert convs and all(p.is_cuda and p.is_contiguous(memory_format=torch.channels_last) for p in convs)
