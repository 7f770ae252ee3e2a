"""What a run keeps between processes: its checkpoint, seed, trained weights and -w imports.

``RunState`` is the part of ``Trainer`` that reads and writes ``checkpoint.pt`` and
``model.pt``: the lock and leftover temporaries of the output folder, the seed (N2D2's
``seed.dat`` rule), the resume identity check, saving and restoring the learning state, the
best log point's weights, and N2D2 weight-file imports. It relies on the Trainer's ``options``,
``output``, ``net``, ``optimizers``, ``pruner``, ``generator``, ``seed``, ``identity``,
``checkpoint`` and ``ranks``. The Pruner's own state (calibration window, position) is saved
beside the network's, so a resumed run with a data-driven criterion is exact too.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from n2prune.atomic import remove_temporaries
from n2prune.train.checkpoint import (BEST_KEYS, IDENTITY_KEYS, MODEL_KEYS, RUN_FORMAT,
                                       RUN_KEYS, STATE_KEYS, load_checkpoint,
                                       load_state_into, require_keys, save_atomic)
from n2prune.train.identity import differences
from n2prune.outfolder import refuse_compaction
from n2prune.seeds import resolve_seed
from n2prune.train.runlock import RunLock
from n2prune.train.splitrecord import seed_for_test

CHECKPOINT = "checkpoint.pt"


class RunState:
    """Checkpoint, seed and weights of a Trainer (mixed into ``Trainer``)."""

    def _checkpoint_and_seed(self):
        self._lock = RunLock(self.output)  # one run per folder, until close()
        refuse_compaction(self.output)  # another command's results
        remove_temporaries(self.output)  # left by a killed run; ours to remove now
        checkpoint = self._previous_checkpoint()
        seed = self.options.seed
        if checkpoint is not None:
            seed = int(checkpoint["seed"])
        elif self.options.reads_trained and self.options.weights_dir:
            # the seed recorded beside the weights (n2prune.train.splitrecord), else -seed
            seed = seed_for_test(self.options.weights_dir, seed)
            if seed == 0:
                seed = int(time.time()) % (2**31 - 1) or 1
        elif seed == 0 and self.options.reads_trained and (self.output / "model.pt").exists():
            # N2D2 reads seed.dat in a test-only run, so the data split is the learning one
            seed = load_checkpoint(self.output / "model.pt", MODEL_KEYS)["seed"]
        elif seed == 0:  # N2D2: 0 means a time-based seed (recorded in the report)
            seed = resolve_seed(seed)
        return checkpoint, seed


    def _previous_checkpoint(self) -> Optional[Dict[str, Any]]:
        path = self.output / CHECKPOINT
        if self.options.resume:
            if not path.exists():  # killed before its first log point: start afresh
                if not self.options.quiet:
                    print(f"note: no checkpoint in {self.output} yet: starting afresh",
                          file=sys.stderr)
                return None
            try:
                return self._resumable(path)
            except ValueError as exc:  # every refusal says the way out
                raise ValueError(f"{exc}; --resume cannot continue from it: --overwrite "
                                 f"starts afresh") from None
        if path.exists() and not self.options.overwrite and self.options.learns:
            raise ValueError(f"{self.output} already holds a run (checkpoint.pt): add --resume "
                             f"to continue it, --overwrite to start afresh, or choose another "
                             f"--output")
        return None


    @staticmethod
    def _resumable(path) -> Dict[str, Any]:
        """The checkpoint at ``path``, checked entry by entry (one ValueError line)."""
        state = load_checkpoint(path, {"format": int})
        if state["format"] != RUN_FORMAT:
            raise ValueError(f"{path}: written in checkpoint format {state['format']}, this "
                             f"n2prune reads format {RUN_FORMAT} only")
        require_keys(state, RUN_KEYS, str(path))
        require_keys(state["identity"], IDENTITY_KEYS, f"{path}: identity")
        require_keys(state["state"], STATE_KEYS, f"{path}: state")
        if state["state"]["best"] is not None:
            require_keys(state["state"]["best"], BEST_KEYS, f"{path}: best")
            if not 1 <= state["state"]["best"]["log_point"] <= len(state["state"]["rows"]):
                raise ValueError(f"{path}: its best log point is not one of its rows")
        return state

    def _check_same_run(self) -> None:
        """--resume continues only the run that wrote the checkpoint (n2prune.train.identity)."""
        if self.checkpoint is None:
            return
        found = differences(self.checkpoint["identity"], self.identity)
        if found:
            more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
            raise ValueError(f"{self.output / CHECKPOINT}: made by another run: "
                             f"{'; '.join(found[:3])}{more}; --resume needs the same files, "
                             f"environment and options (--overwrite starts afresh)")


    def _restore_best(self, state: Dict[str, Any]) -> None:
        """The best eligible validation point's weights; the last ones when none qualified."""
        if state["best"] is not None:
            load_state_into(self.net, state["best"]["state"], "the best log point's weights")


    def _note_other_nproc(self, rows) -> None:
        """A run resumed on another number of processes is not bit-exact: say so, once."""
        before = rows[-1].get("processes") if rows else None
        if before is None or before == self.ranks.world or not self.writes_files:
            return
        warnings.warn(
            f"--resume: log points 1-{len(rows)} were learned on {before} process(es), the "
            f"rest runs on {self.ranks.world}: it matches an uninterrupted {before}-process "
            f"run within float rounding, not bitwise (the shares' gradients are summed in "
            f"another order), so the later validation scores, and the best log point chosen "
            f"among them, may differ from that run's; the same --nproc resumes bit-exactly")


    def _save_checkpoint(self, state: Dict[str, Any]) -> None:
        save_atomic({
            "format": RUN_FORMAT, "identity": self.identity,
            "seed": self.seed, "net": self.net.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "torch_rng": torch.get_rng_state(), "generator": self.generator.get_state(),
            "state": state, "pruner": self.pruner.state_dict(),
        }, self.output / CHECKPOINT)


    def _restore(self, checkpoint: Dict[str, Any]) -> Dict[str, Any]:
        where = str(self.output / CHECKPOINT)
        load_state_into(self.net, checkpoint["net"], where)
        if len(checkpoint["optimizers"]) != len(self.optimizers):
            raise ValueError(f"{where}: {len(checkpoint['optimizers'])} solver states, this "
                             f"network has {len(self.optimizers)}")
        try:
            for optimizer, saved in zip(self.optimizers, checkpoint["optimizers"]):
                optimizer.load_state_dict(saved)
            torch.set_rng_state(checkpoint["torch_rng"])
            self.generator.set_state(checkpoint["generator"])
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
            reason = (str(exc).splitlines() or [""])[0]
            raise ValueError(f"{where}: its solver or random state does not fit this run "
                             f"({type(exc).__name__}: {reason})") from None
        # the calibration window and position: after the cells' buffers (load_state_into)
        self.pruner.load_state_dict(checkpoint["pruner"], f"{where}: pruner")
        return checkpoint["state"]


    def _import_weights(self, directory: str) -> None:
        from n2prune.n2d2io.read import read_weight_folder
        read_weight_folder(self.net, directory, self.options.allow_partial_weights)


    def _load_trained(self) -> None:
        path = self.output / "model.pt"

        def read() -> Dict[str, Any]:
            if not path.exists():
                raise ValueError(f"-test: no trained network in {self.output} (model.pt); "
                                 f"learn first, or give -w DIR with N2D2 weight files")
            return load_checkpoint(path, MODEL_KEYS)
        saved = self.ranks.from_writer(read)  # only rank 0's machine needs the file
        load_state_into(self.net, saved["net"], str(path))

