"""Real CPU speed of channel pruning: dense, masked and compacted n2prune networks against
Torch-Pruning on the same model with the same kept channels, in one run.

    python tools/bench_compact.py [--ini networks/resnet18-cifar.ini] [--fraction 0.5]

The network is built from the INI file, its BatchNorm statistics randomised (as after
training), and ``fraction`` of the removable channels of every cell pruned (the groups of
lowest L1 norm, :func:`n2prune.compact.lowest_groups`), their BatchNorm shifts zeroed so the
pruned channels are exactly 0 and all the models compute the same function (checked). The same weights go into a plain torch
ResNet (``nn.Conv2d``/``nn.BatchNorm2d``), which Torch-Pruning prunes at the same channel
indices. Latency: median seconds of repeats alternating between the models (2 threads by
default; batch 1 and 32). Needs the ``bench`` extra (torch-pruning) for the last column.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from n2prune import load_network  # noqa: E402
from n2prune.compact import compact, lowest_groups, zero_groups  # noqa: E402
from n2prune.compact.baking import baked, unmasked  # noqa: E402
from n2prune.compact.costs import compare_latency, macs  # noqa: E402


# ----------------------------------------------------------------------------- plain torch
class Block(nn.Module):
    """torchvision's BasicBlock: conv-bn-relu-conv-bn + shortcut, relu (in place, as
    torchvision's ``nn.ReLU(inplace=True)``)."""

    def __init__(self, cin: int, cout: int, stride: int, projection: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout)) if projection else nn.Identity()

    def forward(self, x):
        y = torch.relu_(self.bn1(self.conv1(x)))
        return torch.relu_(self.bn2(self.conv2(y)) + self.shortcut(x))


class TorchResNet(nn.Module):
    """The INI network as plain torch modules (same layer names as the INI sections)."""

    def __init__(self, net):
        super().__init__()
        cells = net.cells
        self.conv1, self.bn1 = _conv(cells["conv1"]), _bn(cells["conv1_bn"])
        blocks = []
        for name in [n[:-len("_sum")] for n in cells if n.endswith("_sum")]:
            a = cells[f"{name}_a"]
            block = Block(a.nb_inputs, a.nb_outputs, a.stride_dims[0], f"{name}_proj" in cells)
            block.conv1, block.bn1 = _conv(a), _bn(cells[f"{name}_a_bn"])
            block.conv2, block.bn2 = _conv(cells[f"{name}_b"]), _bn(cells[f"{name}_b_bn"])
            if f"{name}_proj" in cells:
                block.shortcut = nn.Sequential(_conv(cells[f"{name}_proj"]),
                                               _bn(cells[f"{name}_proj_bn"]))
            blocks.append(block)
        self.blocks = nn.Sequential(*blocks)
        fc = cells["fc"]
        self.fc = nn.Linear(fc.nb_inputs, fc.nb_outputs)
        with torch.no_grad():
            self.fc.weight.copy_(fc.weight)
            self.fc.bias.copy_(fc.bias)

    def forward(self, x):
        x = torch.relu_(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return torch.softmax(x, 1)   # the INI network ends with its Softmax cell


def _conv(cell) -> nn.Conv2d:
    conv = nn.Conv2d(cell.nb_inputs, cell.nb_outputs, tuple(cell.weight.shape[2:]),
                     (cell.stride_dims[1], cell.stride_dims[0]),
                     (cell.padding_dims[1], cell.padding_dims[0]), bias=False)
    with torch.no_grad():
        conv.weight.copy_(cell.weight)
    return conv


def _bn(cell) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(cell.nb_outputs, eps=cell.epsilon)
    with torch.no_grad():
        for attr in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, attr).copy_(getattr(cell, attr))
    return bn.eval()


def torch_pruning(model: TorchResNet, net, removed) -> nn.Module:
    """Torch-Pruning's DependencyGraph removing the channels n2prune removed."""
    import torch_pruning as tp
    modules = {"conv1": model.conv1}
    for name, block in zip([n[:-4] for n in net.cells if n.endswith("_sum")], model.blocks):
        modules.update({f"{name}_a": block.conv1, f"{name}_b": block.conv2})
        if isinstance(block.shortcut, nn.Sequential):
            modules[f"{name}_proj"] = block.shortcut[0]
    graph = tp.DependencyGraph().build_dependency(model, torch.zeros(1, *net.input_shape))
    for name, channels in removed.items():
        conv = modules[name]
        if conv.out_channels == net.info[name].output_shape[0] - len(channels):
            continue  # already pruned with a coupled conv (residual sum)
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=channels)
        group.prune()
    return model


