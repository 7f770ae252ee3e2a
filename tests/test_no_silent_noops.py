"""No silent no-ops: a threshold that Identity mode would ignore, and a target a pattern
cannot reach, are said at once."""

import warnings

import pytest
import torch
from torch import nn

import n2prune
from n2prune.errors import ConfigError
from n2prune.network import load_network
from n2prune.prune.reached import TargetMissedWarning


def test_a_threshold_without_a_mode_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match=r"threshold=0.5 with prune_mode='Identity' \(the "
                                         r"default\) prunes nothing; add prune_mode='Static'"):
        n2prune.attach(nn.Linear(4, 4), threshold=0.5, prune_filler="Magnitude")
    with pytest.raises(ValueError, match=r"prune_mode='Identity'"):
        n2prune.PruneCell(prune_mode="Identity", threshold=0.5)


def test_identity_without_a_threshold_is_still_fine():
    assert n2prune.PruneCell(prune_mode="Identity").get_current_threshold() == 0.0
    assert n2prune.PruneCell(prune_filler=None, threshold=0.5).prune_filler == "None"


def test_a_threshold_without_a_mode_in_ini_is_located(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text("[sp]\nSizeX=8\nSizeY=1\nNbChannels=1\n[fc]\nInput=sp\nType=Fc\n"
                    "NbOutputs=4\nQWeight=Prune\nQWeight.PruningFiller=Magnitude\n"
                    "QWeight.Threshold=0.5\n[fc.Target]\n")
    with pytest.raises(ConfigError, match=r"net.ini:11: \[fc\] QWeight.Threshold=0.5: "
                                          r".*add prune_mode='Static'"):
        load_network(path)


def test_two_of_four_along_one_input_channel_says_what_it_reaches():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))
    with pytest.warns(TargetMissedWarning, match=r"^0 \(Conv2d 8x1x3x3\): target 0.5000, "
                                                 r"reached 0.0000: pattern 2:4 cannot"):
        n2prune.attach(model, prune_mode="Static", prune_filler="Magnitude", threshold=0.5,
                       pattern="2:4")


def test_smaller_edge_blocks_that_miss_the_target_are_reported():
    layer = nn.Linear(10, 3)  # 2x2 blocks: the third row's blocks hold 2 weights, not 4
    with torch.no_grad():
        layer.weight.copy_(torch.arange(30.0).reshape(3, 10).flip(0))  # edge blocks lowest
    with pytest.warns(TargetMissedWarning, match=r"target 0.5000, reached 0.3333: pattern 2x2"):
        n2prune.attach(layer, prune_mode="Static", prune_filler="Magnitude", threshold=0.5,
                       pattern="2x2")


def test_a_block_larger_than_the_weight_says_it_prunes_everything():
    with pytest.warns(TargetMissedWarning, match=r"target 0.0100, reached 1.0000"):
        n2prune.attach(nn.Linear(8, 8), prune_mode="Static", prune_filler="Magnitude",
                       threshold=0.01, pattern="16x16")


def test_rounding_alone_is_not_reported():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetMissedWarning)
        n2prune.attach(nn.Linear(10, 4), prune_mode="Static", prune_filler="Magnitude",
                       threshold=0.45, pattern="2x2")
        n2prune.attach(nn.Linear(7, 3), prune_mode="Static", prune_filler="Magnitude",
                       threshold=0.35, group="Row")


def test_a_global_floor_that_stops_the_target_is_reported_once():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    with pytest.warns(TargetMissedWarning, match=r"Global cells 0, 1: target 0.9000, "
                                                 r"reached 0.0000"):
        cells = n2prune.attach(model, prune_mode="Static", prune_filler="Magnitude",
                               threshold=0.9, scope="Global", min_keep=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetMissedWarning)
        n2prune.Pruner(cells).recompute()


def test_a_gradient_criterion_whose_loop_never_gives_gradients_says_so():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].weight.requires_grad_(False)
    n2prune.attach(model, prune_mode="Static", prune_filler="Snip", threshold=0.9,
                   calibration_batches=2)
    pruner = n2prune.Pruner(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with pytest.raises(ValueError, match=r"0 \(Snip\) lacks grad.*run pruner.calibrate"):
        for _ in range(2):
            loss = model(torch.randn(8, 4)).square().mean()
            optimizer.zero_grad()
            loss.backward()
            pruner.on_before_optimizer_step()
            optimizer.step()
            pruner.on_step_end(8)


def test_n2prune_train_reports_a_target_the_pattern_cannot_reach(tmp_path, capsys):
    import json
    from pathlib import Path
    from n2prune.cli import train_main
    root = Path(__file__).resolve().parent.parent
    text = (root / "networks" / "digits.ini").read_text()
    config = text[text.index("QWeight.PruningMode=Gradual"):]
    text = text.replace(config, "QWeight.PruningMode=Static\nQWeight.PruningFiller=Magnitude\n"
                                "QWeight.PruningPattern=2:4\nQWeight.Threshold=0.5\n")
    path = tmp_path / "digits.ini"
    path.write_text(text)
    assert train_main([str(path), "-learn-epoch", "1", "-seed", "2", "--threads", "1",
                       "--quiet", "--output", str(tmp_path / "o")]) == 0
    assert "warning: conv1 (Conv 16x1x3x3): target 0.5000, reached 0.0000: pattern 2:4" \
        in capsys.readouterr().err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["targets_missed"] == [
        "conv1 (Conv 16x1x3x3): target 0.5000, reached 0.0000: pattern 2:4 cannot prune this "
        "16x1x3x3 weight to 0.5000"]
