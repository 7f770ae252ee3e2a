"""Learning with pruning, as ``n2d2 net.ini -learn-epoch N`` does (spec §3, §4.6, §6).

``Trainer(ini_path, options).run()`` builds the data and the network, learns, validates at
each log point, keeps the best weights among the log points where every PruneCell has reached
its final threshold (the last log point when none has), tests, and writes the outputs
(``n2prune.train.report``). A checkpoint is written atomically at each log point; ``resume=True``
continues from it and ends with exactly the masks, weights and accuracy of an uninterrupted
run on the CPU. Checkpoints, seed and weight files are ``RunState``'s
(``n2prune.train.resume``).
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from n2prune import ini as ini_module
from n2prune.onnxin import is_onnx_path, load_description, refuse_training
from n2prune.ini.files import recording_reads
from n2prune.train.distributed import Ranks
from n2prune.train.identity import RecordingEnviron, run_identity
from n2prune.train.runlock import RunLock
from n2prune.train.splitrecord import check_test_split
from n2prune.train.threads import set_threads
from n2prune.data import build_provider
from n2prune.errors import ConfigError
from n2prune.train.budget import apply_targets, budget_teams, sensitivity_budget
from n2prune.train.evaluation import evaluate_set
from n2prune.train.metrics import Confusion
from n2prune.train.findlr import find_learning_rate
from n2prune.train.n2d2modes import export_network, network_for_test, test_stimulus
from n2prune.network.build import build_network
from n2prune.prune.pruner import Pruner
from n2prune.prune.recalibration import recalibrate
from n2prune.train.objective import make_objective
from n2prune.train.options import (TrainOptions, defining_options,  # noqa: F401
                                    options_dict)  # TrainOptions, options_dict re-exported
from n2prune.train.progress import Progress, describe_row
from n2prune.train.tally import LearnTally
from n2prune.train.resume import CHECKPOINT, RunState  # noqa: F401 (CHECKPOINT re-exported)
from n2prune.solvers import SOLVERS



def _cleared_by_zero_grad(optimizers: List[torch.optim.Optimizer]
                          ) -> Optional[List[torch.nn.Parameter]]:
    """The parameters ``zero_grad(set_to_none=True)`` clears, in one list, when every
    optimiser keeps torch's ``zero_grad`` (None when one has its own: it is called then)."""
    if any(type(o).zero_grad is not torch.optim.Optimizer.zero_grad for o in optimizers):
        return None
    return [p for o in optimizers for group in o.param_groups for p in group["params"]]


def default_output(ini_path: str) -> Path:
    """Where outputs go without ``--output``: ``runs/<ini file stem>`` in the working dir."""
    return Path("runs") / Path(ini_path).stem


