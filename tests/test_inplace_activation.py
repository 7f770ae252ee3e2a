"""Inference applies an activation in place to a tensor its cell made itself (no new tensor),
and never to one another cell or the caller still holds (every network in networks/:
tests/test_network_plan.py)."""

import torch

from n2prune.cells import Conv
from n2prune.ini.inifile import loads
from n2prune.network.build import build_network

FANOUT = """
[sp]
SizeX=4
SizeY=4
NbChannels=1
[a]
Input=sp
Type=Conv
KernelDims=1 1
NbOutputs=2
[act]
Input=a
Type=Activation
ActivationFunction=Rectifier
NbOutputs=2
[one]
Input=a
Type=ElemWise
Operation=Sum
ActivationFunction=Rectifier
NbOutputs=2
[sum]
Input=a,act
Type=ElemWise
Operation=Sum
ActivationFunction=Rectifier
NbOutputs=2
[fc]
Input=a,one,sum
Type=Fc
NbOutputs=3
"""


def test_outputs_other_cells_read_are_not_overwritten():
    net = build_network(loads(FANOUT, "fanout.ini")).eval()
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    names = list(net.cells)
    with torch.no_grad():
        kept = net.outputs(x, names)
    with torch.enable_grad():
        expected = net.outputs(x, names)
    assert bool((kept["a"] < 0).any())  # a has no activation: the readers left it alone
    for cell in names:
        assert torch.equal(kept[cell], expected[cell].detach()), cell


def test_an_owned_tensor_is_overwritten_only_without_autograd():
    conv = Conv(1, 2, kernel_dims=[1, 1], activation="Rectifier")
    y = torch.randn(2, 2, 3, 3)
    with torch.no_grad():
        assert conv.activate(y, owned=True) is y and bool((y >= 0).all())
        z = torch.randn(2, 2, 3, 3)
        assert conv.activate(z) is not z  # not owned: a new tensor
    w = torch.randn(2, 2, 3, 3)
    assert conv.activate(w, owned=True) is not w  # autograd on: never in place
    conv.activation = "Tanh"  # no in-place form: the plain forward
    with torch.no_grad():
        v = torch.randn(2, 2)
        assert conv.activate(v, owned=True) is not v



def test_hooks_on_an_activation_module_run():
    """The fast path skips the activation module's call only when that call would run
    nothing else: its own hooks, and global module hooks, still run (and in no_grad the
    hooked module gets a tensor of its own, not the cell's overwritten one)."""
    net = build_network(loads(FANOUT, "fanout.ini")).eval()
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = net.outputs(x, ["act", "sum"])
        seen = []
        act = net.cells["sum"].activation
        handle = act.register_forward_hook(lambda m, i, o: seen.append(i[0].clone()) or -o)
        hooked = net.outputs(x, ["act", "sum"])
        handle.remove()
        assert len(seen) == 1 and bool((seen[0] < 0).any())  # the pre-activation sum
        assert torch.equal(hooked["sum"], -plain["sum"])
        assert torch.equal(hooked["act"], plain["act"])   # other cells unaffected
        assert torch.equal(net.outputs(x, ["sum"])["sum"], plain["sum"])  # removed: as before
        calls = []
        glob = torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: calls.append(type(m).__name__))
        try:
            assert torch.equal(net.outputs(x, ["sum"])["sum"], plain["sum"])
        finally:
            glob.remove()
    assert calls.count("Rectifier") == 3  # act, one and sum


def test_cells_read_parameters_moved_by_torch_prune():
    """Cells read their tensors from the module's own dictionaries (fast), and still see a
    weight torch.nn.utils.prune turned into a plain attribute."""
    from torch.nn.utils import prune
    from n2prune.cells.batchnorm import BatchNorm
    torch.manual_seed(0)
    conv = Conv(2, 3, kernel_dims=[3, 3], activation="Rectifier")
    x = torch.randn(2, 2, 5, 5)
    prune.l1_unstructured(conv, "weight", amount=0.5)
    assert "weight" not in conv._parameters
    reference = torch.relu(torch.nn.functional.conv2d(x, conv.weight_orig * conv.weight_mask,
                                                      conv.bias))
    with torch.no_grad():
        assert torch.equal(conv(x), reference)
    bn = BatchNorm(3).eval()
    prune.l1_unstructured(bn, "weight", amount=0.5)
    with torch.no_grad():
        expected = torch.nn.functional.batch_norm(x[:, :1].expand(2, 3, 5, 5), bn.running_mean,
                                                  bn.running_var, bn.weight, bn.bias,
                                                  eps=bn.epsilon)
        assert torch.equal(bn(x[:, :1].expand(2, 3, 5, 5)), expected)
