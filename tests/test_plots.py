"""Plots: valid PNG files written atomically, clear errors on bad input."""

import pytest

pytest.importorskip("matplotlib")

from n2prune.train.plots import plot_learning_curves, plot_sparsity  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _rows():
    return [{"epoch": epoch, "stimuli": 1000 * epoch, "loss": 2.3 / (1 + epoch),
             "learn_accuracy": 0.5 + 0.04 * epoch,
             "validation_accuracy": None if epoch == 0 else 0.45 + 0.04 * epoch,
             "learning_rate": 0.05, "sparsity": min(0.9, 0.3 + 0.1 * epoch)}
            for epoch in range(8)]


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_learning_curves_are_a_png(tmp_path):
    path = plot_learning_curves(_rows(), tmp_path / "plots" / "learning.png")
    assert path == tmp_path / "plots" / "learning.png"
    width, height = _png_size(path)
    assert width > 0 and height > width  # three stacked panels
    assert [p.name for p in path.parent.iterdir()] == ["learning.png"]  # no temporary left


def test_learning_curves_accept_csv_strings_and_missing_validation(tmp_path):
    rows = [{key: ("" if value is None else str(value)) for key, value in row.items()}
            for row in _rows()]
    for row in rows:
        row["validation_accuracy"] = ""
    _png_size(plot_learning_curves(rows, tmp_path / "a.png"))


def test_learning_curves_reject_empty_and_non_numbers(tmp_path):
    with pytest.raises(ValueError, match="rows is empty"):
        plot_learning_curves([], tmp_path / "a.png")
    rows = _rows()
    rows[2]["loss"] = "high"
    with pytest.raises(ValueError, match=r"rows\[2\]\['loss'\]='high': expected a number"):
        plot_learning_curves(rows, tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_sparsity_chart_is_a_png(tmp_path):
    cells = [("conv1", 0.62, 0.9), ("conv2", 0.9, 0.9), ("fc1", 0.905, 0.9), ("fc2", 0.5, None)]
    width, height = _png_size(plot_sparsity(cells, tmp_path / "sparsity.png"))
    assert width > height > 0


def test_sparsity_chart_rejects_bad_items(tmp_path):
    with pytest.raises(ValueError, match="cells is empty"):
        plot_sparsity([], tmp_path / "s.png")
    with pytest.raises(ValueError, match=r"cells\[1\]=\('fc', 0\.5\): expected \(name, "
                                         r"sparsity, target\)"):
        plot_sparsity([("conv", 0.1, 0.2), ("fc", 0.5)], tmp_path / "s.png")


def test_a_failed_save_leaves_the_previous_png_and_no_temporary(tmp_path, monkeypatch):
    path = plot_sparsity([("conv", 0.5, 0.9)], tmp_path / "s.png")
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("n2prune.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        plot_sparsity([("conv", 0.9, 0.9)], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]