# ----------------------------------------------------------------------------- run
def _randomise_batchnorm(net, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for cell in net.cells.values():
            if hasattr(cell, "running_mean"):
                cell.running_mean.normal_(0, 0.1, generator=generator)
                cell.running_var.uniform_(0.5, 1.5, generator=generator)
                cell.weight.uniform_(0.5, 1.5, generator=generator)
                cell.bias.normal_(0, 0.1, generator=generator)


@torch.no_grad()
def _zero_batchnorm_shifts(net, groups) -> None:
    """Pruned channels output exactly 0 (BatchNorm shift and mean 0, as a structured pruner
    removing the BatchNorm channel too would do), so every model computes the same function."""
    for group in groups:
        for name, channel in group.members:
            cell = net.cells[name]
            if hasattr(cell, "running_mean"):
                cell.bias[channel] = 0
                cell.running_mean[channel] = 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ini", default="networks/resnet18-cifar.ini")
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time (with --threads 1, what one core alone "
                        "would take; little disturbed by other processes on a shared machine)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--traced", action="store_true",
                        help="also time torch.jit.trace'd copies of both pruned models")
    parser.add_argument("--keep-constants", action="store_true",
                        help="leave the BatchNorm shifts of pruned channels (compaction then "
                        "keeps their exact effect as constant maps; Torch-Pruning drops it)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    net = load_network(args.ini, environ={"N2D2_DATA": "/nowhere", **os.environ}).eval()
    _randomise_batchnorm(net)
    chosen = lowest_groups(net, args.fraction)
    zero_groups(net, chosen)
    if not args.keep_constants:
        _zero_batchnorm_shifts(net, chosen)
    dense = unmasked(net).eval()
    plain_dense = TorchResNet(dense).eval()
    small = compact(net)
    removed = {}
    for name, keep in small.compaction["kept"].items():
        if net.info[name].type == "Conv":
            gone = sorted(set(range(net.info[name].output_shape[0])) - set(keep.tolist()))
            if gone:
                removed[name] = gone
    models = {"dense": dense, "masked": net, "compacted": baked(small).eval(),
              "torch dense": plain_dense}
    try:
        models["Torch-Pruning"] = torch_pruning(TorchResNet(dense).eval(), net, removed).eval()
    except ImportError:
        print("torch-pruning not installed (pip install -c constraints.txt torch-pruning): "
              "its column is left out")
    if args.traced:   # torch.jit.trace: the same kernels without Python's per-layer overhead
        example = torch.zeros(1, *net.input_shape)
        for name in ("compacted", "Torch-Pruning"):
            if name in models:
                with torch.no_grad():
                    models[f"{name} (traced)"] = torch.jit.trace(models[name], example,
                                                                 check_trace=False)
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        assert torch.allclose(plain_dense(x), dense(x), atol=1e-5), "torch copy differs"
        assert torch.allclose(small(x), net(x), atol=1e-5), "compacted differs from masked"
        if "Torch-Pruning" in models and not args.keep_constants:
            assert torch.allclose(models["Torch-Pruning"](x), net(x), atol=1e-5), \
                "Torch-Pruning's model differs"
    counts = {name: macs(model, net.input_shape)["dense"] for name, model in models.items()
              if "traced" not in name}
    for name in list(models):
        if "traced" in name:
            counts[name] = counts[name.replace(" (traced)", "")]
    results = {"ini": args.ini, "fraction": args.fraction, "threads": args.threads,
               "kept_channels": sum(len(k) for k in small.compaction["kept"].values()),
               "macs": counts, "latency_ms": {}}
    print(f"{args.ini}: {len(chosen)} channel groups pruned ({args.fraction:.0%} of each cell's "
          f"removable channels); {args.threads} threads; medians of {args.repeats} alternating "
          f"repeats ({args.clock} clock)")
    for batch in [int(b) for b in args.batches.split(",")]:
        seconds = compare_latency(models, net.input_shape, batch=batch, repeats=args.repeats,
                                  threads=args.threads, clock=args.clock)
        results["latency_ms"][batch] = {n: s * 1e3 for n, s in seconds.items()}
        print(f"\nbatch {batch}")
        print(f"{'model':14} {'MMACs':>9} {'ms':>9} {'speed-up':>9} {'ns/MAC':>8}")
        for name, value in seconds.items():
            print(f"{name:14} {counts[name] / 1e6:9.1f} {value * 1e3:9.3f} "
                  f"{seconds['dense'] / value:9.2f} {value * 1e9 / counts[name] / batch:8.4f}")
        if "Torch-Pruning" in seconds:   # the same MACs: the latency ratio is the per-MAC one
            per_mac = {name: seconds[name] / counts[name] for name in seconds}
            ratio = per_mac["compacted"] / per_mac["Torch-Pruning"]
            results.setdefault("per_mac_vs_torch_pruning", {})[batch] = ratio
            print(f"compacted / Torch-Pruning latency per MAC: {ratio:.3f}")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
