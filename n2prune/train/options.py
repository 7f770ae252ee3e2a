"""The options of one run (``n2prune-train``'s command line as a dataclass) and their checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional

import torch

from n2prune.train.metrics import METRICS


# Options that do not change what a run computes: --resume may change them. Every other
# field (a new one too, unless marked) defines the run and must match to resume.
COSMETIC = {"cosmetic": True}


@dataclass
class TrainOptions:
    """N2D2's options (``-learn``, ``-learn-epoch``, ``-log``, ``-log-epoch``, ``-test``,
    ``-seed``, ``-w``, ``-valid-metric``) and ours."""

    learn: int = 0
    learn_epoch: int = 0
    log: int = 1000
    log_epoch: int = 1
    test_only: bool = False
    seed: int = 0
    weights_dir: Optional[str] = None
    valid_metric: str = "Sensitivity"
    output: Optional[str] = field(default=None, metadata=COSMETIC)
    resume: bool = field(default=False, metadata=COSMETIC)
    overwrite: bool = field(default=False, metadata=COSMETIC)
    threads: Optional[int] = field(default=None, metadata=COSMETIC)
    device: str = "cpu"
    quiet: bool = field(default=False, metadata=COSMETIC)
    # after each mask update, BatchNorm statistics from this many Learn batches (0: off)
    recalibrate_bn: int = 0
    # N2D2's -stop-valid N: stop after N log points in a row without a better validation
    # score (counted once every PruneCell has reached its final threshold); 0: off
    stop_valid: int = 0
    # write the compacted network (INI, N2D2 weights, ONNX) in <output>/compact/
    compact: bool = field(default=False, metadata=COSMETIC)
    # --budget sensitivity: per-cell targets from a sensitivity analysis (n2prune.train.budget)
    budget: Optional[str] = None
    target_sparsity: Optional[float] = None
    # -w DIR missing some cells' files: read the rest (a warning names them), else refused
    allow_partial_weights: bool = False
    # N2D2's -fuse: BatchNorm folded into the Conv/Fc before it, for the test and -export
    fuse: bool = False
    # N2D2's -export TYPE (ONNX only): write the network, then stop
    export: Optional[str] = None
    # N2D2's -test-index i: test the i-th stimulus of the Test set only (-1: all)
    test_index: int = -1
    # N2D2's -find-lr N: learning rate range test over N stimuli, then stop (0: off)
    find_lr: int = 0
    # recorded by name and value when read (n2prune.train.identity)
    environ: Optional[Mapping[str, str]] = field(default=None, repr=False, metadata=COSMETIC)

    @property
    def learns(self) -> bool:
        """Whether the run learns (and so writes a run's files); ``-test`` wins over
        ``-learn-epoch``, as in N2D2."""
        return bool(self.learn or self.learn_epoch) and not self.test_only

    @property
    def reads_trained(self) -> bool:
        """Whether the run starts from trained weights: ``-test`` and ``-export``."""
        return self.test_only or self.export is not None

    def check(self) -> None:
        for name in ("learn", "learn_epoch", "log", "log_epoch"):
            if getattr(self, name) < 0:
                raise ValueError(f"-{name.replace('_', '-')} must be >= 0, got "
                                 f"{getattr(self, name)}")
        if self.learn and self.learn_epoch:
            raise ValueError("give either -learn N (stimuli) or -learn-epoch N, not both")
        if not (self.learn or self.learn_epoch or self.test_only or self.export
                or self.find_lr):
            raise ValueError("nothing to do: give -learn-epoch N (epochs), -learn N (stimuli) "
                             "or -test")
        check_n2d2_modes(self)
        if self.log_epoch == 0 and self.log == 0:
            raise ValueError("-log must be > 0 when -log-epoch is 0")
        if self.valid_metric not in METRICS:
            from n2prune.registry import did_you_mean
            raise ValueError("-valid-metric: " + did_you_mean(self.valid_metric, list(METRICS),
                                                              "metric"))
        if self.stop_valid < 0:
            raise ValueError(f"-stop-valid must be >= 0 (log points; 0: off), got "
                             f"{self.stop_valid}")
        if self.recalibrate_bn < 0:
            raise ValueError(f"--recalibrate-bn must be >= 0 (batches; 0: off), got "
                             f"{self.recalibrate_bn}")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"--threads must be a positive integer, got {self.threads}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.compact:
            check_compact(self)
        if self.budget is not None or self.target_sparsity is not None:
            check_budget(self)
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available here; use --device cpu")


EXPORT_TYPES = ("ONNX",)   # N2D2's C, CPP, ... generators are outside n2prune


def check_n2d2_modes(options: TrainOptions) -> None:
    """``-export``, ``-find-lr`` and ``-test-index``: each a run of its own, as in N2D2."""
    learns = options.learns
    if options.export is not None:
        if options.export not in EXPORT_TYPES:
            raise ValueError(f"-export {options.export}: n2prune exports ONNX only (-export "
                             f"ONNX); N2D2's code generators (C, CPP, CPP_TensorRT, ...) are "
                             f"outside n2prune")
        if learns or options.find_lr:
            raise ValueError("-export writes the network and stops, as in N2D2: learn first, "
                             "then -export ONNX with -w DIR (or the learning run's --output)")
    if options.find_lr < 0:
        raise ValueError(f"-find-lr must be >= 0 (stimuli; 0: off), got {options.find_lr}")
    if options.find_lr and (learns or options.test_only):
        raise ValueError("-find-lr runs the learning rate range test and stops, as in N2D2: "
                         "give it without -learn, -learn-epoch or -test")
    if options.test_index < -1:
        raise ValueError(f"-test-index must be a stimulus index >= 0, got {options.test_index}")
    if options.test_index >= 0 and not options.test_only:
        raise ValueError("-test-index tests one stimulus of a trained network: give it with "
                         "-test")


def check_compact(options: TrainOptions) -> None:
    """``--compact`` needs a learning run and the ONNX exporter (checked before learning,
    not after it)."""
    if options.test_only:
        raise ValueError("--compact writes the network a learning run ends with; with -test, "
                         "compact the run's weights with n2prune-compact NET.ini -w DIR")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ValueError("--compact also writes NET.onnx, which needs the onnx package: "
                         "pip install 'n2prune[onnx]'") from None


def check_budget(options: TrainOptions) -> None:
    """``--budget sensitivity`` needs ``--target-sparsity`` in (0, 1) and a learning run;
    ``--target-sparsity`` alone overrides the target of the INI's
    ``QWeight.PruningBudget=Sensitivity`` cells (checked once the network is built)."""
    if options.budget is not None and options.budget != "sensitivity":
        raise ValueError(f"--budget must be 'sensitivity' (per-cell targets from a sensitivity "
                         f"analysis), got {options.budget!r}")
    if options.budget is not None and options.target_sparsity is None:
        raise ValueError("--budget sensitivity needs --target-sparsity F, a fraction strictly "
                         "between 0 and 1")
    if options.target_sparsity is not None and not 0.0 < options.target_sparsity < 1.0:
        raise ValueError(f"--target-sparsity must be a fraction strictly between 0 and 1 (got "
                         f"{options.target_sparsity})")
    if options.test_only:
        raise ValueError("--budget chooses pruning targets for learning; -test learns nothing")


def options_dict(options: TrainOptions) -> Dict[str, Any]:
    values = asdict(options)
    values.pop("environ", None)
    return values


def defining_options(options: TrainOptions) -> Dict[str, Any]:
    """The options that define the run (every field not marked cosmetic), by field name."""
    return {f.name: getattr(options, f.name) for f in fields(options)
            if not f.metadata.get("cosmetic")}
