"""``n2prune-info NET.ini``: one line per cell and the totals, without training (``--costs``:
parameters, MACs and latency of the dense, masked and compacted network)."""

from __future__ import annotations

import argparse
from typing import List, Optional

from n2prune import __version__
from n2prune.cli.common import Parser, add_partial_option, add_seed_option, resolved_seed, \
    run_guarded
from n2prune.plugins import add_import_option, load_plugins


def info_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-info NET.ini``: one line per cell and the totals, without training."""
    parser = Parser(
        prog="n2prune-info", description="Build an N2D2 INI network and describe its cells "
        "(type, inputs, output shape, parameters, pruning) without training.")
    parser.add_argument("ini", metavar="NET.ini", help="N2D2 network file (or an ONNX file, "
                        "NET.onnx, wrapped as a network)")
    add_seed_option(parser, "seed of the weight fillers and Random masks")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"n2prune {__version__}")
    _add_cost_options(parser)
    add_import_option(parser)
    args = parser.parse_args(argv)

    def action() -> int:
        from n2prune.network.build import load_network
        load_plugins(args.imports)
        net = load_network(args.ini, seed=resolved_seed(args.seed))
        print("\n".join(net.summary()))
        _print_costs(net, args)
        return 0

    return run_guarded(action, args.debug)


def _add_cost_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-w", "--weights", metavar="WEIGHTS_DIR",
                        help="with --costs: N2D2 weight files (and masks) to load first")
    add_partial_option(parser)
    parser.add_argument("--costs", action="store_true",
                        help="also print parameters, MACs and CPU latency of the dense, masked "
                        "and compacted network")


def _print_costs(net, args) -> None:
    if not args.costs:
        return
    from n2prune.compact.costs import cost_lines
    from n2prune.compact.shrink import compact
    from n2prune.n2d2io.read import read_weight_folder
    if args.weights is not None:
        read_weight_folder(net, args.weights, args.allow_partial_weights)
    net.eval()
    print("\n".join(cost_lines(net, compact(net))))
