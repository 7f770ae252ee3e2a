"""Criteria, combination and regularisation from INI and Python: every key reaches its
argument, bad values are located errors."""

import math

import pytest
import torch

from n2prune import ConfigError, PruneCell, load_network
from n2prune.cells import Fc
from n2prune.prune import CRITERIA
from n2prune.prune.criteria.combined import combine_keeps
from nets import FC_STATIC as NET  # one pruned Fc cell; {extra} at line 13


_KEEP = []  # networks stay alive: a PruneCell holds its layer by weak reference


def _load(tmp_path, extra: str):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra=extra))
    _KEEP[:] = [load_network(str(path))]
    return _KEEP[0].cells["fc"].quantizer


# every parameter a criterion declares: (criterion, INI text of a valid value, expected value)
PARAMETER_VALUES = {"CalibrationBatches": ("4", 4), "EntropyBins": ("16", 16),
                    "ScoreMomentum": ("0.5", 0.5), "PercentileLow": ("10", 10.0),
                    "PercentileHigh": ("90", 90.0), "MagnitudeThreshold": ("0.05", 0.05),
                    "SparseGPTBlockSize": ("32", 32), "SparseGPTDamp": ("0.05", 0.05)}


@pytest.mark.parametrize("name", [n for n in CRITERIA.names() if CRITERIA.get(n).params])
def test_every_criterion_parameter_reaches_its_argument_from_ini(name, tmp_path):
    criterion = CRITERIA.get(name)
    pattern = "\nQWeight.PruningPattern=Channel" if criterion.level == "channel" else ""
    lines = [f"QWeight.{key.ini}={PARAMETER_VALUES[key.ini][0]}" for key in criterion.params]
    q = _load(tmp_path, f"QWeight.PruningFiller={name}{pattern}\n" + "\n".join(lines))
    assert q.prune_filler == name
    assert q.params["criterion"] == {key.arg: PARAMETER_VALUES[key.ini][1]
                                     for key in criterion.params}


def test_criterion_parameter_out_of_range_is_located(tmp_path):
    with pytest.raises(ConfigError, match=r"net.ini:14: \[fc\] QWeight.CalibrationBatches=0.*"
                                          r"calibration_batches=0 is out of range"):
        _load(tmp_path, "QWeight.PruningFiller=Snip\nQWeight.CalibrationBatches=0")


def test_channel_criterion_without_channel_pattern_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="criterion 'APoZ' scores whole channels"):
        _load(tmp_path, "QWeight.PruningFiller=APoZ")


def test_combination_from_ini(tmp_path):
    q = _load(tmp_path, "QWeight.PruningFiller=Magnitude+Snip\nQWeight.PruningCombine=All\n"
                        "QWeight.CalibrationBatches=2")
    assert (q.prune_filler, q.combine) == ("Magnitude+Snip", "All")
    assert q.params["criterion"] == {"calibration_batches": 2}


def test_combination_errors_are_located(tmp_path):
    with pytest.raises(ConfigError, match=r"net.ini:13: \[fc\] QWeight.PruningFiller="
                                          r"Magnitude\+Snp: .*did you mean 'Snip'"):
        _load(tmp_path, "QWeight.PruningFiller=Magnitude+Snp")
    with pytest.raises(ConfigError, match=r"net.ini:14: \[fc\] QWeight.PruningCombine=Some: "
                                          r".*\(known: All, Any\)"):
        _load(tmp_path, "QWeight.PruningFiller=Magnitude+Snip\nQWeight.PruningCombine=Some")
    with pytest.raises(ConfigError, match="'Random' is a mask filler; only criteria combine"):
        _load(tmp_path, "QWeight.PruningFiller=Magnitude+Random")


def _fc(weight):
    fc = Fc(weight.shape[1], weight.shape[0], no_bias=True)
    with torch.no_grad():
        fc.weight.copy_(weight)
    return fc


W = torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]])
G = torch.tensor([[0.1, 0.3, -0.1], [2.0, -0.15, 0.2]])


