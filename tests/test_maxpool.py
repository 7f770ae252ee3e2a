"""Max pooling through the channels-last kernel (n2prune.cells.maxpool): bit for bit what
F.max_pool2d gives, values and gradients, wherever the fast path is taken."""

import pytest
import torch
import torch.nn.functional as F

from n2prune.cells.maxpool import FAST_MIN_ELEMENTS, fast_path, max_pool2d
from n2prune.cells.pool import Pool

# (shape, kernel, stride, padding): LeNet's two pools, overlapping windows, padding,
# rectangular windows, odd sizes, float64
CASES = [((64, 16, 24, 24), (2, 2), (2, 2), (0, 0)),
         ((64, 32, 8, 8), (2, 2), (2, 2), (0, 0)),
         ((8, 32, 13, 13), (3, 3), (2, 2), (1, 1)),
         ((8, 32, 12, 12), (3, 3), (1, 1), (1, 1)),
         ((8, 24, 17, 19), (3, 2), (2, 1), (1, 0)),
         ((2, 64, 16, 16), (2, 2), (2, 2), (0, 0))]


def _input(shape, dtype=torch.float32, seed=0):
    """ReLU-like activations with ties of zeros and of positive values, NaN and -inf."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype).relu()
    flat = x.view(-1)
    flat[:5] = float("nan")
    flat[30:41] = float("-inf")
    flat[100:140] = 2.0
    x[..., ::3, :] = x[..., ::3, :].round()  # many exact ties
    return x


def _pool_and_grad(pool, x, kernel, stride, padding, grad_seed=1):
    x = x.clone().requires_grad_()
    y = pool(x, kernel, stride, padding)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed),
                    dtype=y.dtype)
    (gx,) = torch.autograd.grad(y, x, g)
    return y, gx


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_values_and_gradients_are_bitwise_those_of_torch(shape, kernel, stride, padding,
                                                          dtype):
    x = _input(shape, dtype)
    assert fast_path(x)
    ours = _pool_and_grad(max_pool2d, x, kernel, stride, padding)
    torch_s = _pool_and_grad(F.max_pool2d, x, kernel, stride, padding)
    assert torch.equal(ours[0].isnan(), torch_s[0].isnan())
    assert torch.equal(ours[0].nan_to_num(), torch_s[0].nan_to_num())
    assert torch.equal(ours[1], torch_s[1])
    assert ours[0].is_contiguous() and ours[1].is_contiguous()  # the caller's layout
    with torch.no_grad():
        assert torch.equal(max_pool2d(x, kernel, stride, padding).nan_to_num(),
                           ours[0].nan_to_num())


def test_the_fast_path_is_the_channels_last_function_and_small_inputs_are_plain():
    big = _input((64, 16, 24, 24)).requires_grad_()
    assert type(max_pool2d(big, (2, 2), (2, 2)).grad_fn).__name__ == \
        "_ChannelsLastMaxPoolBackward"
    small = torch.randn(2, 6, 12, 12, requires_grad=True)
    assert small.numel() < FAST_MIN_ELEMENTS and not fast_path(small)
    assert type(max_pool2d(small, (2, 2), (2, 2)).grad_fn).__name__ == \
        "MaxPool2DWithIndicesBackward0"
    # an input already channels-last, or of another dtype, keeps torch's own behaviour
    cl = big.detach().contiguous(memory_format=torch.channels_last)
    assert not fast_path(cl) and max_pool2d(cl, (2, 2), (2, 2)).is_contiguous(
        memory_format=torch.channels_last)
    assert not fast_path(big.detach().half())


def test_double_backward_matches_torch():
    x = _input((16, 16, 16, 16))
    results = []
    for pool in (max_pool2d, F.max_pool2d):
        leaf = x.clone().nan_to_num(0.0, 0.0, 0.0).requires_grad_()
        y = pool(leaf, (2, 2), (2, 2), (0, 0))
        g = torch.ones_like(y, requires_grad=True)
        (gx,) = torch.autograd.grad(y, leaf, g, create_graph=True)
        (gg,) = torch.autograd.grad((gx * leaf.detach()).sum(), g)
        results.append((gx.detach(), gg))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_tracing_records_the_plain_operator():
    x = _input((64, 16, 24, 24)).nan_to_num(0.0, 0.0, 0.0)
    traced = torch.jit.trace(lambda t: max_pool2d(t, (2, 2), (2, 2)), (x,))
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert "aten::max_pool2d" in kinds and "prim::PythonOp" not in kinds


def test_pool_cell_learns_as_with_torchs_max_pooling(monkeypatch):
    """The Pool cell (Max; padding within half the window, and wider, where windows of
    padding only give 0 as in N2D2) against the same cell pooling with F.max_pool2d."""
    x = _input((32, 32, 12, 12))
    eye = torch.eye(32, dtype=torch.bool)
    cells = [Pool(32, [3, 3], [2, 2], [pad, pad], mapping=eye) for pad in (1, 2)]
    fast = [_pool_and_grad(lambda t, *a: cell(t), x, None, None, None) for cell in cells]
    monkeypatch.setattr("n2prune.cells.pool.max_pool2d",
                        lambda t, k, s, p=(0, 0): F.max_pool2d(t, k, s, p))
    plain = [_pool_and_grad(lambda t, *a: cell(t), x, None, None, None) for cell in cells]
    for ours, theirs in zip(fast, plain):
        assert torch.equal(ours[0].nan_to_num(), theirs[0].nan_to_num())
        assert torch.equal(ours[1], theirs[1])


def test_torch_func_transforms_take_torchs_operator():
    x = _input((64, 16, 24, 24)).nan_to_num(0.0, 0.0, 0.0)
    ours = torch.func.grad(lambda t: max_pool2d(t, (2, 2), (2, 2)).sum())(x)
    theirs = torch.func.grad(lambda t: F.max_pool2d(t, (2, 2), (2, 2)).sum())(x)
    assert torch.equal(ours, theirs)
    batched = torch.func.vmap(lambda t: max_pool2d(t, (2, 2), (2, 2)))(x.view(8, 8, 16, 24, 24))
    assert torch.equal(batched.reshape(64, 16, 12, 12), F.max_pool2d(x, (2, 2), (2, 2)))
