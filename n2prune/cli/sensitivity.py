"""``n2prune-sensitivity NET.ini -w DIR``: each cell pruned alone at a grid of sparsities, and
per-cell budgets from the curves."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from n2prune.cli.common import Parser, run_guarded
from n2prune.plugins import add_import_option, load_plugins


SENSITIVITY_EPILOG = """\
Writes OUTPUT/sensitivity.csv (cell, sparsity, metric, parameters_removed, macs_removed; the
row '(dense)' is the unpruned network) and OUTPUT/sensitivity.png (one curve per cell). Points
are saved as they finish: the same command continues an interrupted analysis. With a target
(--target-sparsity, --target-parameters, --target-macs or --target-latency) it also prints the per-cell budget
and writes OUTPUT/NET.ini with each cell's QWeight.Threshold: n2prune-train OUTPUT/NET.ini
trains to the budget. Cells that prune the same channels (QWeight.PruningScope=Coupled, a
residual stream) are one unit, as in n2prune-train --budget sensitivity: one row and curve
(named by its cells, stem+b), one budget entry, its threshold written into each of its cells.

Example: n2prune-sensitivity networks/lenet.ini -w runs/lenet/weights -seed 7 \\
             --target-sparsity 0.95
"""


def sensitivity_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-sensitivity NET.ini -w DIR``: each cell pruned alone; budgets from the curves."""
    parser = Parser(prog="n2prune-sensitivity", epilog=SENSITIVITY_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Prune each PruneCell cell alone at a grid of sparsities (the "
                     "rest dense), score the Validation set as n2prune-train does, and turn the "
                     "curves into per-cell targets.")
    parser.add_argument("ini", metavar="NET.ini", help="N2D2 network file")
    parser.add_argument("-w", metavar="DIR", help="N2D2 weight files (a trained run's weights/)")
    parser.add_argument("-seed", type=int, default=1, metavar="N",
                        help="seed of the database split (give the training run's seed, in "
                        "its report.json, so Validation is the same set; default 1)")
    parser.add_argument("-valid-metric", default="Sensitivity", metavar="M",
                        help="metric, averaged over classes as N2D2 does (default Sensitivity), or "
                        "Loss: minus the mean loss, as n2prune-train --budget sensitivity "
                        "scores")
    parser.add_argument("--output", "-o", metavar="DIR",
                        help="folder of the outputs (default runs/<ini name>/sensitivity)")
    parser.add_argument("--sparsities", type=float, nargs="+", metavar="S",
                        help="the grid (default 0.1 0.2 ... 0.9 0.95)")
    parser.add_argument("--criterion", metavar="C",
                        help="criterion or N2D2 filler for every cell (default: each cell's own)")
    parser.add_argument("--pattern", metavar="P",
                        help="pattern for every cell (Unstructured, Channel, 2:4, 4x1; default: "
                        "each cell's own)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target-sparsity", type=float, metavar="F",
                        help="budget: this fraction of the pruned cells' weights")
    target.add_argument("--target-parameters", type=float, metavar="F",
                        help="budget: this fraction of the network's parameters removed")
    target.add_argument("--target-macs", type=float, metavar="F",
                        help="budget: this fraction of the network's MACs removed")
    target.add_argument("--target-latency", type=float, metavar="F",
                        help="budget: this fraction of the compacted network's CPU latency "
                        "saved (measured; cells pruned by channels save it)")
    parser.add_argument("--floor", type=float, default=0.0, metavar="F",
                        help="budget: least sparsity of a cell (default 0)")
    parser.add_argument("--ceiling", type=float, default=0.99, metavar="F",
                        help="budget: largest sparsity of a cell (default 0.99)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh instead of continuing OUTPUT/sensitivity.csv")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    add_import_option(parser)
    args = parser.parse_args(argv)

    def action() -> int:
        from n2prune.sensitivity.ini import run_sensitivity
        load_plugins(args.imports)
        kind, value = next(((k, v) for k, v in (("Sparsity", args.target_sparsity),
                                                ("Parameters", args.target_parameters),
                                                ("MACs", args.target_macs),
                                                ("Latency", args.target_latency))
                                if v is not None),
                           (None, None))
        output = args.output or str(Path("runs") / Path(args.ini).stem / "sensitivity")
        lines = run_sensitivity(args.ini, output, weights_dir=args.w, seed=args.seed,
                                sparsities=args.sparsities, criterion=args.criterion,
                                pattern=args.pattern, metric=args.valid_metric, kind=kind,
                                target=value, floor=args.floor, ceiling=args.ceiling,
                                overwrite=args.overwrite, quiet=args.quiet)
        print("\n".join(lines))
        return 0

    return run_guarded(action, args.debug)
