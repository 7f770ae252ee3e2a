"""-w weight files: NaN, Inf and values beyond float32 are refused, naming file, line, cell."""

import re
from pathlib import Path

import pytest
import torch

from n2prune.cells.batchnorm import BatchNorm
from n2prune.cells.conv import Conv
from n2prune.cli import train_main
from n2prune.n2d2io.read import read_weights
from n2prune.n2d2io.write import write_weights
from n2prune.network.build import load_network

DIGITS = str(Path(__file__).resolve().parent.parent / "networks" / "digits.ini")


@pytest.mark.parametrize("word", ["nan", "-NaN", "inf", "-Infinity", "1e39", "-3.5e38",
                                  "1e400"])
def test_non_finite_or_float32_overflowing_weights_are_refused(tmp_path, word):
    cell = Conv(1, 2, kernel_dims=[1, 2])
    (tmp_path / "conv1_weights.syntxt").write_text(f"1 2\n0.5 {word}\n")
    (tmp_path / "conv1_biases.syntxt").write_text("0\n0\n")
    with pytest.raises(ValueError, match=re.escape(
            f"conv1_weights.syntxt:2: value 2 is '{word}', not a finite float32 number")
            + r".*\(cell 'conv1'\)$"):
        read_weights({"conv1": cell}, tmp_path)
    assert torch.isfinite(cell.weight).all()


def test_the_largest_float32_is_accepted(tmp_path):
    cell = Conv(1, 1, kernel_dims=[1, 2])
    (tmp_path / "c.syntxt").write_text("3.4028235e38 -3.4028235e38 0\n")
    read_weights({"c": cell}, tmp_path)
    assert cell.weight.flatten().tolist() == [3.4028234663852886e38, -3.4028234663852886e38]


def test_batchnorm_and_bias_files_are_checked_too(tmp_path):
    (tmp_path / "bn.syntxt").write_text("1 0 0 1\n1 inf 0 1\n")
    with pytest.raises(ValueError, match=r"bn\.syntxt:2: value 2 is 'inf'.*\(cell 'bn'\)"):
        read_weights({"bn": BatchNorm(2)}, tmp_path)
    cell = Conv(1, 2, kernel_dims=[1, 1])
    (tmp_path / "c_weights.syntxt").write_text("1\n1\n")
    (tmp_path / "c_biases.syntxt").write_text("0\nnan\n")
    with pytest.raises(ValueError, match=r"c_biases\.syntxt:2: value 1 is 'nan'"):
        read_weights({"c": cell}, tmp_path)


def test_test_run_with_a_nan_weight_file_exits_2_naming_it(tmp_path, capsys):
    net = load_network(DIGITS, seed=1)
    write_weights(net, tmp_path / "w")
    path = tmp_path / "w" / "fc1_weights.syntxt"
    lines = path.read_text().splitlines()
    lines[2] = "nan " + lines[2].split(" ", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    code = train_main([DIGITS, "-test", "-seed", "1", "--quiet", "-w", str(tmp_path / "w"),
                       "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "fc1_weights.syntxt:3: value 1 is 'nan'" in err[0] and "cell 'fc1'" in err[0]
    assert not (tmp_path / "o" / "test_report.json").exists()
