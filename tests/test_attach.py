"""attach / detach on plain torch layers, and ``layer.quantizer = PruneCell(...)``."""

import copy
import io
import math
import pickle
import re

import pytest
import torch
from torch import nn
import torch.nn.functional as F

import n2prune
from n2prune.cells import Fc
from n2prune.prune.attach import out_channel_dim, select

STATIC = dict(prune_mode="Static", threshold=0.5, prune_filler="IterNonStruct")
WEIGHTS = [[0.5, -0.0004, 0.0011, -0.002, 0.0025], [0, 0.9, -0.3, 0.0015, 0.0009]]
EXPECTED = [[1, 0, 1, 1, 1], [0, 1, 1, 1, 0]]  # IterNonStruct at 0.3 (tests/test_quantizer.py)


def linear_with(weights) -> nn.Linear:
    w = torch.tensor(weights, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


def small_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise
        nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 8 * 8, 5))


def test_quantizer_on_plain_linear_uses_the_mask_computed_at_attach_time():
    layer = linear_with(WEIGHTS)
    layer.quantizer = n2prune.PruneCell(prune_mode="Static", threshold=0.3,
                                        prune_filler="IterNonStruct")
    mask = torch.tensor(EXPECTED, dtype=torch.float32)
    assert torch.equal(layer.quantizer.mask, mask)
    x = torch.randn(3, 5)
    assert torch.equal(layer(x), F.linear(x, layer.weight * mask))
    assert isinstance(layer.weight, nn.Parameter)  # the Parameter is back after forward


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Linear(6, 4), (2, 6)),
    (lambda: nn.Conv1d(4, 6, 3, groups=2), (2, 4, 7)),
    (lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 5, 5)),
    (lambda: nn.Conv3d(2, 2, 2), (1, 2, 3, 3, 3)),
    (lambda: nn.ConvTranspose1d(4, 6, 3, groups=2), (2, 4, 5)),
    (lambda: nn.ConvTranspose2d(4, 2, 3, stride=2), (2, 4, 3, 3)),
    (lambda: nn.ConvTranspose3d(2, 2, 2), (1, 2, 2, 2, 2)),
    (lambda: Fc(6, 4), (2, 6)),
])
def test_every_supported_layer_computes_with_weight_times_mask(make, shape):
    torch.manual_seed(1)
    layer = make()
    x = torch.randn(*shape)
    cells = n2prune.attach(layer, **STATIC)
    mask = cells[""].mask
    assert mask.shape == layer.weight.shape and 0 < int((mask == 0).sum()) < mask.numel()
    reference = copy.deepcopy(layer)
    n2prune.detach(reference, bake=False)
    with torch.no_grad():
        reference.weight.mul_(mask)
    assert torch.allclose(layer(x), reference(x), atol=1e-6)


def test_out_channel_dim_of_transposed_convolutions_is_one():
    assert out_channel_dim(nn.ConvTranspose2d(4, 6, 2, groups=2)) == 1
    assert out_channel_dim(nn.Conv2d(4, 6, 2)) == 0
    cells = n2prune.attach(nn.Sequential(nn.ConvTranspose1d(4, 6, 2), nn.Linear(2, 2)))
    assert [c.out_channel_dim for c in cells.values()] == [1, 0]


def test_pruned_weights_get_no_gradient_and_the_optimiser_stays_valid():
    net = small_net()
    params = {name: p for name, p in net.named_parameters()}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    cells = n2prune.attach(net, **STATIC)
    assert {name: p for name, p in net.named_parameters()} == params  # same objects, names
    before = {name: net.get_submodule(name).weight.detach().clone() for name in cells}
    net(torch.randn(4, 2, 4, 4)).square().sum().backward()
    optimizer.step()
    for name, cell in cells.items():
        weight = net.get_submodule(name).weight
        assert torch.all(weight.grad[cell.mask == 0] == 0)
        assert torch.any(weight.grad[cell.mask == 1] != 0)
        assert torch.equal(weight[cell.mask == 0], before[name][cell.mask == 0])
        assert not torch.equal(weight, before[name])  # the optimiser updated the kept ones


def test_masks_travel_in_state_dict_and_load_exactly_into_a_fresh_attach():
    net = small_net(0)
    cells = n2prune.attach(net, prune_mode="Static", threshold=0.7, prune_filler="Random",
                           seed=3)
    keys = net.state_dict().keys()
    assert "0.weight" in keys and "0.quantizer.mask" in keys and "7.quantizer.mask" in keys
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    fresh = small_net(1)
    fresh_cells = n2prune.attach(fresh, prune_mode="Static", threshold=0.7,
                                 prune_filler="Random", seed=99)
    assert not torch.equal(fresh_cells["0"].mask, cells["0"].mask)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for name in cells:
        assert torch.equal(fresh_cells[name].mask, cells[name].mask)
    net.eval(), fresh.eval()
    x = torch.randn(2, 2, 4, 4)
    assert torch.equal(net(x), fresh(x))


