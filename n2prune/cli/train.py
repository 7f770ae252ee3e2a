"""``n2prune-train NET.ini [options]`` (``python -m n2prune``): N2D2's options and ours, one
call to the Trainer (or the launcher for ``--nproc``), then the report's lines."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from n2prune import __version__
from n2prune.cli.common import Parser, add_partial_option, run_guarded
from n2prune.plugins import add_import_option, load_plugins


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
    parser = Parser(
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
                      help="with --budget: the overall sparsity of the pruned cells; alone: "
                           "replaces the QWeight.Threshold of the INI's cells with "
                           "QWeight.PruningBudget=Sensitivity")
    add_partial_option(ours)
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
