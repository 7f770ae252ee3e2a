"""A -w folder missing a cell's file is refused, or read partially with a warning naming
the cells left at their initial weights (n2prune-compact, n2prune-train -test, n2prune-info)."""

from pathlib import Path

import pytest

from n2prune import load_network
from n2prune.cli import compact_main, info_main, train_main
from n2prune.n2d2io.read import missing_weight_files, read_weight_folder
from n2prune.n2d2io.write import write_weights

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")


@pytest.fixture
def partial(tmp_path):
    """digits.ini's weights with fc1's weight file removed."""
    write_weights(load_network(DIGITS, seed=3), tmp_path / "w")
    (tmp_path / "w" / "fc1_weights.syntxt").unlink()
    return tmp_path / "w"


COMMANDS = {
    "compact": lambda w, tmp, *more: compact_main(
        [DIGITS, "-w", str(w), "--no-onnx", "--output", str(tmp / "out"), *more]),
    "train-test": lambda w, tmp, *more: train_main(
        [DIGITS, "-test", "-seed", "3", "--quiet", "-w", str(w), "--output", str(tmp / "out"),
         *more]),
    "info-costs": lambda w, tmp, *more: info_main([DIGITS, "--costs", "-w", str(w), *more]),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_partial_folder_is_refused_naming_the_missing_file(command, partial, tmp_path,
                                                              capsys):
    assert COMMANDS[command](partial, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: -w {partial}: fc1_weights.syntxt "
                                               f"missing (1 of ")
    assert "--allow-partial-weights" in err[0]
    assert not (tmp_path / "out" / "test_report.json").exists()
    assert not (tmp_path / "out" / "digits.ini").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_allow_partial_weights_reads_the_rest_and_names_the_cells(command, partial, tmp_path,
                                                                   capsys):
    assert COMMANDS[command](partial, tmp_path, "--allow-partial-weights") == 0
    err = capsys.readouterr().err
    assert "warning: -w" in err and "initial (random) weights" in err and ": fc1" in err


def test_the_partial_read_keeps_the_initial_weights_of_the_missing_cell(partial):
    trained = load_network(DIGITS, seed=3)
    net = load_network(DIGITS, seed=4)
    before = net.cells["fc1"].weight.detach().clone()
    assert missing_weight_files(net, partial) == {"fc1": partial / "fc1_weights.syntxt"}
    with pytest.warns(UserWarning, match="fc1"):
        read_weight_folder(net, partial, allow_partial=True)
    assert net.cells["fc1"].weight.equal(before)
    assert net.cells["conv1"].weight.equal(trained.cells["conv1"].weight)


def test_a_complete_folder_reads_silently(tmp_path, recwarn):
    write_weights(load_network(DIGITS, seed=3), tmp_path / "w")
    net = load_network(DIGITS, seed=4)
    assert read_weight_folder(net, tmp_path / "w")
    assert not [w for w in recwarn if "weights" in str(w.message)]