def test_detach_bakes_the_zeros_and_leaves_a_plain_model():
    net = small_net()
    cells = n2prune.attach(net, **STATIC)
    masks = {name: cell.mask.clone() for name, cell in cells.items()}
    net.eval()
    x = torch.randn(2, 2, 4, 4)
    expected = net(x)
    weights = {name: net.get_submodule(name).weight for name in cells}
    assert sorted(n2prune.detach(net)) == sorted(cells)
    assert all("quantizer" not in key for key in net.state_dict())
    for name, mask in masks.items():
        layer = net.get_submodule(name)
        assert layer.weight is weights[name]
        assert torch.equal(layer.weight == 0, mask == 0)
        assert not layer._forward_pre_hooks and not layer._forward_hooks
    assert torch.allclose(net(x), expected, atol=1e-6)
    assert set(small_net().state_dict()) == set(net.state_dict())


def test_detach_without_bake_restores_the_dense_weights():
    layer = linear_with(WEIGHTS)
    n2prune.attach(layer, **STATIC)
    n2prune.detach(layer, bake=False)
    assert torch.equal(layer.weight, torch.tensor(WEIGHTS))


def test_setting_quantizer_to_none_on_a_plain_layer_detaches_without_baking():
    layer = linear_with(WEIGHTS)
    layer.quantizer = n2prune.PruneCell(**STATIC)
    layer.quantizer = None
    x = torch.randn(2, 5)
    assert torch.equal(layer(x), F.linear(x, torch.tensor(WEIGHTS)))
    assert not layer._forward_pre_hooks


@pytest.mark.parametrize("layer", [nn.BatchNorm2d(3), nn.ReLU(), nn.Sequential(nn.Linear(2, 2)),
                                   nn.Embedding(4, 2)])
def test_quantizer_on_an_unsupported_module_raises_type_error(layer):
    with pytest.raises(TypeError, match=r"cannot be attached to .*n2prune.attach\(model\)"):
        layer.quantizer = n2prune.PruneCell()


def test_other_modules_named_quantizer_are_left_alone():
    layer = nn.Linear(2, 2)
    layer.quantizer = nn.Identity()
    assert not layer._forward_pre_hooks


def test_the_parameter_is_restored_when_forward_raises():
    layer = nn.Linear(4, 2)
    weight = layer.weight
    n2prune.attach(layer, **STATIC)
    with pytest.raises(RuntimeError):
        layer(torch.randn(3, 5))
    assert layer.weight is weight and "_n2prune_weight" not in layer.__dict__


def test_deepcopy_and_pickle_keep_pruning():
    net = small_net()
    n2prune.attach(net, **STATIC)
    net.eval()
    x = torch.randn(2, 2, 4, 4)
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert torch.equal(other(x), net(x))
        with torch.no_grad():
            other[0].weight.add_(1.0)  # the copy's masks act on the copy's own weights
        assert torch.equal(other[0].quantizer.get_quantized_weights() == 0,
                           other[0].quantizer.mask == 0)


def test_include_exclude_and_types_select_layers():
    net = nn.Sequential()
    net.add_module("stem", nn.Conv2d(1, 2, 1))
    net.add_module("block1", nn.Sequential(nn.Conv2d(2, 2, 1), nn.Linear(2, 2)))
    net.add_module("head", nn.Linear(2, 2))
    assert list(select(net)) == ["stem", "block1.0", "block1.1", "head"]
    assert list(select(net, include="block1.*")) == ["block1.0", "block1.1"]
    assert list(select(net, exclude=["stem", "head"])) == ["block1.0", "block1.1"]
    assert list(select(net, include=re.compile(r"\.1$|head"))) == ["block1.1", "head"]
    assert list(select(net, types=nn.Linear)) == ["block1.1", "head"]
    assert list(n2prune.attach(net, types=(nn.Conv2d,), exclude="stem")) == ["block1.0"]


def test_attach_errors_name_what_is_wrong():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(ValueError, match=r"no layer of Sequential matched.*include='x\*'"):
        n2prune.attach(net, include="x*")
    with pytest.raises(TypeError, match="types=.*ReLU.*cannot be pruned"):
        n2prune.attach(net, types=nn.ReLU)
    with pytest.raises(TypeError, match="include must hold"):
        n2prune.attach(net, include=[3])
    n2prune.attach(net)
    with pytest.raises(ValueError, match=r"0 already carries a quantizer; n2prune.detach"):
        n2prune.attach(net)
    with pytest.raises(TypeError, match="treshold"):
        n2prune.attach(nn.Linear(2, 2), treshold=0.5)



