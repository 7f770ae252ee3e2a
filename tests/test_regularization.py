"""L1 and group-lasso penalties: values by hand, groups per pattern, the strength schedule."""

import math

import pytest
import torch

from n2prune.prune.regularization import (check_regularization, group_lasso, l1, pattern_groups,
                                          penalty, strength_at)


def test_l1_and_channel_group_lasso_values():
    w = torch.tensor([[3.0, -4.0], [0.0, 1.0]])
    assert float(l1(w)) == 8.0
    assert float(group_lasso(w, "Channel")) == 6.0  # ||(3,-4)|| + ||(0,1)||
    assert float(group_lasso(w, "Unstructured")) == 8.0  # groups of one: L1


def test_group_lasso_blocks_and_n_of_m_groups():
    w = torch.arange(8.0).reshape(2, 4)
    # 2x1 blocks: columns (0,4), (1,5), (2,6), (3,7)
    expected = sum(math.hypot(a, a + 4) for a in range(4))
    assert float(group_lasso(w, "KxL", {"k": 2, "l": 1})) == pytest.approx(expected)
    # N:M with m=2 along the inputs: (0,1), (2,3), (4,5), (6,7)
    assert pattern_groups(w, "N:M", {"m": 2}).tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    # a conv weight [O, C, kH, kW] groups along C at fixed (o, kh, kw)
    conv = torch.arange(8.0).reshape(1, 4, 1, 2)
    assert pattern_groups(conv, "N:M", {"m": 2}).tolist() == [[0, 2], [4, 6], [1, 3], [5, 7]]


def test_group_lasso_gradient_is_finite_at_zero_groups():
    w = torch.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    group_lasso(w, "Channel").backward()
    assert torch.allclose(w.grad, torch.tensor([[0.0, 0.0], [0.6, 0.8]]))


def test_strength_schedule_ramps_linearly():
    assert [strength_at(2.0, p, 100, 300) for p in (0, 99, 100, 200, 300, 1000)] == \
        [0.0, 0.0, 0.0, 1.0, 2.0, 2.0]
    assert strength_at(2.0, 0) == 2.0  # start = end = 0: constant
    w = torch.tensor([[3.0, -4.0]])
    assert float(penalty(w, "GroupLasso", 0.5, position=200, start=100, end=300,
                         pattern="Channel")) == pytest.approx(1.25)
    assert float(penalty(w, "None", 0.5)) == 0.0


def test_bad_regularization_arguments_name_what_is_valid():
    with pytest.raises(ValueError, match="regularization='GroupLaso': unknown value "
                                         "'GroupLaso'; did you mean 'GroupLasso'"):
        check_regularization("GroupLaso", 1e-4, 0, 0)
    with pytest.raises(ValueError, match=r"regularization_strength=-1 is out of range"):
        check_regularization("L1", -1, 0, 0)
    with pytest.raises(ValueError, match="regularization_end=1.5 must be an integer >= 0"):
        check_regularization("L1", 1.0, 0, 1.5)