@pytest.mark.parametrize("combine, expected", [
    # Magnitude at 50 % prunes (1,0)=0.5, (0,0)=1 (lower index first among the 1s), (1,1)=1;
    # Snip prunes (0,0)=0.1, (1,1)=0.15, (1,2)=0.2
    ("Any", [[0, 1, 1], [0, 0, 0]]),
    ("All", [[0, 1, 1], [1, 0, 1]]),
])
def test_combined_criteria_prune_union_or_intersection(combine, expected):
    fc = _fc(W)
    fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Magnitude+Snip",
                             combine=combine, stats={"grad": G})
    assert fc.quantizer.get_pruned_masks().tolist() == expected


def test_combination_as_a_python_list_and_its_errors():
    assert PruneCell(prune_filler=["Magnitude", "FPGM"], pattern="Channel").prune_filler == \
        "Magnitude+FPGM"
    with pytest.raises(ValueError, match=r"min_keep=0.1 cannot be guaranteed .* use "
                                         r"combine='All', min_keep=0 or scope='Layer'"):
        PruneCell(prune_filler="Magnitude+Snip", scope="Global", min_keep=0.1)
    with pytest.raises(ValueError, match="pattern='2:4' prunes within each group; it cannot "
                                         "be ranked with scope='Global'"):
        PruneCell(prune_filler="Magnitude+Snip", scope="Global", pattern="2:4")
    with pytest.raises(ValueError, match="criterion 'APoZ' scores whole channels"):
        PruneCell(prune_filler="Magnitude+APoZ")
    with pytest.raises(ValueError, match="names a criterion twice"):
        PruneCell(prune_filler="Snip+Snip")
    with pytest.raises(ValueError, match=r"combine='Some'.*\(known: All, Any\)"):
        PruneCell(prune_filler="Magnitude+Snip", combine="Some")
    assert combine_keeps([torch.tensor([True, False])], "All").tolist() == [True, False]


# Global scope, two cells: each criterion ranks the 10 weights together (5 pruned), then the
# keep-masks are combined per weight.
#   |w| a = [[1.1, 2, 3], [0.5, 1.2, 0.9]], b = [[4, 0.25], [1.5, 2.5]]:
#       Magnitude prunes b.25, a.5, a.9, a1.1, a1.2 -> keeps a [[0,1,1],[0,0,0]], b [[1,0],[1,1]]
#   |w·g| a = [[.11, .6, .3], [1, .18, .27]], b = [[.04, 1], [.75, .25]]:
#       Snip prunes b.04, a.11, a.18, b.25, a.27   -> keeps a [[0,1,1],[1,0,0]], b [[0,1],[1,0]]
WA = torch.tensor([[1.1, -2.0, 3.0], [0.5, 1.2, -0.9]])
GA = torch.tensor([[0.1, 0.3, -0.1], [2.0, -0.15, 0.3]])
WB = torch.tensor([[4.0, 0.25], [-1.5, 2.5]])
GB = torch.tensor([[0.01, 4.0], [0.5, 0.1]])
GLOBAL_EXPECTED = {"Any": ([[0, 1, 1], [0, 0, 0]], [[0, 0], [1, 0]]),
                   "All": ([[0, 1, 1], [1, 0, 0]], [[1, 1], [1, 1]])}


@pytest.mark.parametrize("combine", ["Any", "All"])
def test_combined_criteria_ranked_globally_from_python(combine):
    from n2prune.prune.ranking import prune_global
    cells = []
    for weight, grad in ((WA, GA), (WB, GB)):
        fc = _fc(weight)
        fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, scope="Global",
                                 prune_filler=["Magnitude", "Snip"], combine=combine,
                                 stats={"grad": grad})
        cells.append(fc)
    prune_global([fc.quantizer for fc in cells])
    assert [fc.quantizer.mask.int().tolist() for fc in cells] == \
        list(GLOBAL_EXPECTED[combine])


GLOBAL_NET = """
[sp]
SizeX=3
SizeY=1
NbChannels=1
[a]
Input=sp
Type=Fc
NbOutputs=2
QWeight=Prune
QWeight.PruningMode=Static
QWeight.Threshold=0.5
QWeight.PruningFiller=Magnitude+Snip
QWeight.PruningCombine={combine}
QWeight.PruningScope=Global
{extra}
[b]
Input=a
Type=Fc
NbOutputs=2
QWeight=Prune
QWeight.PruningMode=Static
QWeight.Threshold=0.5
QWeight.PruningFiller={filler_b}
QWeight.PruningCombine={combine}
QWeight.PruningScope=Global
[b.Target]
"""


