"""Command-line entry points: ``n2prune-info`` and ``n2prune-train`` (``python -m n2prune``).

Each ``main(argv=None) -> int`` parses arguments and calls one library function, so tests call
them directly. Errors print one line on stderr and return 2 (130 for an interrupted run, as
a shell reports SIGINT); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, List, Optional

from n2prune import __version__
from n2prune.plugins import add_import_option, load_plugins


class _Parser(argparse.ArgumentParser):
    """argparse with N2D2-style single-dash long options and one-line errors."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"error: {message} (see {self.prog} -h)\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_guarded(action: Callable[[], int], debug: bool,
                interrupted: Callable[[], str] = lambda: "interrupted") -> int:
    """Run ``action``; bad input becomes one line on stderr and exit status 2; Ctrl-C prints
    ``interrupted()`` and returns 130."""
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return action()
    except KeyboardInterrupt:
        print(interrupted(), file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        if debug:
            raise
        text = str(exc).strip().splitlines() or [type(exc).__name__]
        print(f"error: {text[0]}", file=sys.stderr)
        for more in text[1:]:
            print(f"       {more}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = previous


def info_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-info NET.ini``: one line per cell and the totals, without training."""
    parser = _Parser(
        prog="n2prune-info", description="Build an N2D2 INI network and describe its cells "
        "(type, inputs, output shape, parameters, pruning) without training.")
    parser.add_argument("ini", metavar="NET.ini", help="N2D2 network file")
    _add_seed_option(parser, "seed of the weight fillers and Random masks")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"n2prune {__version__}")
    _add_cost_options(parser)
    add_import_option(parser)
    args = parser.parse_args(argv)

    def action() -> int:
        from n2prune.network.build import load_network
        load_plugins(args.imports)
        net = load_network(args.ini, seed=_seed(args.seed))
        print("\n".join(net.summary()))
        _print_costs(net, args)
        return 0

    return run_guarded(action, args.debug)


TRAIN_EPILOG = """\
Outputs (in --output, default runs/<ini name>/, each written atomically):
  report.json          accuracies, sparsity, per-cell figures, costs, timing, seed, threads,
                       pruning_reached (false when learning ended before the targets)
  log.csv              one row per log point
  weights/             N2D2 text files per cell: <cell>_weights.syntxt, <cell>_biases.syntxt;
                       with a PruneCell also <cell>_masks.syntxt, <cell>_quant_weights.syntxt;
                       BatchNorm: <cell>_scales.syntxt, <cell>_biases.syntxt,
                       <cell>_means.syntxt, <cell>_variances.syntxt
                       n2prune_split.json: the seed and sets, so -test -w tests on them
  model.pt             the final network (torch.load(..., weights_only=True))
  learning_curves.png  loss and accuracies per log point
  sparsity.png         achieved and target sparsity per pruned cell
  checkpoint.pt        the run at its last log point (--resume continues from it)
  test_report.json     written by -test instead of all the above
  export_ONNX_float32/ written by -export ONNX instead (<ini name>.onnx)
  find_lr_<target>.dat written by -find-lr N instead, with find_lr_<target>.png
  .lock                held while a run uses the folder (one run per folder)
Ctrl-C stops a run (exit 130); the same command with --resume continues it.

Several processes (DistributedDataParallel, gloo on CPU, nccl on GPU): --nproc N on this
machine, or torchrun --nproc_per_node=N -m n2prune NET.ini ... (also across machines).
[sp] BatchSize stays the GLOBAL batch: each process learns on about BatchSize/N stimuli
per step, and the results match a single-process run of the same seed. Only rank 0 writes.

Example: n2prune-train networks/lenet.ini -learn-epoch 30
"""


def train_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="n2prune-train", allow_abbrev=False, epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Learn and prune an N2D2 INI network, like `n2d2 NET.ini -learn-epoch N`: "
                    "PruneCells are updated after every step, the best validation point among "
                    "those at the final pruning threshold is kept, then the test set runs.")
    parser.add_argument("ini", metavar="NET.ini", help="N2D2 network file")
    n2d2 = parser.add_argument_group("N2D2's options")
    n2d2.add_argument("-learn", type=int, default=0, metavar="N",
                      help="learn N stimuli (random batches)")
    n2d2.add_argument("-learn-epoch", type=int, default=0, metavar="N",
                      help="learn N epochs (shuffled each epoch)")
    n2d2.add_argument("-log", type=int, default=1000, metavar="N",
                      help="log and validate every N stimuli (-learn mode, or -log-epoch 0; "
                           "default 1000)")
    n2d2.add_argument("-log-epoch", type=int, default=1, metavar="N",
                      help="log and validate every N epochs (default 1); also the default "
                           "Gradual pruning period")
    n2d2.add_argument("-test", action="store_true",
                      help="test only, with the weights of an earlier run in --output (or -w)")
    n2d2.add_argument("-seed", type=int, default=0, metavar="N",
                      help="random seed; 0 (default) picks one from the clock and records it")
    n2d2.add_argument("-w", metavar="DIR", help="import N2D2 weight and mask files from DIR")
    n2d2.add_argument("-stop-valid", type=int, default=0, metavar="N",
                      help="stop after N validations in a row without a better score "
                           "(counted once the pruning targets are reached; default 0: off)")
    n2d2.add_argument("-fuse", action="store_true",
                      help="fold each BatchNorm into the Conv/Fc before it for the test and "
                           "-export (the saved weights stay unfused)")
    n2d2.add_argument("-export", metavar="TYPE",
                      help="write the network (-w DIR, or --output's trained one) and stop: "
                           "ONNX only, in OUTPUT/export_ONNX_float32/")
    n2d2.add_argument("-test-index", type=int, default=-1, metavar="I",
                      help="with -test: test the I-th stimulus of the Test set only")
    n2d2.add_argument("-find-lr", type=int, default=0, metavar="N",
                      help="learning rate range test over N stimuli (1e-6 to 10, exponential):"
                           " writes find_lr_<target>.dat and .png, then stops")
    n2d2.add_argument("-valid-metric", default="Sensitivity", metavar="M",
                      help="validation score, averaged over classes (default Sensitivity; "
                           "also Accuracy, Precision, F1Score, Informedness, ...)")
    ours = parser.add_argument_group("n2prune's options")
    ours.add_argument("--output", metavar="DIR",
                      help="where every file goes (default runs/<ini name>)")
    ours.add_argument("--resume", action="store_true",
                      help="continue the run whose checkpoint is in --output")
    ours.add_argument("--overwrite", action="store_true",
                      help="start afresh even if --output holds an earlier run")
    ours.add_argument("--threads", type=int, metavar="N",
                      help="CPU threads for torch (default 1: small networks gain little from "
                           "more, and more collapse when another process competes for a core)")
    ours.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ours.add_argument("--nproc", type=int, metavar="N",
                      help="learn with N processes on this machine (DistributedDataParallel; "
                           "the INI batch stays the global batch, split between them)")
    ours.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                      help="after each mask update, re-estimate BatchNorm statistics on N "
                           "Learn batches (default 0: off, as N2D2)")
    ours.add_argument("--compact", action="store_true",
                      help="also write the compacted network (pruned channels removed: NET.ini, "
                           "weights/, NET.onnx) in OUTPUT/compact/, as n2prune-compact does")
    ours.add_argument("--budget", choices=["sensitivity"],
                      help="per-cell pruning targets from a sensitivity analysis of the -w "
                           "weights (else of the first epoch's), meeting --target-sparsity")
    ours.add_argument("--target-sparsity", type=float, metavar="F",
                      help="with --budget: the overall sparsity of the pruned cells")
    _add_partial_option(ours)
    ours.add_argument("--quiet", action="store_true", help="no progress output")
    ours.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    ours.add_argument("--version", action="version", version=f"n2prune {__version__}")
    add_import_option(ours)
    return parser


def train_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-train NET.ini [options]``."""
    args = train_parser().parse_args(argv)
    if args.nproc is not None and "WORLD_SIZE" not in os.environ:
        from n2prune.train.launch import check_nproc, launch, train_command

        def spawn() -> int:
            load_plugins(args.imports)
            check_nproc(args.ini, args.nproc, args.device)   # before any process starts
            return launch(train_command(sys.argv[1:] if argv is None else argv), args.nproc)
        return run_guarded(spawn, args.debug)

    def action() -> int:
        from n2prune.train.options import TrainOptions
        from n2prune.train.trainer import Trainer
        load_plugins(args.imports)
        if args.nproc is not None and args.nproc != int(os.environ["WORLD_SIZE"]):
            raise ValueError(f"--nproc {args.nproc} but WORLD_SIZE={os.environ['WORLD_SIZE']} "
                             f"(torchrun already started the processes: drop --nproc)")
        options = TrainOptions(
            learn=args.learn, learn_epoch=args.learn_epoch, log=args.log,
            log_epoch=args.log_epoch, test_only=args.test, seed=args.seed, weights_dir=args.w,
            valid_metric=args.valid_metric, output=args.output, resume=args.resume,
            overwrite=args.overwrite, threads=args.threads, device=args.device,
            quiet=args.quiet, compact=args.compact, recalibrate_bn=args.recalibrate_bn,
            budget=args.budget, target_sparsity=args.target_sparsity,
            allow_partial_weights=args.allow_partial_weights, stop_valid=args.stop_valid,
            fuse=args.fuse, export=args.export, test_index=args.test_index,
            find_lr=args.find_lr)
        trainer = Trainer(args.ini, options)
        try:
            report = trainer.run()
        except BaseException:
            trainer.ranks.close(synchronize=False)  # the other ranks may never get here
            raise
        trainer.ranks.close()
        if trainer.writes_files and not _print_n2d2_mode(report):
            _print_report(report, trainer.output, args.quiet, args.test)
        return 0

    return run_guarded(action, args.debug, lambda: _interrupted(args))


def _interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves and how to go on."""
    from n2prune.train.trainer import CHECKPOINT, default_output
    if args.test:
        return "interrupted (the test was not finished; nothing was written)"
    output = Path(args.output) if args.output else default_output(args.ini)
    if (output / CHECKPOINT).exists():
        return (f"interrupted: {output / CHECKPOINT} holds the run up to its last log point; "
                f"run the same command with --resume to continue it")
    return ("interrupted before the first log point (nothing to continue from); the same "
            "command with --resume starts afresh")


def _print_n2d2_mode(report: dict) -> bool:
    """What -export, -find-lr and -test-index print; False for the other runs."""
    if "export" in report:
        print(f"Exported {report['export']}" + (
            f" (BatchNorm folded: {', '.join(report['fused_batchnorm']) or 'none'})"
            if report["fused_batchnorm"] is not None else ""))
    elif "find_lr" in report:
        print("\n".join(f"Learning rate range test of {target}: {path} (and .png)"
                        for target, path in report["find_lr"].items()))
    elif "test_stimulus" in report:
        one = report["test_stimulus"]
        print(f"Test stimulus #{one['test_index']}: label {one['label']}, estimated "
              f"{one['estimated']}")
    else:
        return False
    return True


def _print_report(report: dict, output, quiet: bool, test_only: bool) -> None:
    test = report["test_accuracy"]
    valid = report["validation_score"]
    print(f"Final recognition rate: {100 * test:.2f}%" if test is not None else
          "No test set: no recognition rate", flush=True)  # printed even with --quiet
    unfinished = report.get("pruning_unfinished") or {}
    if unfinished:
        cells = ", ".join(f"{name} (threshold {now:.3g} of {target:.3g})"
                          for name, (now, target) in unfinished.items())
        print(f"warning: pruning targets not reached: {cells}; the run ended before its "
              f"Gradual schedule did: learn longer (more -learn-epoch) to reach them",
              file=sys.stderr)
    if quiet:
        return
    if valid is not None:
        print(f"Best validation score: {100 * valid:.2f}% [{report['validation_metric']}] "
              f"at log point {report['best_log_point']}")
    print(f"Sparsity of the pruned cells: {100 * report['sparsity']:.2f}%")
    if report["throughput"]:
        print(f"Learning: {report['stimuli']} stimuli in {report['learning_seconds']:.1f} s "
              f"({report['throughput']:.0f} stimuli/s)")
    if test_only:
        print(f"Report in {output}/test_report.json")
    else:
        print(f"Results in {output}/ (report.json, log.csv, weights/, model.pt, *.png)")
    small = report.get("compact")
    if small:
        dense = (report.get("costs") or {}).get("dense", {})
        print(f"Compacted network in {output}/{small['folder']}/: {small['removed_groups']} "
              f"channel group(s) removed, {small['macs']:,} MACs"
              + (f" of {dense['macs']:,}" if "macs" in dense else ""))


COMPACT_EPILOG = """\
Writes DIR/NET.ini (NbOutputs and Mapping tables reduced, the rest as written), DIR/weights/
(N2D2 text files of the smaller network) and DIR/NET.onnx (with --masked-onnx also
DIR/NET.masked.onnx: the network as loaded, masks applied, not compacted), then reads them
back and compares them with the compacted network before reporting success. DIR/.compacted.json
lists the files written (--overwrite removes them); DIR/.lock is held while writing. A folder
holding a training run, or files n2prune-compact did not write, is refused.

Example: n2prune-compact networks/resnet-mini.ini -w runs/resnet-mini/weights --output small
"""


def compact_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-compact NET.ini -w WEIGHTS --output DIR``: remove pruned channels for real."""
    parser = _Parser(prog="n2prune-compact", epilog=COMPACT_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Remove the channels whose weights the masks prune entirely "
                     "(with the channels tied to them) and write the smaller network.")
    parser.add_argument("ini", metavar="NET.ini", help="N2D2 network file")
    parser.add_argument("-w", "--weights", metavar="WEIGHTS_DIR",
                        help="N2D2 weight files (and _masks.syntxt) to start from")
    _add_partial_option(parser)
    parser.add_argument("--output", "-o", metavar="DIR", required=True,
                        help="folder for NET.ini, weights/ and NET.onnx")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the compacted network already in --output (its files "
                        "are removed); a folder holding other results is always refused")
    parser.add_argument("--no-onnx", action="store_true", help="do not write NET.onnx")
    parser.add_argument("--masked-onnx", action="store_true",
                        help="also write the uncompacted network, masks applied, as "
                        "NET.masked.onnx (same outputs, dense size)")
    _add_seed_option(parser, "seed of the weight fillers when -w is not given")
    parser.add_argument("--sparse", action="store_true",
                        help="also write NET.sparse.pt (pruned layers in the CSR/BSR form "
                        "timed fastest, batch 1) and NET.sparse.json (its latency report)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    add_import_option(parser)
    args = parser.parse_args(argv)

    def action() -> int:
        from n2prune.compact.costs import cost_lines
        load_plugins(args.imports)
        from n2prune.compact.writeback import write_compacted
        from n2prune.n2d2io.read import read_weight_folder
        from n2prune.network.build import load_network
        from n2prune.outfolder import claim_compact_output, remove_stale
        net = load_network(args.ini, seed=_seed(args.seed))
        if args.weights is not None:
            read_weight_folder(net, args.weights, args.allow_partial_weights)
        net.eval()
        lock, earlier = claim_compact_output(Path(args.output), args.overwrite)
        with lock:   # one process per folder, as n2prune-train
            written, small = write_compacted(net, args.ini, args.output,
                                             onnx=not args.no_onnx,
                                             masked_onnx=args.masked_onnx)
            remove_stale(Path(args.output), earlier, written)
        print("\n".join(cost_lines(net, small)))
        print(f"removed {small.compaction['removed_groups']} channel group(s); wrote "
              f"{len(written)} files in {args.output}")
        if args.sparse:
            from n2prune.sparse.ini import write_sparse
            files, _, lines = write_sparse(net, args.ini, args.output)
            print("\n".join(lines + [f"wrote {', '.join(f.name for f in files)}"]))
        return 0

    return run_guarded(action, args.debug)


def _add_cost_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-w", "--weights", metavar="WEIGHTS_DIR",
                        help="with --costs: N2D2 weight files (and masks) to load first")
    _add_partial_option(parser)
    parser.add_argument("--costs", action="store_true",
                        help="also print parameters, MACs and CPU latency of the dense, masked "
                        "and compacted network")


def _add_seed_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-seed", "--seed", type=int, default=1, metavar="N",
                        help=f"{what} (default 1); 0 picks one from the clock and prints it, "
                        f"as in n2prune-train")


def _seed(seed: int) -> int:
    """-seed as every command reads it (n2prune.seeds); a clock-picked seed is printed."""
    from n2prune.seeds import resolve_seed
    picked = resolve_seed(seed)
    if picked != seed:
        print(f"seed {picked} (picked from the clock: -seed {picked} repeats this)",
              file=sys.stderr)
    return picked


def _add_partial_option(parser) -> None:
    parser.add_argument("--allow-partial-weights", action="store_true",
                        help="accept a -w folder missing some cells' files: those cells keep "
                        "their initial weights (a warning names them); refused otherwise")


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


SENSITIVITY_EPILOG = """\
Writes OUTPUT/sensitivity.csv (cell, sparsity, metric, parameters_removed, macs_removed; the
row '(dense)' is the unpruned network) and OUTPUT/sensitivity.png (one curve per cell). Points
are saved as they finish: the same command continues an interrupted analysis. With a target
(--target-sparsity, --target-parameters or --target-macs) it also prints the per-cell budget
and writes OUTPUT/NET.ini with each cell's QWeight.Threshold: n2prune-train OUTPUT/NET.ini
trains to the budget.

Example: n2prune-sensitivity networks/lenet.ini -w runs/lenet/weights -seed 7 \\
             --target-sparsity 0.95
"""


def sensitivity_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-sensitivity NET.ini -w DIR``: each cell pruned alone; budgets from the curves."""
    parser = _Parser(prog="n2prune-sensitivity", epilog=SENSITIVITY_EPILOG,
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
                        help="metric, averaged over classes as N2D2 does (default Sensitivity)")
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
                                                ("MACs", args.target_macs)) if v is not None),
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