class Trainer(RunState):
    """One learning (or test-only) run of an INI network."""

    def __init__(self, ini_path: str, options: TrainOptions):
        self._lock: Optional[RunLock] = None
        try:
            self._setup(ini_path, options)
        except BaseException:
            self.close(failed=True)
            raise

    def _setup(self, ini_path: str, options: TrainOptions) -> None:
        options.check()
        self.options = options
        self.ini_path = ini_path
        self.output = Path(options.output) if options.output else default_output(ini_path)
        # what defines the run is recorded as it is read: files, environment variables
        self.environ = RecordingEnviron(os.environ if options.environ is None
                                        else options.environ)
        if not options.export:  # an ONNX file has no data: it can only be exported
            refuse_training(ini_path)
        with recording_reads() as self._files_read:
            self.ini = load_description(ini_path, self.environ)
        self.ranks = Ranks.start(options.device)  # one process: every call is the identity
        # rank 0 reads the checkpoint and picks the seed; the other ranks receive them
        self.checkpoint, seed = self.ranks.from_writer(self._checkpoint_and_seed)
        self.seed = seed
        self.threads = set_threads(options.threads)  # 1 unless --threads (train/threads.py)
        torch.manual_seed(seed)
        self.device = self.ranks.device
        with warnings.catch_warnings():
            if is_onnx_path(ini_path):  # an ONNX file has no database, as expected
                warnings.simplefilter("ignore")
            self.provider = build_provider(self.ini, seed=seed, device=self.device)
        self.net = build_network(self.ini, seed=seed).to(self.device)
        self.identity = run_identity(self._files_read, self.environ.reads,
                                     defining_options(options))
        self._check_same_run()
        if not self.net.targets and not options.export:
            raise ConfigError("missing target: add a [<cell>.Target] section (for example "
                              "[softmax.Target]) naming the cell to learn", path=ini_path)
        nb_labels = max(self.provider.nb_labels, 1)
        self.objectives = [make_objective(self.net, t, nb_labels) for t in self.net.targets]
        # What every step needs, looked up once: the cells whose outputs the objectives
        # read, and the cells with a PruneCell (the network's cells do not change).
        self._keep = [o.source for o in self.objectives] + \
            [o.target.cell for o in self.objectives]
        self._pruned = list(self.net.pruned_cells().values())
        self.batch_size = self.provider.batch_size  # the global batch
        self.ranks.check_batch(self.batch_size)
        self.optimizers = self._optimizers()
        self._learned = _cleared_by_zero_grad(self.optimizers)
        self._set_pruning_period()
        self.pruner = self._pruner()
        self.budget_teams = budget_teams(self.net, options)  # --budget / PruningBudget=
        self._regularized = any(getattr(cell, "regularization", "None") != "None"
                                for cell in self.pruner.cells.values())
        self.generator = torch.Generator().manual_seed(seed + 1)

    # ------------------------------------------------------------------ setup
    def _optimizers(self) -> List[torch.optim.Optimizer]:
        groups: Dict[str, List[Dict[str, Any]]] = {}
        covered = set()
        for name, info in self.net.info.items():
            cell = self.net.cells[name]
            for role, spec in info.solvers.items():
                param = getattr(cell, role, None)
                if not isinstance(param, torch.nn.Parameter) or not param.requires_grad:
                    continue
                groups.setdefault(spec.type, []).append({"params": [param], **spec.kwargs()})
                covered.add(id(param))
        rest = [p for p in self.net.parameters() if p.requires_grad and id(p) not in covered]
        if rest:
            groups.setdefault("SGD", []).append({"params": rest})
        return [SOLVERS.get(kind)(params, batch_size=self.batch_size)
                for kind, params in groups.items()]

    def _pruner(self) -> Pruner:
        """The Pruner stepping every PruneCell's schedule (horizon: the run's stimuli)."""
        o, size = self.options, self.provider.epoch_size
        horizon = o.learn_epoch * size if o.learn_epoch else self._plan()["total"] * self.batch_size
        cells = {name: cell.quantizer for name, cell in self.net.pruned_cells().items()}
        return Pruner(cells, epoch_size=size, horizon=horizon)

    def _set_pruning_period(self) -> None:
        """N2D2's default Gradual period: -log-epoch epochs of stimuli (else -log)."""
        o = self.options
        period = o.log_epoch * self.provider.epoch_size if o.log_epoch > 0 else o.log
        for cell in self.net.pruned_cells().values():
            cell.quantizer.default_period = int(period) % (2**32)

    # ------------------------------------------------------------------ learning
    def _plan(self) -> Dict[str, int]:
        """Batches in all, batches per epoch, and batches between log points."""
        o, size, b = self.options, self.provider.epoch_size, self.batch_size
        if o.learn_epoch:
            per_epoch = math.ceil(size / b)
            total = per_epoch * o.learn_epoch
            every = per_epoch * o.log_epoch if o.log_epoch > 0 else math.ceil(o.log / b)
        else:
            per_epoch = 0
            total = math.ceil(o.learn / b)
            every = math.ceil(o.log / b) if o.log > 0 else total
        return {"total": total, "per_epoch": per_epoch, "every": max(1, min(every, total))}

    def run(self) -> Dict[str, Any]:
        """Learn (unless test-only), test, write every output; returns the report."""
        try:
            return self._run()
        finally:
            self.close()

    def close(self, failed: bool = False) -> None:
        """Release the output folder (``run()`` does it when it ends)."""
        if self._lock is not None:
            self._lock.release(failed)

    def _run(self) -> Dict[str, Any]:
        from n2prune.train.report import write_outputs
        started = time.perf_counter()
        if self.writes_files:
            self.output.mkdir(parents=True, exist_ok=True)
        if self.options.weights_dir:
            self._import_weights(self.options.weights_dir)
            if self.options.test_only and self.writes_files:   # the weights' own split?
                check_test_split(self.options.weights_dir, self.seed, self.provider)
        state = self._fresh_state()
        if self.options.find_lr:
            return find_learning_rate(self)
        if self.options.reads_trained:
            if not self.options.weights_dir and not is_onnx_path(self.ini_path):
                # (an ONNX file carries its trained weights: ONNX_init)
                self._load_trained()
        elif self.options.learns:
            if self.provider.epoch_size == 0:
                raise ValueError("the Learn set is empty: nothing to learn from "
                                 "(check [database] and its fractions)")
            state = self._learn()
        if self.options.export:
            return export_network(self)
        net, folded = network_for_test(self)   # -fuse: BatchNorm folded, for the test only
        state["report"] = {} if folded is None else {"fused_batchnorm": folded}
        if self.options.test_index >= 0:
            test, state["report"]["test_stimulus"] = test_stimulus(self, net)
        else:
            test = self.evaluate("Test", net)
        return write_outputs(self, state, test, time.perf_counter() - started)

    def _fresh_state(self) -> Dict[str, Any]:
        return {"batches": 0, "stimuli": 0, "rows": [], "best": None, "order": None,
                "learning_seconds": 0.0}

    def _learn(self) -> Dict[str, Any]:
        plan = self._plan()
        state = self._fresh_state()
        if self.checkpoint is not None:
            state = self._restore(self.checkpoint)
            self._note_other_nproc(state["rows"])
        if state.get("budget"):  # --budget: chosen before the checkpoint, reapplied
            apply_targets(self.net, state["budget"]["cells"])
        elif self.budget_teams and self.options.weights_dir:
            self._choose_budget(state)
        total = (self.options.learn_epoch * self.provider.epoch_size if plan["per_epoch"]
                 else plan["total"] * self.batch_size)
        progress = Progress(total, self.options.quiet or not self.writes_files)
        progress.done = state["stimuli"]
        tally = LearnTally(self.objectives[0].estimate)
        per_epoch, pruner = plan["per_epoch"], self.pruner
        pruner.on_train_begin()
        try:
            while state["batches"] < plan["total"]:
                if per_epoch and state["batches"] % per_epoch == 0:
                    pruner.on_epoch_begin(state["batches"] // per_epoch)
                pruner.on_step_begin(state["batches"])
                tick = time.perf_counter()
                x, labels = self._next_batch(state, plan)
                loss, scores = self._step(x, labels)
                seen, stimuli = self.ranks.counts(len(labels))  # this rank's, the global batch
                tally.add(loss, scores, labels, seen)   # (timed: it is the step's accuracy)
                state["learning_seconds"] += time.perf_counter() - tick
                state["batches"] += 1
                if per_epoch and state["batches"] % per_epoch == 0:
                    pruner.on_epoch_end()
                state["stimuli"] += stimuli
                if self.budget_teams and not state.get("budget") and \
                        state["stimuli"] >= self.provider.epoch_size:
                    self._choose_budget(state)  # on the first epoch's weights
                progress.update(stimuli, lambda: dict(tally.running(), sparsity=self.sparsity()))
                if state["batches"] % plan["every"] == 0 or state["batches"] == plan["total"]:
                    self._log_point(state, tally.totals(), plan, progress)
                    tally = LearnTally(self.objectives[0].estimate)
                    if self._stop_valid(state, progress):
                        break
            pruner.on_train_end()
        finally:
            progress.close()
        self._restore_best(state)
        self._sparsity = None
        return state

    def _choose_budget(self, state: Dict[str, Any]) -> None:
        if self.ranks.world > 1:
            raise ValueError("--budget is not supported with several processes yet: choose "
                             "the budget with n2prune-sensitivity, then train its INI")
        state["budget"] = sensitivity_budget(self, self.budget_teams)
        apply_targets(self.net, state["budget"]["cells"])
        self._sparsity = None

    def _stop_valid(self, state: Dict[str, Any], progress: Progress) -> bool:
        """N2D2's ``-stop-valid N``: N eligible log points in a row without a new best."""
        limit = self.options.stop_valid
        if not limit or state.get("stale", 0) < limit:
            return False
        state["stopped_early"] = True
        progress.line(f"-stop-valid {limit}: no better validation score in {limit} log "
                      f"point(s) in a row: learning stops")
        return True

    def _next_batch(self, state: Dict[str, Any], plan: Dict[str, int]):
        if not plan["per_epoch"] and self.ranks.world > 1:
            chosen = torch.randint(0, self.provider.epoch_size, (self.batch_size,),
                                   generator=self.generator)
            return self.ranks.local_batch(self.provider, chosen, (self.seed, state["batches"]))
        if not plan["per_epoch"]:
            return self.provider.random_batch("Learn", self.generator)
        index = state["batches"] % plan["per_epoch"]
        if index == 0 or state["order"] is None:
            state["order"] = torch.randperm(self.provider.epoch_size, generator=self.generator)
        chosen = state["order"][index * self.batch_size:(index + 1) * self.batch_size]
        if self.ranks.world > 1:  # every rank drew the same global batch; keep our share
            return self.ranks.local_batch(self.provider, chosen, (self.seed, state["batches"]))
        return self.provider.batch("Learn", chosen, self.generator)

    def _step(self, x: torch.Tensor, labels: torch.Tensor):
        if not self.net.training:  # evaluate() leaves it in eval mode; train() walks every cell
            self.net.train()
        outputs = self.ranks.forward(self.net, x, self._keep)  # through DDP if distributed
        first, *others = self.objectives
        loss = first.loss(outputs, labels)
        for objective in others:
            loss = loss + objective.loss(outputs, labels)
        if self._regularized:  # QWeight.Regularization: the cells' sparsity penalty
            loss = loss + self.pruner.penalty()
        if self._learned is not None:   # zero_grad(set_to_none=True), less its wrapper:
            for param in self._learned:  # backward then hands over its gradients (no fill
                param.grad = None        # with zeros, no add into them)
        else:
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
        self.ranks.scale(loss).backward()
        self.pruner.on_before_optimizer_step()
        for optimizer in self.optimizers:
            optimizer.step()
        if self.pruner.on_step_end(self.batch_size):
            self._sparsity = None
            if self.options.recalibrate_bn and self.pruner.masks_changed:
                self._recalibrate_batchnorm()
            self.ranks.check_identical(self.net, "after a mask update")
        # the loss and the target's outputs are counted later, many steps at once (tally.py)
        return loss.detach(), outputs[self.objectives[0].target.cell].detach()

    def _recalibrate_batchnorm(self) -> None:
        """--recalibrate-bn N: BatchNorm statistics from N random Learn batches, drawn with a
        generator of their own seeded by the run's seed and stimuli (a resumed run, and every
        rank, draws the same; the learning's own draws are untouched)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.pruner.stimuli)
        batches = [self.provider.random_batch("Learn", generator)[0]
                   for _ in range(self.options.recalibrate_bn)]
        recalibrate(self.net, batches)

    # ------------------------------------------------------------------ log points
    def _log_point(self, state, stats, plan, progress: Progress) -> None:
        self.ranks.check_identical(self.net, f"at {state['stimuli']} stimuli")
        stats = self.ranks.sum_numbers(stats)
        validation = self.evaluate("Validation") if self.provider.size("Validation") else None
        row = {
            "log_point": len(state["rows"]) + 1,
            "epoch": state["stimuli"] / max(1, self.provider.epoch_size),
            "stimuli": state["stimuli"],
            "loss": stats["loss"] / max(1, stats["seen"]),
            "learn_accuracy": stats["correct"] / max(1, stats["seen"]),
            "validation_score": validation.score(self.options.valid_metric)
            if validation else None,
            "validation_accuracy": validation.accuracy() if validation else None,
            "learning_rate": float(getattr(self.optimizers[0], "current_lr", float("nan"))),
            "sparsity": self.sparsity(),
            "pruning_done": all(c.quantizer.done for c in self.net.pruned_cells().values()),
            "processes": self.ranks.world,   # --resume may change it (see _note_other_nproc)
        }
        state["rows"].append(row)
        progress.line(describe_row(row, self.options.valid_metric))
        if validation is not None and row["pruning_done"]:
            best = state["best"]
            better = best is None or row["validation_score"] > best["score"]
            state["stale"] = 0 if better else state.get("stale", 0) + 1
            if better:
                state["best"] = {"score": row["validation_score"], "log_point": row["log_point"],
                                 "state": copy.deepcopy(self.net.state_dict())}
                progress.line(f"+++ BEST validation score: {100 * row['validation_score']:.2f}% "
                              f"[{self.options.valid_metric}]")
        if self.writes_files:
            self._save_checkpoint(state)
            from n2prune.train.report import write_log
            write_log(self.output, state["rows"])

    # ------------------------------------------------------------------ measures
    def evaluate(self, set_name: str, net: Optional[torch.nn.Module] = None
                 ) -> Optional[Confusion]:
        """The confusion matrix of the primary target on ``set_name`` (None if empty), by
        ``net`` (default: the run's network)."""
        return evaluate_set(self.net if net is None else net, self.provider, self.objectives[0], set_name, self.seed,
                            self.batch_size, self.ranks)

    @property
    def writes_files(self) -> bool:
        """Whether this process writes the outputs (rank 0 of a distributed run)."""
        return self.ranks.writer

    @torch.no_grad()
    def sparsity(self) -> float:
        """Pruned fraction of the connected weights of the cells that have a PruneCell
        (``n2prune.prune.sparsity``: the definition PruneCell and reports use too); cached
        until the next Gradual step."""
        if getattr(self, "_sparsity", None) is None:
            from n2prune.prune.sparsity import sparsity
            self._sparsity = sparsity(self.net.pruned_cells().values())
        return self._sparsity
