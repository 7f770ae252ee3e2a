"""n2prune-info: one line per cell and the totals; errors as one line, exit code 2."""

from pathlib import Path

from n2prune.cli import info_main

ROOT = Path(__file__).resolve().parent.parent


def test_info_lists_every_cell_with_shape_params_and_pruning(capsys):
    assert info_main([str(ROOT / "networks" / "lenet.ini")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["cell", "type", "inputs", "output", "params", "pruning"]
    rows = {line.split()[0]: line for line in out[1:-1]}
    assert list(rows) == ["conv1", "pool1", "conv2", "pool2", "fc1", "fc1.drop", "fc2",
                          "softmax"]
    assert "16x28x28" in rows["conv1"] and "416" in rows["conv1"]
    assert "Gradual/IterNonStruct t=0.93" in rows["fc1"] and rows["pool1"].endswith("-")
    assert out[-1].startswith("input 1x28x28; 8 cells; 117,066 parameters")


def test_info_error_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.ini"
    bad.write_text("[sp]\nSizeX=8\nSizeY=8\n[fc]\nInput=sp\nType=Fcc\nNbOutputs=2\n")
    assert info_main([str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {bad}:6: [fc] Type=Fcc: unknown cell type 'Fcc'")
    assert info_main([str(tmp_path / "missing.ini")]) == 2
    assert "missing.ini" in capsys.readouterr().err
