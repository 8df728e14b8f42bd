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
    no_cgroup = str(tmp_path / "absent-cgroup")
    assert memory.available_memory_bytes(str(meminfo), no_cgroup) is None
    assert memory.available_memory_bytes(str(tmp_path / "absent"), no_cgroup) is None


def _cgroup(tmp_path, line, files):
    """A /proc/self/cgroup holding ``line`` and a cgroup mount whose files are ``files`` (relative path → text)."""
    tmp_path.mkdir()
    (tmp_path / "self-cgroup").write_text(line + "\n")
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text + "\n")
    return str(tmp_path / "self-cgroup"), str(tmp_path / "fs")


def test_available_memory_is_no_more_than_the_cgroup_leaves(tmp_path):
    # in a container the kernel kills at the memory cgroup's limit, however much MemAvailable the host shows
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:   16000000 kB\n")  # 15.3 GiB on the host
    v2 = _cgroup(tmp_path / "v2", "0::/box/inspector", {"box/inspector/memory.max": str(4 << 30),
                                                       "box/inspector/memory.current": str(3 << 30),
                                                       "box/memory.max": "max", "box/memory.current": "5"})
    assert memory.cgroup_memory_left(*v2) == 1 << 30
    assert memory.available_memory_bytes(str(meminfo), *v2) == 1 << 30
    # a parent's limit binds too (cgroup v1 here; "no limit" is written as 2**63 rounded to a page)
    v1 = _cgroup(tmp_path / "v1", "12:cpu:/\n4:memory:/box/inspector",
                 {"memory/box/inspector/memory.limit_in_bytes": "9223372036854771712",
                  "memory/box/inspector/memory.usage_in_bytes": str(3 << 30),
                  "memory/box/memory.limit_in_bytes": str(5 << 30), "memory/box/memory.usage_in_bytes": str(3 << 30)})
    assert memory.available_memory_bytes(str(meminfo), *v1) == 2 << 30
    # the page cache counts in the usage but is reclaimed before the kernel kills: a dataset just read (2 GiB of
    # inactive file pages) leaves 3 GiB, not 1 (the working set: usage − inactive_file, as Docker computes it)
    cached = _cgroup(tmp_path / "cached", "0::/box",
                     {"box/memory.max": str(4 << 30), "box/memory.current": str(3 << 30),
                      "box/memory.stat": f"anon 5\ninactive_file {2 << 30}\nactive_file 7\n"})
    assert memory.cgroup_memory_left(*cached) == 3 << 30
    cached_v1 = _cgroup(tmp_path / "cached-v1", "4:memory:/box",
                        {"memory/box/memory.limit_in_bytes": str(4 << 30),
                         "memory/box/memory.usage_in_bytes": str(3 << 30),
                         "memory/box/memory.stat": f"inactive_file 9\ntotal_inactive_file {2 << 30}\n"})
    assert memory.cgroup_memory_left(*cached_v1) == 3 << 30
    # a cgroup namespace: the group is the mount itself; no limit: MemAvailable alone
    ns = _cgroup(tmp_path / "ns", "0::/", {"memory.max": "max", "memory.current": "123"})
    assert memory.cgroup_memory_left(*ns) is None
    assert memory.available_memory_bytes(str(meminfo), *ns) == 16_000_000 * 1024


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


def _grey_png(width: int, height: int) -> bytes:
    """A black 8-bit grey PNG of ``width`` x ``height``, written row by row (its IDAT compresses ~1000:1)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + samples
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_an_image_too_large_to_decode_in_memory_is_one_line(exported_model, tmp_path):
    """A 30000x30000 grey PNG (0.9 MB on disk) asks 0.9 GB to decode and 2.7 GB for its RGB copy: in a process
    limited to 4 GB of address space (a container, ``ulimit -v``), predict ended in OpenCV's "Insufficient
    memory" cv2.error traceback. The one decoder says it in one line naming the file, exit 2."""
    import resource
    import subprocess
    import sys

    image = tmp_path / "huge.png"
    image.write_bytes(_grey_png(30000, 30000))
    limit = 4 << 30
    done = subprocess.run([sys.executable, "-m", "inspector", "predict", str(exported_model), str(image)],
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr == (f"error: {image}: image of 30000x30000 pixels does not fit in the memory available to "
                           f"decode it (asked for 2.7 GB more)\n")


def _declared_png(width: int, height: int, rows: int) -> bytes:
    """An 8-bit grey PNG header of ``width`` x ``height`` whose IDAT holds its first ``rows`` rows: what a
    decompression bomb's header declares is all the decoder's size check reads."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(width + 1) * rows, 9)) + chunk(b"IEND", b""))


def test_an_image_larger_than_the_decoder_reads_is_said_by_its_size(exported_model, tmp_path, capsys):
    """OpenCV refuses a header declaring more than 2**30 pixels or 2**20 a side before reading any data; that was
    "cannot decode image (corrupt or unsupported format)", and the user went looking for damage or a codec. The
    size is said, one line, exit 2 (reason ``too_large`` where a daemon counts it)."""
    from inspector.data.images import ImageRejected, read_image

    wide, bomb = tmp_path / "line-scan.png", tmp_path / "bomb.png"
    wide.write_bytes(_declared_png(1_100_000, 8, 8))  # 8.8 Mpixel, but wider than 2**20
    bomb.write_bytes(_declared_png(60000, 60000, 4))  # 3.6 Gpixel in 4 KB
    for path, size in ((wide, "1100000x8"), (bomb, "3600000000")):
        try:
            read_image(path)
        except ImageRejected as exc:
            assert exc.reason == "too_large" and f"image of {size} pixels is larger than the decoder reads" in str(exc)
        else:
            raise AssertionError(f"{path} was read")
    assert main(["predict", str(exported_model), str(bomb)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {bomb}: image of 3600000000 pixels is larger than the decoder reads (at most 1073741824 "
                   f"pixels, 1048576 a side): not decoded\n"), err
