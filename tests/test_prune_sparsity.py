"""One definition of sparsity: pruned over connected weights (Mapping-disconnected weights are
neither pruned nor counted), shared by PruneCell, the trainer and report.json."""

import torch

from n2prune import PruneCell
from n2prune.cells import Conv, Fc
from n2prune.prune.sparsity import cell_counts, mask_sparsity, sparsity


def _mapped_conv(**kwargs):
    connection = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)  # 4 of 6 connected
    conv = Conv(2, 3, kernel_dims=[1, 1], connection=connection, no_bias=True)
    conv.quantizer = PruneCell(**kwargs)
    return conv


def test_disconnected_weights_are_not_counted_as_pruned():
    conv = _mapped_conv(prune_mode="Identity")
    assert int((conv.effective_weight() == 0).sum()) == 2  # the old trainer counted these
    assert cell_counts(conv) == (0, 4)
    assert conv.quantizer.sparsity() == 0.0 == sparsity([conv])


def test_prunecell_trainer_and_report_agree():
    conv = _mapped_conv(prune_mode="Static", prune_filler="Magnitude", threshold=0.5)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(3, 2, 1, 1))
    conv.quantizer.recompute()
    pruned, connected = cell_counts(conv)
    assert connected == 4
    assert conv.quantizer.sparsity() == pruned / connected == sparsity([conv])


def test_cells_without_prunecell_count_as_dense_and_sum_over_cells():
    dense = Fc(4, 2)
    pruned = Fc(4, 2)
    pruned.quantizer = PruneCell(prune_mode="Static", prune_filler="Magnitude", threshold=0.5)
    assert cell_counts(dense) == (0, 8)
    assert sparsity([dense, pruned]) == 4 / 16
    assert sparsity([]) == 0.0 and mask_sparsity(torch.ones(0)) == 0.0