def test_tied_weights_are_refused_unless_every_user_is_excluded():
    """A mask on one user of a shared weight Parameter would not apply in the other's
    forward: attach refuses, naming both, and nothing is attached."""
    net = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 4), nn.Linear(4, 5, bias=False))
    net[2].weight = net[0].weight  # a language-model head tied to its embedding
    with pytest.raises(ValueError, match=r"attach: 2's weight is tied to 0's .*exclude all"):
        n2prune.attach(net, prune_filler="Magnitude")
    assert all(getattr(layer, "quantizer", None) is None for layer in net)
    twins = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    twins[1].weight = twins[0].weight
    with pytest.raises(ValueError, match=r"0's weight is tied to 1's"):
        n2prune.attach(twins, prune_filler="Magnitude")
    assert list(n2prune.attach(net, exclude="2", prune_filler="Magnitude")) == ["1"]
    shared = nn.Linear(4, 4)  # one module used twice is one layer, not a tie
    assert list(n2prune.attach(nn.Sequential(shared, nn.ReLU(), shared))) == ["0"]

def test_seed_gives_each_layer_its_own_random_stream():
    net = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    cells = n2prune.attach(net, prune_mode="Static", threshold=0.5, prune_filler="Random", seed=5)
    assert [c.seed for c in cells.values()] == [5, 6]
    assert not torch.equal(cells["0"].mask, cells["1"].mask)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("scope", ["Layer", "Global"])
def test_a_model_in_another_dtype_prunes_exactly_the_asked_count(dtype, scope):
    """model.to(dtype) converts the masks with the weights but neither the threshold nor the
    statistics (a bfloat16 0.8 would be 0.80078: 3 weights too many here), and bfloat16
    scores rank like any others."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    cells = n2prune.attach(net, prune_mode="Gradual", threshold=0.8, prune_filler="Magnitude",
                           scope=scope, schedule="Cubic")
    pruner = n2prune.Pruner(net, horizon=100)
    cells["0"].set_stat("probe", torch.tensor([0.8, 1e-3]))
    net.to(dtype)
    for _ in range(12):
        pruner.on_step_end(10)
    zeros = sum(int((cell.mask == 0).sum()) for cell in cells.values())
    assert zeros == math.ceil(0.8 * 3096) == 2477
    assert all(cell.mask.dtype == dtype for cell in cells.values())
    assert all(cell.current_threshold.dtype == torch.float32 for cell in cells.values())
    assert torch.equal(cells["0"].stats["probe"], torch.tensor([0.8, 1e-3]))
    assert net(torch.randn(2, 3, 8, 8, dtype=dtype)).dtype == dtype
    static = nn.Linear(10, 10).to(torch.bfloat16)
    cell = n2prune.attach(static, prune_mode="Static", threshold=0.5,
                          prune_filler="Magnitude")[""]
    assert int((cell.mask == 0).sum()) == 50


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("criterion, pattern", [("Magnitude", "Unstructured"),
                                                ("ActivationMagnitude", "Unstructured"),
                                                ("Taylor", "Channel")])
def test_attach_to_a_half_precision_model_computes_and_prunes_in_its_dtype(
        dtype, criterion, pattern):
    """The mask takes the weights' dtype, so weight × mask does too (a float32 mask made
    every forward of a half or bfloat16 model fail); statistics are gathered in float32."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 10)).to(dtype)
    cells = n2prune.attach(net, prune_mode="Gradual", threshold=0.5, prune_filler=criterion,
                           pattern=pattern, schedule="OneShot")
    pruner = n2prune.Pruner(net, horizon=80)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    pruner.on_train_begin()
    for _ in range(10):
        out = net(torch.randn(8, 3, 8, 8, dtype=dtype))
        assert out.dtype == dtype
        loss = F.cross_entropy(out.float(), torch.randint(0, 10, (8,)))
        optimizer.zero_grad()
        loss.backward()
        pruner.on_before_optimizer_step()
        optimizer.step()
        pruner.on_step_end(8)
    pruner.on_train_end()
    assert pruner.sparsity() == pytest.approx(0.5, abs=0.01)
    assert all(cell.mask.dtype == dtype for cell in cells.values())
    assert all(value.dtype in (torch.float32, torch.float64)
               for cell in cells.values() for value in cell.stats.values())
