"""Network.outputs runs a precompiled execution plan: the same values as running the cells
one by one by name, every kept output intact although others are freed on the way."""

import warnings
from pathlib import Path

import pytest
import torch

from n2prune import load_network
from n2prune.ini.inifile import loads
from n2prune.network.build import build_network

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = sorted(p.name for p in (ROOT / "networks").glob("*.ini"))


def _by_name(net, x):
    """The reference: every cell run on its named inputs, Fc outputs as C x 1 x 1 maps."""
    outputs = {"env": x}
    for name, cell in net.cells.items():
        y = cell(*(outputs[parent] for parent in net.info[name].inputs))
        outputs[name] = y[:, :, None, None] if y.dim() == 2 else y
    return outputs


def _load(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_network(str(ROOT / "networks" / name), environ={"N2D2_DATA": "/nowhere"})


@pytest.mark.parametrize("name", NETWORKS)
def test_plan_gives_the_outputs_of_the_cells_run_by_name(name):
    """... and inference (in-place activations, ``ActivatedCell.activate``) gives the
    outputs of a pass with autograd on."""
    net = _load(name).eval()
    with torch.no_grad():
        for cell in net.cells.values():
            if hasattr(cell, "running_var"):
                cell.running_var.fill_(1.0)   # N2D2 starts them at 0: NaN in eval mode
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(0))
    names = list(net.cells)
    with torch.no_grad():
        expected = _by_name(net, x)
        kept = net.outputs(x, names)
        last = net(x)
    with torch.enable_grad():  # autograd on: activations never in place
        graded = net.outputs(x, names)
    for cell in names:
        assert torch.equal(kept[cell], expected[cell]), cell
        assert torch.equal(kept[cell], graded[cell].detach()), cell
    assert torch.equal(kept[None], expected[names[-1]])
    reference = expected[names[-1]]
    assert torch.equal(last, reference.flatten(1) if reference.shape[2:] == (1, 1)
                       else reference)


DIAMOND = """
[sp]
SizeX=4
SizeY=4
NbChannels=1
[a]
Input=sp
Type=Conv
KernelDims=1 1
NbOutputs=2
[b]
Input=a
Type=Conv
KernelDims=1 1
NbOutputs=2
[c]
Input=a,b
Type=ElemWise
Operation=Sum
NbOutputs=2
[fc]
Input=c,a
Type=Fc
NbOutputs=3
[soft]
Input=fc
Type=Softmax
NbOutputs=3
"""


def test_plan_frees_an_output_only_after_its_last_reader():
    net = build_network(loads(DIAMOND, "diamond.ini"))
    slots = {name: index for index, name in enumerate(net.cells, 1)}
    freed = {key: [s for s in frees] for key, _, frees in net._steps}
    # the input after a; a is read by b, c and fc: freed after fc (its last reader); b, c
    # after their only readers; the last cell's output is never freed
    assert freed == {"a": [0], "b": [], "c": [slots["b"]], "fc": [slots["a"], slots["c"]],
                     "soft": [slots["fc"]]}
    x = torch.randn(3, 1, 4, 4)
    with torch.no_grad():
        kept = net.outputs(x, ["a", "fc"])
        expected = _by_name(net, x)
    assert set(kept) == {"a", "fc", None}
    assert kept["fc"].shape == (3, 3, 1, 1)
    assert torch.equal(kept["a"], expected["a"]) and torch.equal(kept[None], expected["soft"])


def test_hooks_on_cells_and_global_hooks_still_run():
    net = build_network(loads(DIAMOND, "diamond.ini")).eval()
    x = torch.randn(2, 1, 4, 4)
    with torch.no_grad():
        plain = net(x)
        seen = []
        handle = net.cells["b"].register_forward_hook(lambda m, i, o: o * 0)
        pre = net.cells["fc"].register_forward_pre_hook(lambda m, i: seen.append("fc"))
        changed = net(x)
        assert seen == ["fc"] and not torch.equal(changed, plain)
        kept = net.outputs(x, ["a", "c"])   # b's output zeroed: c = a + 0
        assert torch.equal(kept["c"], kept["a"]) and torch.equal(kept["c"], _by_name(net, x)["c"])
        handle.remove()
        pre.remove()
        calls = []
        glob = torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: calls.append(type(m).__name__))
        try:
            assert torch.equal(net(x), plain)
        finally:
            glob.remove()
        assert {"Conv", "ElemWise", "Fc", "Softmax"} <= set(calls)
        assert torch.equal(torch.jit.trace(net, x, check_trace=False)(x), plain)