def _global_net(tmp_path, combine="Any", filler_b="Magnitude+Snip", extra=""):
    path = tmp_path / "net.ini"
    path.write_text(GLOBAL_NET.format(combine=combine, filler_b=filler_b, extra=extra))
    net = load_network(str(path))
    for name, weight, grad in (("a", WA, GA), ("b", WB, GB)):
        with torch.no_grad():
            net.cells[name].weight.copy_(weight)
        net.cells[name].quantizer.set_stat("grad", grad)
    return net


@pytest.mark.parametrize("combine", ["Any", "All"])
def test_combined_criteria_ranked_globally_from_ini(tmp_path, combine):
    from n2prune import Pruner
    net = _global_net(tmp_path, combine)
    Pruner(net)  # ranks the Global cells together
    assert [net.cells[n].quantizer.mask.int().tolist() for n in "ab"] == \
        list(GLOBAL_EXPECTED[combine])


def test_global_combination_errors(tmp_path):
    from n2prune import Pruner
    net = _global_net(tmp_path, filler_b="Magnitude")
    with pytest.raises(ValueError, match=r"the cells ranked together use Magnitude \(Any\), "
                                         r"Magnitude\+Snip \(Any\); .* same prune_filler and "
                                         r"combine"):
        Pruner(net)
    with pytest.raises(ConfigError, match=r"net.ini:16: \[a\] QWeight.PruningMinKeep=0.2: "
                                          r".*min_keep=0.2 cannot be guaranteed"):
        _global_net(tmp_path, extra="QWeight.PruningMinKeep=0.2")
    net = _global_net(tmp_path, combine="All", extra="QWeight.PruningMinKeep=0.5")
    Pruner(net)  # All keeps the union of each ranking's keeps: every floor holds
    # a keeps >= 3 of 6 in each ranking: Magnitude now prunes b1.5 instead of a1.2, Snip
    # keeps a1 (0.6), a2 (0.3), a3 (1): the union keeps a1, a2, a3 and a4
    assert [net.cells[n].quantizer.mask.int().tolist() for n in "ab"] == \
        [[[0, 1, 1], [1, 1, 0]], [[1, 1], [1, 1]]]


def test_regularization_keys_from_ini_and_penalty_of_the_cell(tmp_path):
    q = _load(tmp_path, "QWeight.PruningFiller=Magnitude\nQWeight.PruningPattern=Channel\n"
                        "QWeight.Regularization=GroupLasso\n"
                        "QWeight.RegularizationStrength=0.5\nQWeight.RegularizationStart=10\n"
                        "QWeight.RegularizationEnd=30")
    assert (q.regularization, q.regularization_strength, q.regularization_start,
            q.regularization_end) == ("GroupLasso", 0.5, 10, 30)
    from n2prune.prune.regularization import cell_penalty
    rows = (q.cell.weight * q.mask).detach().norm(dim=1).sum()
    assert float(cell_penalty(q, 20).detach()) == pytest.approx(0.25 * float(rows), rel=1e-5)
    assert float(cell_penalty(q, 5).detach()) == 0.0
    with pytest.raises(ConfigError, match=r"net.ini:14: \[fc\] QWeight.Regularization=L2: "
                                          r".*\(known: GroupLasso, L1, None\)"):
        _load(tmp_path, "QWeight.PruningFiller=Magnitude\nQWeight.Regularization=L2")
    with pytest.raises(ConfigError, match=r"regularization_strength=-1.0 is out of range"):
        _load(tmp_path, "QWeight.PruningFiller=Magnitude\nQWeight.RegularizationStrength=-1")


def test_penalty_gradient_reaches_the_kept_weights_only():
    fc = _fc(W)
    fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Magnitude",
                             regularization="L1", regularization_strength=2.0)
    from n2prune.prune.regularization import cell_penalty
    cell_penalty(fc.quantizer, 0).backward()
    kept = fc.quantizer.get_pruned_masks()
    assert torch.equal(fc.weight.grad, 2.0 * torch.sign(W) * kept)
    assert math.isclose(float(cell_penalty(fc.quantizer, 0).detach()), 2.0 * float((W * kept).abs().sum()))
