"""An output name the user gives may be legal while a name made from it is not: told before any work.

``export --out NAME`` writes ``NAME.onnx``, ``NAME.json`` and ``NAME.fp16.onnx``; with a 248-byte NAME the last
is 258 bytes, past NAME_MAX (255). The export ran, then failed with "torch.onnx export failed (OSError: File
name too long: 'rc/.mmm…-nk5oi59h/mmm…')", naming a hidden staging folder. ``build`` (``.verify.json``,
``.build.log``) likewise. :func:`inspector.outputs.claim_outputs`, which every set-of-files writer calls before
its work, now checks each name's length.
"""

from __future__ import annotations

import pytest
from tiny_graphs import write_exported

from inspector.cli import main
from inspector.deploy.export import check_out_base
from inspector.errors import ExportError


def test_an_export_whose_fp16_name_is_too_long_is_refused_before_the_work(tmp_path):
    base = tmp_path / ("m" * 248)  # m….onnx and m….json fit in 255 bytes, m….fp16.onnx does not
    with pytest.raises(ExportError, match=r"cannot export there: its file .*\.fp16\.onnx would be 258 bytes long, "
                                          r"more than the 255 a file name may have; --out a shorter name$"):
        check_out_base(base)
    assert list(tmp_path.iterdir()) == []
    check_out_base(tmp_path / ("m" * 245))  # every name fits


def test_a_build_whose_report_name_is_too_long_is_one_line_and_writes_nothing(tmp_path, capsys):
    graph = write_exported(tmp_path / "export")
    out = tmp_path / "engines" / ("e" * 248 + ".plan")  # the engine's own name fits; e….verify.json does not
    assert main(["build", str(graph), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot build there: its file" in err and "--out a shorter name" in err, err
    assert not (tmp_path / "engines").exists() or list((tmp_path / "engines").iterdir()) == []
